"""Payouts: what each resolution paid each position, with its YES and NO shares.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pmarket.db.types

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("market_id", sa.BigInteger(), nullable=False),
        sa.Column("yes", sa.BigInteger(), nullable=False),
        sa.Column("no", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("stream", "seq", "idx", name=op.f("uq_payouts_stream_seq_idx")),
    )
    op.create_index(op.f("ix_payouts_user_id_id"), "payouts", ["user_id", "id"],
                    unique=False)
    op.create_index(op.f("ix_payouts_user_id_event_id"), "payouts", ["user_id", "event_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payouts_user_id_event_id"), table_name="payouts")
    op.drop_index(op.f("ix_payouts_user_id_id"), table_name="payouts")
    op.drop_table("payouts")
