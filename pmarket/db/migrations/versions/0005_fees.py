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
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("fee_rate", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("fee", sa.BigInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("fee")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("fee_rate")
