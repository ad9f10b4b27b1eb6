"""Parked events: what the worker could not store, kept with its reason until handled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pmarket.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("idx", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("parked_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempted_at", pmarket.db.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_events")),
        sa.UniqueConstraint("consumer", "stream", "first_seq", "idx",
                            name=op.f("uq_parked_events_consumer_stream_first_seq_idx")),
    )
    op.create_index(op.f("ix_parked_events_consumer_stream_message_id"), "parked_events",
                    ["consumer", "stream", "message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_parked_events_consumer_stream_message_id"),
                  table_name="parked_events")
    op.drop_table("parked_events")
