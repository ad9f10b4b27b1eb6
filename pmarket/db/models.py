"""The database schema: SQLAlchemy 2 models of everything the API reads.

Two kinds of tables live here. ``users`` and ``admins`` are written by the server
directly. Everything else is a *projection* of the engine's events written by the worker
(``pmarket.worker``); the engine stays the authority, so projected tables carry no
foreign keys to ``users`` (the engine keys accounts by bare user id) and ids are the
engine's own (order, trade, event and market ids), never generated here.

Conventions:

* Money, prices and quantities are ``BIGINT`` integer units (``units.SCALE`` per $1).
  Order prices are in the owner's terms; trade and candle prices in YES terms.
* Times are aware UTC datetimes (``UTCDateTime``).
* State rows (orders, balances, positions, events) carry ``seq``: the engine command
  sequence number whose events last wrote them. The projection never lets an older
  command overwrite a newer one.
* An outcome *is* a market (one binary market per outcome, outcome id == market id), so
  there is one table, ``markets``; ``Outcome`` is an alias of ``Market``.
* A deleted event keeps its row with status ``deleted`` (its markets too), so ledger
  history that names it stays meaningful; readers filter it out.

Cost basis (``positions.yes_cost`` / ``no_cost``) is the total price paid for the shares
held, so the average cost is ``yes_cost / yes``; the rules that maintain it are in
``pmarket.worker.costbasis``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import BigId, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (migrations refer to them)."""

    type_annotation_map = {int: BigInteger, datetime: UTCDateTime}


Base.metadata.naming_convention = NAMING


# --- written by the server -------------------------------------------------------------


class User(Base):
    """A trader. The engine knows them only by ``id``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Sessions (``pmarket.server.sessions``): a token carries the epoch it was issued
    # in; signing out everywhere (and disabling) moves the epoch on, so older tokens
    # stop working. ``auth_seq`` orders such changes for other servers to pick up.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    auth_seq: Mapped[int] = mapped_column(default=0, server_default="0", index=True)


class ApiKey(Base):
    """A user's API key: only its keyed hash is stored (HMAC-SHA256, server secret)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(40))  # "read" or "read,trade"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    auth_seq: Mapped[int] = mapped_column(default=0, server_default="0", index=True)


class AuthSequence(Base):
    """One row: the last ``auth_seq`` handed out. Taking the next value locks the row
    until the change commits, so changes become visible in ``auth_seq`` order."""

    __tablename__ = "auth_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(default=0)


class Admin(Base):
    """An operator account (created from the command line or the environment)."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- projected from engine events ------------------------------------------------------


class Event(Base):
    """A question with one market per outcome (engine ``event`` / ``resolved`` events)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(16))  # active|closed|resolved|deleted
    close_time: Mapped[datetime | None]
    tick: Mapped[int] = mapped_column(Integer)
    winning_outcome_id: Mapped[int | None]
    void: Mapped[bool] = mapped_column(Boolean, default=False)
    fee_rate: Mapped[int] = mapped_column(default=0)  # units: 700 is 7% (takers pay it)
    payouts_total: Mapped[int | None]
    rounding: Mapped[int | None]
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        Index(None, "category", "status"),
        Index(None, "status", "id"),
        Index(None, "slug"),
    )


class Market(Base):
    """One binary market = one outcome of an event; ``name`` is the outcome's name.

    ``last_price`` is in YES units; ``volume`` counts shares traded; ``open_interest``
    counts YES shares outstanding (held by anyone).
    """

    __tablename__ = "markets"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)  # rank of the outcome in its event
    status: Mapped[str] = mapped_column(String(16))
    tick: Mapped[int] = mapped_column(Integer)
    last_price: Mapped[int | None]
    last_trade_at: Mapped[datetime | None]
    volume: Mapped[int] = mapped_column(default=0)
    open_interest: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index(None, "event_id", "position"),)


Outcome = Market
"""An outcome is its market (outcome id == market id)."""


class Order(Base):
    """The latest state of an order, in its owner's terms (engine ``order`` events)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int]
    market_id: Mapped[int]
    event_id: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(3))  # yes|no
    side: Mapped[str] = mapped_column(String(4))  # buy|sell
    order_type: Mapped[str] = mapped_column(String(8))  # limit|market
    price: Mapped[int]
    quantity: Mapped[int]
    filled: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    tif: Mapped[str] = mapped_column(String(3))
    post_only: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None]
    client_order_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    seq: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        Index(None, "user_id", "id"),  # a user's history, newest first (0006)
        Index(None, "user_id", "status", "id"),
        Index(None, "user_id", "market_id", "id"),
        Index(None, "market_id", "status"),
        Index(None, "user_id", "client_order_id"),
    )


class Trade(Base):
    """One fill (engine ``fill`` event); price in YES terms."""

    __tablename__ = "trades"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    market_id: Mapped[int]
    price: Mapped[int]
    quantity: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # transfer_yes|mint|merge|transfer_no
    taker_side: Mapped[str] = mapped_column(String(4))  # buy: the taker was the YES bid
    taker_order_id: Mapped[int]
    taker_user_id: Mapped[int]
    maker_order_id: Mapped[int]
    maker_user_id: Mapped[int]
    executed_at: Mapped[datetime]
    seq: Mapped[int]
    fee: Mapped[int] = mapped_column(default=0)  # what the taker paid (makers pay nothing)

    __table_args__ = (
        Index(None, "market_id", "executed_at"),
        Index(None, "market_id", "id"),
        Index(None, "taker_user_id", "id"),
        # A user's trades: the taker arm, and the maker arm without the trades it also
        # took (``taker_user_id`` in the index: the arm never reads the table) (0006).
        Index(None, "maker_user_id", "id", "taker_user_id"),
    )


class LedgerEntry(Base):
    """Cash or shares crossing an account's boundary other than by a trade.

    ``amount`` is the user's signed cash change. ``(stream, seq, idx)`` names the engine
    event it came from (the ``idx``-th event of the delivery whose first command is
    ``seq`` on ``stream``; with one command per delivery, that command's seq), so the
    same event can never be booked twice.
    """

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]
    event_id: Mapped[int | None]
    market_id: Mapped[int | None]
    quantity: Mapped[int]
    at: Mapped[datetime]
    stream: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int]
    idx: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("stream", "seq", "idx"),
        Index(None, "user_id", "id"),
    )


class Payout(Base):
    """What a resolution paid one position (engine ``payout`` event).

    ``yes`` / ``no`` are the shares the resolution burned, ``amount`` the cash they paid
    (the position's ``payout`` ledger entry). Identified like a ledger entry by
    ``(stream, seq, idx)``, so a redelivered resolution is never booked twice.
    """

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int]
    event_id: Mapped[int]
    market_id: Mapped[int]
    yes: Mapped[int]
    no: Mapped[int]
    amount: Mapped[int]
    paid_at: Mapped[datetime]
    stream: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int]
    idx: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("stream", "seq", "idx"),
        Index(None, "user_id", "id"),
        Index(None, "user_id", "event_id", "id"),  # one event's, newest first (0006)
    )


class Balance(Base):
    """A user's cash: ``available`` and ``reserved`` (locked by open buy orders)."""

    __tablename__ = "balances"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    available: Mapped[int]
    reserved: Mapped[int]
    seq: Mapped[int] = mapped_column(default=0)


class Position(Base):
    """A user's shares of one market, with cost basis and realised P&L per side.

    ``yes`` / ``no`` include the ``*_reserved`` part locked by open sell orders.
    ``*_cost`` is the total cost of the shares held (average cost = cost / quantity);
    ``*_realized_pnl`` accumulates proceeds minus the cost of shares disposed of.
    """

    __tablename__ = "positions"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    market_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    yes: Mapped[int] = mapped_column(default=0)
    no: Mapped[int] = mapped_column(default=0)
    yes_reserved: Mapped[int] = mapped_column(default=0)
    no_reserved: Mapped[int] = mapped_column(default=0)
    yes_cost: Mapped[int] = mapped_column(default=0)
    no_cost: Mapped[int] = mapped_column(default=0)
    yes_realized_pnl: Mapped[int] = mapped_column(default=0)
    no_realized_pnl: Mapped[int] = mapped_column(default=0)
    seq: Mapped[int] = mapped_column(default=0)

    __table_args__ = (Index(None, "market_id"),)


class Candle(Base):
    """OHLC (YES units) and volume (shares) of a market over one interval from ``start``."""

    __tablename__ = "candles"

    market_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    interval: Mapped[str] = mapped_column(String(3), primary_key=True)  # 1m|5m|1h|1d
    start: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[int]
    high: Mapped[int]
    low: Mapped[int]
    close: Mapped[int]
    volume: Mapped[int]
    trades: Mapped[int] = mapped_column(default=0)


class ConsumerPosition(Base):
    """How far a consumer has projected a stream: the last engine command ``seq`` applied.

    Written in the same transaction as the rows that command produced.
    """

    __tablename__ = "consumer_positions"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_message_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SkippedDelivery(Base):
    """A delivery the worker gave up on (dead-lettered) and stepped over.

    While a row exists here the database is known to lack that command's effects; a
    retry that succeeds deletes it. ``pmarket db reconcile`` reports them.
    """

    __tablename__ = "skipped_deliveries"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_seq: Mapped[int]
    message_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    skipped_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkedEvent(Base):
    """An engine event the worker could not store, kept with its reason until handled.

    The worker retries a failing delivery event by event; an event that still fails on
    its own is parked here (``idx`` its index in the delivery of commands
    ``first_seq .. last_seq``, ``event`` its JSON, ``context`` the later events of the
    delivery that its projection reads), in the transaction that stores the rest of the
    delivery and moves the position. A delivery the worker cannot even decode is parked
    whole: ``idx`` is NULL and ``payload`` holds the raw bus entry (``first_seq`` /
    ``last_seq`` only when they could be read). ``pmarket worker dlq`` lists, replays
    (``attempts`` counts the tries) and clears them; while a row exists the database is
    known to lack that event and ``/health`` says so.
    """

    __tablename__ = "parked_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(200))
    first_seq: Mapped[int | None]
    last_seq: Mapped[int | None]
    idx: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    ts_ms: Mapped[int] = mapped_column(default=0)
    message_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    parked_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("consumer", "stream", "first_seq", "idx"),
        Index(None, "consumer", "stream", "message_id"),
    )


PROJECTED_TABLES = (
    Event, Market, Order, Trade, LedgerEntry, Payout, Balance, Position, Candle,
    ConsumerPosition, SkippedDelivery, ParkedEvent,
)
"""Tables the worker owns (everything but users and admins)."""
