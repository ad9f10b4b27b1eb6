"""Events: everything the engine says happened.

``Engine.apply(command)`` returns a list of events. Each event is a named, typed record,
one class per kind (``OrderState``, ``Fill``, ``BalanceState`` ...), read by name
(``fill.fee``, ``order.status``); ``kind`` names its kind (``"fill"``). The classes are
native (mypyc-compiled with the rest of the core, ``compiled.CORE``): the engine builds
one as cheaply as the flat tuple it used to build (a native allocation and field stores,
no ``__init__`` through the interpreter), and the compiled modules read its fields as
struct fields.

On the wire (the bus, the event log in Redis and the journal, snapshots of the replies,
the worker's parked events) an event is a flat JSON array ``[kind, field, ...]`` in the
order of ``LAYOUTS``: ``to_wire`` / ``wire_rows`` write that form and ``from_wire`` reads
it back, and they are the only place that knows it. ``from_wire`` also reads what older
versions stored (a ``fill`` before fees, an ``event`` before ``fee_rate``) and keeps an
unknown kind as ``Unknown`` (the worker parks it; nobody guesses at it).

State-bearing events (``order``, ``balance``, ``position``, ``book``, ``event``) carry
the *new full value*, never a delta: a consumer that applies them as upserts is
idempotent by construction. ``fill``, ``ledger`` and ``payout`` are facts with their own
identity (trade id; command seq). All prices are integer units (``units.SCALE`` = $1); ``fill``
and ``book`` prices are in YES terms, ``order`` prices in the owner's terms.

The events of one command are emitted in this order: when the command's time made
something due (gtd orders expiring, events reaching their close time, dead-man switches
firing: see ``timers``), the events of that and a ``clock`` marker; then the command's
own facts (``rejected`` / ``duplicate`` / ``ledger`` / ``payout`` / ``fill`` /
``resolved`` ...), then the final state of every order, position, balance and book level
it touched. In ``command_events(events)`` (what
follows the ``clock`` marker, if any) the first ``order`` event of a placement or
modification is that order itself.

Events are values: equal when their kind and fields are, never changed once built.
"""

from __future__ import annotations

from typing import Any, Final, final

ORDER: Final = "order"
FILL: Final = "fill"
REJECTED: Final = "rejected"
DUPLICATE: Final = "duplicate"
BALANCE: Final = "balance"
POSITION: Final = "position"
BOOK: Final = "book"
LEDGER: Final = "ledger"
EVENT: Final = "event"
EVENT_DELETED: Final = "event_deleted"
RESOLVED: Final = "resolved"
PAYOUT: Final = "payout"
BATCH_ITEM: Final = "batch_item"
CLOCK: Final = "clock"
DEAD_MAN: Final = "dead_man"

LAYOUTS: dict[str, tuple[str, ...]] = {
    # The fields of each kind in their wire order (``to_wire``): the attributes of its
    # class below, which says what they mean.
    ORDER: (
        "order_id", "user_id", "market_id", "event_id", "outcome", "side", "order_type",
        "price", "quantity", "filled", "status", "tif", "post_only", "expires_at_ms",
        "client_order_id", "created_ms", "updated_ms", "reason",
    ),
    FILL: (
        "trade_id", "market_id", "price", "quantity", "settlement", "taker_side",
        "taker_order_id", "taker_user_id", "maker_order_id", "maker_user_id", "ts_ms",
        "fee",
    ),
    REJECTED: ("user_id", "command", "reason", "message", "order_id", "client_order_id"),
    DUPLICATE: ("order_id", "user_id", "client_order_id"),
    BALANCE: ("user_id", "available", "reserved"),
    POSITION: ("user_id", "market_id", "yes", "no", "yes_reserved", "no_reserved"),
    BOOK: ("market_id", "side", "price", "quantity"),
    LEDGER: ("user_id", "entry_kind", "amount", "event_id", "market_id", "quantity", "ts_ms"),
    EVENT: (
        "event_id", "status", "title", "description", "category", "slug", "close_time_ms",
        "tick", "markets", "created_ms", "winning_outcome_id", "void", "fee_rate",
    ),
    EVENT_DELETED: ("event_id",),
    BATCH_ITEM: ("index",),
    CLOCK: ("now_ms", "expired"),
    DEAD_MAN: ("user_id", "expires_at_ms", "timeout_ms", "fired_ms"),
    RESOLVED: (
        "event_id", "winning_outcome_id", "void", "payouts_total", "rounding", "ts_ms",
    ),
    PAYOUT: ("user_id", "event_id", "market_id", "yes", "no", "amount", "ts_ms"),
}


class Reason:
    """Reason codes of ``rejected`` events and of orders closed by the engine."""

    # rejections
    INSUFFICIENT_CASH: Final = "insufficient_cash"
    INSUFFICIENT_SHARES: Final = "insufficient_shares"
    MARKET_NOT_ACTIVE: Final = "market_not_active"
    EVENT_NOT_ACTIVE: Final = "event_not_active"
    ALREADY_RESOLVED: Final = "already_resolved"
    UNKNOWN_MARKET: Final = "unknown_market"
    UNKNOWN_EVENT: Final = "unknown_event"
    UNKNOWN_ORDER: Final = "unknown_order"
    UNKNOWN_OUTCOME: Final = "unknown_outcome"
    NOT_OWNER: Final = "not_owner"
    ORDER_NOT_OPEN: Final = "order_not_open"
    INVALID_PRICE: Final = "invalid_price"
    INVALID_QUANTITY: Final = "invalid_quantity"
    INVALID_AMOUNT: Final = "invalid_amount"
    # a deposit that would take the exchange past units.MAX_TOTAL_MONEY
    EXCHANGE_MONEY_LIMIT: Final = "exchange_money_limit"
    # a deposit that would take the user's cash past the limit the command carries
    BALANCE_LIMIT: Final = "balance_limit"
    # a placement while the user already has the open orders its command allows
    OPEN_ORDER_LIMIT: Final = "open_order_limit"
    INVALID_ORDER: Final = "invalid_order"
    INVALID_EVENT: Final = "invalid_event"
    INVALID_EXPIRY: Final = "invalid_expiry"
    # a field breaks the input limits (pmarket.engine.limits): control characters, a
    # lone surrogate, over-long text, a timestamp outside 1970..9999, an id out of range
    INVALID_FIELD: Final = "invalid_field"
    POST_ONLY_WOULD_CROSS: Final = "post_only_would_cross"
    SINGLE_OUTCOME_EVENT: Final = "single_outcome_event"
    EVENT_NOT_DELETABLE: Final = "event_not_deletable"
    DUPLICATE_COMMAND: Final = "duplicate_command"
    # a placement repeating a client_order_id with other parameters than the first
    CLIENT_ORDER_ID_REUSED: Final = "client_order_id_reused"
    # why an order stopped
    USER: Final = "cancelled_by_user"
    SELF_TRADE: Final = "self_trade"
    NOT_FILLED: Final = "not_filled"  # ioc / market / fok remainder
    EXPIRED: Final = "expired"
    EVENT_CLOSED: Final = "event_closed"
    EVENT_RESOLVED: Final = "event_resolved"
    EVENT_DELETED: Final = "event_deleted"
    DEAD_MAN_SWITCH: Final = "dead_man_switch"



class EngineEvent:
    """What every event has: its ``kind``, its wire form, equality by value.

    Attributes:
        kind: the event's kind (``ORDER``, ``FILL`` ...), the first item of its wire form.
    """

    kind: str

    def wire(self) -> tuple[object, ...]:
        """The event's wire form: ``(kind, field, ...)`` in ``LAYOUTS`` order."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EngineEvent):
            return NotImplemented
        return self.wire() == other.wire()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, EngineEvent):
            return NotImplemented
        return self.wire() != other.wire()

    def __hash__(self) -> int:
        return hash(self.wire())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in as_dict(self).items()
                           if name != "type")
        if isinstance(self, Unknown):
            return f"Unknown({self.kind!r}, {fields})"
        return f"{type(self).__name__}({fields})"


@final
class OrderState(EngineEvent):
    """Full state of an order after the command, in its owner's terms (prices
    in the owner's terms: a NO order's price is its NO price)."""

    order_id: int
    user_id: int
    market_id: int
    event_id: int
    outcome: str
    side: str
    order_type: str
    price: int
    quantity: int
    filled: int
    status: str
    tif: str
    post_only: bool
    expires_at_ms: int | None
    client_order_id: str | None
    created_ms: int
    updated_ms: int
    reason: str | None

    def __init__(self, order_id: int, user_id: int, market_id: int, event_id: int,
                 outcome: str, side: str, order_type: str, price: int, quantity: int,
                 filled: int, status: str, tif: str, post_only: bool,
                 expires_at_ms: int | None, client_order_id: str | None, created_ms: int,
                 updated_ms: int, reason: str | None) -> None:
        self.kind = ORDER
        self.order_id = order_id
        self.user_id = user_id
        self.market_id = market_id
        self.event_id = event_id
        self.outcome = outcome
        self.side = side
        self.order_type = order_type
        self.price = price
        self.quantity = quantity
        self.filled = filled
        self.status = status
        self.tif = tif
        self.post_only = post_only
        self.expires_at_ms = expires_at_ms
        self.client_order_id = client_order_id
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        self.reason = reason

    def wire(self) -> tuple[object, ...]:
        return (ORDER, self.order_id, self.user_id, self.market_id, self.event_id,
                self.outcome, self.side, self.order_type, self.price, self.quantity,
                self.filled, self.status, self.tif, self.post_only, self.expires_at_ms,
                self.client_order_id, self.created_ms, self.updated_ms, self.reason)


@final
class Fill(EngineEvent):
    """One trade. ``price`` is in YES terms; ``settlement`` is transfer_yes | mint | merge |
    transfer_no; ``taker_side`` is ``"buy"`` when the taker was the YES bid (buy YES or sell
    NO); ``fee`` is what the taker paid (``units.taker_fee``; makers pay nothing)."""

    trade_id: int
    market_id: int
    price: int
    quantity: int
    settlement: str
    taker_side: str
    taker_order_id: int
    taker_user_id: int
    maker_order_id: int
    maker_user_id: int
    ts_ms: int
    fee: int

    def __init__(self, trade_id: int, market_id: int, price: int, quantity: int,
                 settlement: str, taker_side: str, taker_order_id: int, taker_user_id: int,
                 maker_order_id: int, maker_user_id: int, ts_ms: int, fee: int = 0) -> None:
        self.kind = FILL
        self.trade_id = trade_id
        self.market_id = market_id
        self.price = price
        self.quantity = quantity
        self.settlement = settlement
        self.taker_side = taker_side
        self.taker_order_id = taker_order_id
        self.taker_user_id = taker_user_id
        self.maker_order_id = maker_order_id
        self.maker_user_id = maker_user_id
        self.ts_ms = ts_ms
        self.fee = fee

    def wire(self) -> tuple[object, ...]:
        return (FILL, self.trade_id, self.market_id, self.price, self.quantity,
                self.settlement, self.taker_side, self.taker_order_id, self.taker_user_id,
                self.maker_order_id, self.maker_user_id, self.ts_ms, self.fee)


@final
class Rejected(EngineEvent):
    """A command (or one order of a batch) that changed nothing; ``reason`` is a
    ``Reason`` code. The ids are what the command carried (any value: a command is
    rejected as data, whatever it holds)."""

    user_id: object
    command: str
    reason: str
    message: str
    order_id: object
    client_order_id: object

    def __init__(self, user_id: object, command: str, reason: str, message: str,
                 order_id: object, client_order_id: object) -> None:
        self.kind = REJECTED
        self.user_id = user_id
        self.command = command
        self.reason = reason
        self.message = message
        self.order_id = order_id
        self.client_order_id = client_order_id

    def wire(self) -> tuple[object, ...]:
        return (REJECTED, self.user_id, self.command, self.reason, self.message,
                self.order_id, self.client_order_id)


@final
class Duplicate(EngineEvent):
    """A placement repeating a client_order_id; the existing order's state follows."""

    order_id: int
    user_id: int
    client_order_id: str

    def __init__(self, order_id: int, user_id: int, client_order_id: str) -> None:
        self.kind = DUPLICATE
        self.order_id = order_id
        self.user_id = user_id
        self.client_order_id = client_order_id

    def wire(self) -> tuple[object, ...]:
        return (DUPLICATE, self.order_id, self.user_id, self.client_order_id)


@final
class BalanceState(EngineEvent):
    """A user's cash after the command."""

    user_id: int
    available: int
    reserved: int

    def __init__(self, user_id: int, available: int, reserved: int) -> None:
        self.kind = BALANCE
        self.user_id = user_id
        self.available = available
        self.reserved = reserved

    def wire(self) -> tuple[object, ...]:
        return (BALANCE, self.user_id, self.available, self.reserved)


@final
class PositionState(EngineEvent):
    """Shares held (reserved included) and the part locked by open sell orders."""

    user_id: int
    market_id: int
    yes: int
    no: int
    yes_reserved: int
    no_reserved: int

    def __init__(self, user_id: int, market_id: int, yes: int, no: int, yes_reserved: int,
                 no_reserved: int) -> None:
        self.kind = POSITION
        self.user_id = user_id
        self.market_id = market_id
        self.yes = yes
        self.no = no
        self.yes_reserved = yes_reserved
        self.no_reserved = no_reserved

    def wire(self) -> tuple[object, ...]:
        return (POSITION, self.user_id, self.market_id, self.yes, self.no,
                self.yes_reserved, self.no_reserved)


@final
class BookLevel(EngineEvent):
    """A YES-book level's new total quantity (0: the level is gone); ``side`` is
    ``"bid"`` or ``"ask"``."""

    market_id: int
    side: str
    price: int
    quantity: int

    def __init__(self, market_id: int, side: str, price: int, quantity: int) -> None:
        self.kind = BOOK
        self.market_id = market_id
        self.side = side
        self.price = price
        self.quantity = quantity

    def wire(self) -> tuple[object, ...]:
        return (BOOK, self.market_id, self.side, self.price, self.quantity)


@final
class LedgerEntry(EngineEvent):
    """Cash or shares crossing an account's boundary other than by a trade
    (``entry_kind``: deposit, withdrawal, split, merge, split_event, merge_event, convert,
    payout). ``amount`` is the signed cash change of the user; ``quantity`` the shares
    involved."""

    user_id: int
    entry_kind: str
    amount: int
    event_id: int | None
    market_id: int | None
    quantity: int
    ts_ms: int

    def __init__(self, user_id: int, entry_kind: str, amount: int, event_id: int | None,
                 market_id: int | None, quantity: int, ts_ms: int) -> None:
        self.kind = LEDGER
        self.user_id = user_id
        self.entry_kind = entry_kind
        self.amount = amount
        self.event_id = event_id
        self.market_id = market_id
        self.quantity = quantity
        self.ts_ms = ts_ms

    def wire(self) -> tuple[object, ...]:
        return (LEDGER, self.user_id, self.entry_kind, self.amount, self.event_id,
                self.market_id, self.quantity, self.ts_ms)


@final
class EventState(EngineEvent):
    """Full state of an event; ``markets`` is a tuple of ``(market_id,
    outcome_name)``; ``fee_rate`` in units (700 = 7%)."""

    event_id: int
    status: str
    title: str
    description: str
    category: str
    slug: str
    close_time_ms: int | None
    tick: int
    markets: tuple[tuple[int, str], ...]
    created_ms: int
    winning_outcome_id: int | None
    void: bool
    fee_rate: int

    def __init__(self, event_id: int, status: str, title: str, description: str,
                 category: str, slug: str, close_time_ms: int | None, tick: int,
                 markets: tuple[tuple[int, str], ...], created_ms: int,
                 winning_outcome_id: int | None, void: bool, fee_rate: int = 0) -> None:
        self.kind = EVENT
        self.event_id = event_id
        self.status = status
        self.title = title
        self.description = description
        self.category = category
        self.slug = slug
        self.close_time_ms = close_time_ms
        self.tick = tick
        self.markets = markets
        self.created_ms = created_ms
        self.winning_outcome_id = winning_outcome_id
        self.void = void
        self.fee_rate = fee_rate

    def wire(self) -> tuple[object, ...]:
        return (EVENT, self.event_id, self.status, self.title, self.description,
                self.category, self.slug, self.close_time_ms, self.tick, self.markets,
                self.created_ms, self.winning_outcome_id, self.void, self.fee_rate)


@final
class EventDeleted(EngineEvent):
    """An event deleted (it had no trades and no positions)."""

    event_id: int

    def __init__(self, event_id: int) -> None:
        self.kind = EVENT_DELETED
        self.event_id = event_id

    def wire(self) -> tuple[object, ...]:
        return (EVENT_DELETED, self.event_id)


@final
class BatchItem(EngineEvent):
    """In a batch's events: everything up to the next ``batch_item`` belongs to
    order ``index``."""

    index: int

    def __init__(self, index: int) -> None:
        self.kind = BATCH_ITEM
        self.index = index

    def wire(self) -> tuple[object, ...]:
        return (BATCH_ITEM, self.index)


@final
class Clock(EngineEvent):
    """The command's time made something due before the command itself was applied:
    the events before this marker are what fell due (expired gtd orders, events closed at
    their close time, dead-man switches fired), the events after it the command's.
    ``expired`` counts the gtd orders expired (0 when only timers fired)."""

    now_ms: int
    expired: int

    def __init__(self, now_ms: int, expired: int) -> None:
        self.kind = CLOCK
        self.now_ms = now_ms
        self.expired = expired

    def wire(self) -> tuple[object, ...]:
        return (CLOCK, self.now_ms, self.expired)


@final
class DeadManState(EngineEvent):
    """A user's dead-man switch after a heartbeat, a disarm or its firing.
    ``expires_at_ms`` is None when it is off; ``fired_ms`` is when it fired (the firing
    itself, or, in a heartbeat's event, a firing since the previous heartbeat), else None."""

    user_id: int
    expires_at_ms: int | None
    timeout_ms: int
    fired_ms: int | None

    def __init__(self, user_id: int, expires_at_ms: int | None, timeout_ms: int,
                 fired_ms: int | None) -> None:
        self.kind = DEAD_MAN
        self.user_id = user_id
        self.expires_at_ms = expires_at_ms
        self.timeout_ms = timeout_ms
        self.fired_ms = fired_ms

    def wire(self) -> tuple[object, ...]:
        return (DEAD_MAN, self.user_id, self.expires_at_ms, self.timeout_ms, self.fired_ms)


@final
class Resolved(EngineEvent):
    """An event resolved: its winner (None: void), what it paid and the rounding kept."""

    event_id: int
    winning_outcome_id: int | None
    void: bool
    payouts_total: int
    rounding: int
    ts_ms: int

    def __init__(self, event_id: int, winning_outcome_id: int | None, void: bool,
                 payouts_total: int, rounding: int, ts_ms: int) -> None:
        self.kind = RESOLVED
        self.event_id = event_id
        self.winning_outcome_id = winning_outcome_id
        self.void = void
        self.payouts_total = payouts_total
        self.rounding = rounding
        self.ts_ms = ts_ms

    def wire(self) -> tuple[object, ...]:
        return (RESOLVED, self.event_id, self.winning_outcome_id, self.void,
                self.payouts_total, self.rounding, self.ts_ms)


@final
class Payout(EngineEvent):
    """What a resolution paid one position: the YES and NO shares it burned and the
    cash they paid (the same amount as that position's ``payout`` ledger entry, which
    cannot say which side the shares were on)."""

    user_id: int
    event_id: int
    market_id: int
    yes: int
    no: int
    amount: int
    ts_ms: int

    def __init__(self, user_id: int, event_id: int, market_id: int, yes: int, no: int,
                 amount: int, ts_ms: int) -> None:
        self.kind = PAYOUT
        self.user_id = user_id
        self.event_id = event_id
        self.market_id = market_id
        self.yes = yes
        self.no = no
        self.amount = amount
        self.ts_ms = ts_ms

    def wire(self) -> tuple[object, ...]:
        return (PAYOUT, self.user_id, self.event_id, self.market_id, self.yes, self.no,
                self.amount, self.ts_ms)

@final
class Unknown(EngineEvent):
    """A stored event of a kind this version does not know (``from_wire`` keeps it as it
    came: a consumer refuses it by its kind, the worker parks it)."""

    fields: tuple[object, ...]

    def __init__(self, kind: str, fields: tuple[object, ...]) -> None:
        self.kind = kind
        self.fields = fields

    def wire(self) -> tuple[object, ...]:
        return (self.kind, *self.fields)


AnyEvent = (OrderState | Fill | Rejected | Duplicate | BalanceState | PositionState | BookLevel
            | LedgerEntry | EventState | EventDeleted | BatchItem | Clock | DeadManState
            | Resolved | Payout | Unknown)
"""Every event class (``EngineEvent`` is their base)."""


def to_wire(event: EngineEvent) -> tuple[object, ...]:
    """The event's wire form: ``(kind, field, ...)``, fields in ``LAYOUTS`` order."""
    return event.wire()


def wire_rows(events: list[EngineEvent]) -> list[tuple[object, ...]]:
    """The wire forms of a list of events (what the bus and the log encode as JSON)."""
    return [e.wire() for e in events]


def from_wire(row: Any) -> EngineEvent:
    """The event a wire form (a list or tuple ``[kind, field, ...]``) stands for.

    Reads what older versions wrote too: a ``fill`` without its fee (0, which is what it
    charged) and an ``event`` without its fee_rate (0). A kind this version does not
    know comes back as ``Unknown``.

    Raises:
        ValueError: the row is not a kind followed by the fields of that kind (a wrong
            count of fields, or, in the compiled engine, a field of the wrong type).
    """
    if not isinstance(row, (list, tuple)) or not row or not isinstance(row[0], str):
        raise ValueError(f"an event must be an array starting with its kind: {row!r}")
    kind: str = row[0]
    try:
        if kind == ORDER:
            _arity(row, 18, 18)
            return OrderState(row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                              row[8], row[9], row[10], row[11], row[12], row[13], row[14],
                              row[15], row[16], row[17], row[18])
        elif kind == FILL:
            _arity(row, 12 - 1, 12)  # without its last field: stored before it existed
            return Fill(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                        row[9], row[10], row[11], row[12] if len(row) > 12 else 0)
        elif kind == REJECTED:
            _arity(row, 6, 6)
            return Rejected(row[1], row[2], row[3], row[4], row[5], row[6])
        elif kind == DUPLICATE:
            _arity(row, 3, 3)
            return Duplicate(row[1], row[2], row[3])
        elif kind == BALANCE:
            _arity(row, 3, 3)
            return BalanceState(row[1], row[2], row[3])
        elif kind == POSITION:
            _arity(row, 6, 6)
            return PositionState(row[1], row[2], row[3], row[4], row[5], row[6])
        elif kind == BOOK:
            _arity(row, 4, 4)
            return BookLevel(row[1], row[2], row[3], row[4])
        elif kind == LEDGER:
            _arity(row, 7, 7)
            return LedgerEntry(row[1], row[2], row[3], row[4], row[5], row[6], row[7])
        elif kind == EVENT:
            _arity(row, 13 - 1, 13)  # without its last field: stored before it existed
            return EventState(row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                              row[8], _pairs(row[9]), row[10], row[11], row[12],
                              row[13] if len(row) > 13 else 0)
        elif kind == EVENT_DELETED:
            _arity(row, 1, 1)
            return EventDeleted(row[1])
        elif kind == BATCH_ITEM:
            _arity(row, 1, 1)
            return BatchItem(row[1])
        elif kind == CLOCK:
            _arity(row, 2, 2)
            return Clock(row[1], row[2])
        elif kind == DEAD_MAN:
            _arity(row, 4, 4)
            return DeadManState(row[1], row[2], row[3], row[4])
        elif kind == RESOLVED:
            _arity(row, 6, 6)
            return Resolved(row[1], row[2], row[3], row[4], row[5], row[6])
        elif kind == PAYOUT:
            _arity(row, 7, 7)
            return Payout(row[1], row[2], row[3], row[4], row[5], row[6], row[7])
        else:
            return Unknown(kind, tuple(row[1:]))
    except TypeError as exc:
        raise ValueError(f"malformed {kind} event {list(row)!r}: {exc}") from None


def _arity(row: Any, least: int, most: int) -> None:
    n = len(row) - 1
    if n < least or n > most:
        raise ValueError(f"{row[0]} event has {n} fields, its layout has {most}: {list(row)!r}")


def _pairs(value: Any) -> tuple[tuple[int, str], ...]:
    """An event's ``(market_id, name)`` pairs, from JSON arrays or tuples."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"markets must be an array of [market_id, name], got {value!r}")
    out: list[tuple[int, str]] = []
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"a market must be [market_id, name], got {pair!r}")
        mid: int = pair[0]
        name: str = pair[1]
        out.append((mid, name))
    return tuple(out)


def as_dict(event: EngineEvent) -> dict[str, Any]:
    """Name the fields of an event: ``{"type": kind, field: value, ...}``."""
    row = event.wire()
    names = LAYOUTS.get(event.kind)
    if names is None:
        return {"type": event.kind, "fields": row[1:]}
    out: dict[str, Any] = {"type": event.kind}
    out.update(zip(names, row[1:], strict=True))
    return out


def command_events(events: list[EngineEvent]) -> list[EngineEvent]:
    """The events of the command itself, without what its time made due."""
    for i, event in enumerate(events):
        if event.kind == CLOCK:
            return events[i + 1:]
        if event.kind not in _EXPIRY_KINDS:
            break
    return events


_EXPIRY_KINDS = frozenset((ORDER, POSITION, BALANCE, BOOK, EVENT, DEAD_MAN))


def first_order(events: list[EngineEvent]) -> OrderState | None:
    """The first ``order`` event of ``events``: in a placement's or a modification's
    ``command_events``, the order itself."""
    for event in events:
        if isinstance(event, OrderState):
            return event
    return None


def of_kind(events: list[EngineEvent], kind: str) -> list[dict[str, Any]]:
    """The events of one kind, as dicts, in order."""
    return [as_dict(e) for e in events if e.kind == kind]
