"""Initial schema: users, admins and every table the worker projects engine events into.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pmarket.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("email", name=op.f("uq_admins_email")),
    )
    op.create_table(
        "balances",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_balances")),
    )
    op.create_table(
        "candles",
        sa.Column("market_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("interval", sa.String(length=3), nullable=False),
        sa.Column("start", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("open", sa.BigInteger(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("close", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("trades", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("market_id", "interval", "start", name=op.f("pk_candles")),
    )
    op.create_table(
        "consumer_positions",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_message_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "stream", name=op.f("pk_consumer_positions")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("close_time", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("winning_outcome_id", sa.BigInteger(), nullable=True),
        sa.Column("void", sa.Boolean(), nullable=False),
        sa.Column("payouts_total", sa.BigInteger(), nullable=True),
        sa.Column("rounding", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(
        op.f("ix_events_category_status"), "events", ["category", "status"], unique=False
    )
    op.create_index(op.f("ix_events_slug"), "events", ["slug"], unique=False)
    op.create_index(op.f("ix_events_status_id"), "events", ["status", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Word search on titles (GET /events?q=); SQLite falls back to LIKE.
        op.execute(
            "CREATE INDEX ix_events_title_fts ON events USING gin (to_tsvector('simple', title))"
        )
    op.create_table(
        "ledger_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("market_id", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("stream", "seq", "idx", name=op.f("uq_ledger_entries_stream_seq_idx")),
    )
    op.create_index(
        op.f("ix_ledger_entries_user_id_id"), "ledger_entries", ["user_id", "id"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("market_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=3), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("filled", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tif", sa.String(length=3), nullable=False),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("expires_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("client_order_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index(
        op.f("ix_orders_market_id_status"), "orders", ["market_id", "status"], unique=False
    )
    op.create_index(
        op.f("ix_orders_user_id_client_order_id"),
        "orders",
        ["user_id", "client_order_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_orders_user_id_market_id_id"),
        "orders",
        ["user_id", "market_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_orders_user_id_status_id"), "orders", ["user_id", "status", "id"], unique=False
    )
    op.create_table(
        "positions",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("market_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("yes", sa.BigInteger(), nullable=False),
        sa.Column("no", sa.BigInteger(), nullable=False),
        sa.Column("yes_reserved", sa.BigInteger(), nullable=False),
        sa.Column("no_reserved", sa.BigInteger(), nullable=False),
        sa.Column("yes_cost", sa.BigInteger(), nullable=False),
        sa.Column("no_cost", sa.BigInteger(), nullable=False),
        sa.Column("yes_realized_pnl", sa.BigInteger(), nullable=False),
        sa.Column("no_realized_pnl", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "market_id", name=op.f("pk_positions")),
    )
    op.create_index(op.f("ix_positions_market_id"), "positions", ["market_id"], unique=False)
    op.create_table(
        "skipped_deliveries",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("skipped_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "consumer", "stream", "first_seq", name=op.f("pk_skipped_deliveries")
        ),
    )
    op.create_table(
        "trades",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("market_id", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("taker_side", sa.String(length=4), nullable=False),
        sa.Column("taker_order_id", sa.BigInteger(), nullable=False),
        sa.Column("taker_user_id", sa.BigInteger(), nullable=False),
        sa.Column("maker_order_id", sa.BigInteger(), nullable=False),
        sa.Column("maker_user_id", sa.BigInteger(), nullable=False),
        sa.Column("executed_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    op.create_index(
        op.f("ix_trades_maker_user_id_id"), "trades", ["maker_user_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_trades_market_id_executed_at"),
        "trades",
        ["market_id", "executed_at"],
        unique=False,
    )
    op.create_index(op.f("ix_trades_market_id_id"), "trades", ["market_id", "id"], unique=False)
    op.create_index(
        op.f("ix_trades_taker_user_id_id"), "trades", ["taker_user_id", "id"], unique=False
    )
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "markets",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("last_price", sa.BigInteger(), nullable=True),
        sa.Column("last_trade_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("open_interest", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_markets_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_markets")),
    )
    op.create_index(
        op.f("ix_markets_event_id_position"), "markets", ["event_id", "position"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_markets_event_id_position"), table_name="markets")
    op.drop_table("markets")
    op.drop_table("users")
    op.drop_index(op.f("ix_trades_taker_user_id_id"), table_name="trades")
    op.drop_index(op.f("ix_trades_market_id_id"), table_name="trades")
    op.drop_index(op.f("ix_trades_market_id_executed_at"), table_name="trades")
    op.drop_index(op.f("ix_trades_maker_user_id_id"), table_name="trades")
    op.drop_table("trades")
    op.drop_table("skipped_deliveries")
    op.drop_index(op.f("ix_positions_market_id"), table_name="positions")
    op.drop_table("positions")
    op.drop_index(op.f("ix_orders_user_id_status_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_user_id_market_id_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_user_id_client_order_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_market_id_status"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_ledger_entries_user_id_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_events_title_fts")
    op.drop_index(op.f("ix_events_status_id"), table_name="events")
    op.drop_index(op.f("ix_events_slug"), table_name="events")
    op.drop_index(op.f("ix_events_category_status"), table_name="events")
    op.drop_table("events")
    op.drop_table("consumer_positions")
    op.drop_table("candles")
    op.drop_table("balances")
    op.drop_table("admins")
