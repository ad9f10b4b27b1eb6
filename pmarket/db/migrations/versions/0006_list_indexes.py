"""Indexes that serve the database lists page by page (``server/routes/lists.py``).

``orders (user_id, id)``: a user's order history newest first (``GET /orders``) was
served by no index in that order, so every page sorted the user's whole history. The
maker index of trades also holds ``taker_user_id``: a user's trades are the two arms
"taken" and "made (and not also taken)", each walked in id order from its index alone. A user's
payouts of one event likewise, newest first, from ``payouts (user_id, event_id, id)``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_user_id_id", "orders", ["user_id", "id"])
    op.create_index("ix_trades_maker_user_id_id_taker_user_id", "trades",
                    ["maker_user_id", "id", "taker_user_id"])
    op.drop_index("ix_trades_maker_user_id_id", table_name="trades")
    op.create_index("ix_payouts_user_id_event_id_id", "payouts", ["user_id", "event_id", "id"])
    op.drop_index("ix_payouts_user_id_event_id", table_name="payouts")


def downgrade() -> None:
    op.create_index("ix_payouts_user_id_event_id", "payouts", ["user_id", "event_id"])
    op.drop_index("ix_payouts_user_id_event_id_id", table_name="payouts")
    op.create_index("ix_trades_maker_user_id_id", "trades", ["maker_user_id", "id"])
    op.drop_index("ix_trades_maker_user_id_id_taker_user_id", table_name="trades")
    op.drop_index("ix_orders_user_id_id", table_name="orders")
