"""Fees: each event's taker fee rate and each trade's fee.

Both default to 0, which is what every event and trade stored before fees existed was:
an upgrade needs no backfill.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: a batch would make SQLite copy the events
    # table, which the foreign keys of the payouts that reference it forbid dropping.
    op.add_column("events", sa.Column("fee_rate", sa.BigInteger(), nullable=False,
                                      server_default="0"))
    op.add_column("trades", sa.Column("fee", sa.BigInteger(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35+), for the same reason as the upgrade.
    op.drop_column("trades", "fee")
    op.drop_column("events", "fee_rate")
