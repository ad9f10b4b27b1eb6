"""Events: everything the engine says happened.

``Engine.apply(command)`` returns a list of events. Each event is a flat tuple whose first
item names its kind and whose other items follow the layout in ``LAYOUTS`` (use
``as_dict`` to read one by name). Tuples, not objects, because the engine emits several
per order: building a tuple costs ~0.09 µs against ~0.3-0.6 µs for a slotted object or a
NamedTuple (docs/PERFORMANCE.md), and they serialise straight to JSON arrays.

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
"""

from __future__ import annotations

from typing import Any, Final

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
    # Full state of an order after the command, in its owner's terms.
    ORDER: (
        "order_id", "user_id", "market_id", "event_id", "outcome", "side", "order_type",
        "price", "quantity", "filled", "status", "tif", "post_only", "expires_at_ms",
        "client_order_id", "created_ms", "updated_ms", "reason",
    ),
    # One trade. price is YES terms; kind is transfer_yes | mint | merge | transfer_no;
    # taker_side is "buy" when the taker was the YES bid (buy YES or sell NO); fee is
    # what the taker paid (units.taker_fee; makers pay nothing).
    FILL: (
        "trade_id", "market_id", "price", "quantity", "kind", "taker_side",
        "taker_order_id", "taker_user_id", "maker_order_id", "maker_user_id", "ts_ms",
        "fee",
    ),
    # A command (or one order of a batch) that changed nothing.
    REJECTED: ("user_id", "command", "reason", "message", "order_id", "client_order_id"),
    # A placement repeating a client_order_id; the existing order's state follows.
    DUPLICATE: ("order_id", "user_id", "client_order_id"),
    BALANCE: ("user_id", "available", "reserved"),
    # Shares held (reserved included) and the part locked by open sell orders.
    POSITION: ("user_id", "market_id", "yes", "no", "yes_reserved", "no_reserved"),
    # A YES-book level's new total quantity (0: the level is gone).
    BOOK: ("market_id", "side", "price", "quantity"),
    # Cash or shares crossing an account's boundary other than by a trade: deposit,
    # withdrawal, split, merge, split_event, merge_event, convert, payout.
    # amount is the signed cash change of the user; quantity the shares involved.
    LEDGER: ("user_id", "kind", "amount", "event_id", "market_id", "quantity", "ts_ms"),
    # Full state of an event; markets is a tuple of (market_id, outcome_name); fee_rate
    # in units (700 = 7%).
    EVENT: (
        "event_id", "status", "title", "description", "category", "slug", "close_time_ms",
        "tick", "markets", "created_ms", "winning_outcome_id", "void", "fee_rate",
    ),
    EVENT_DELETED: ("event_id",),
    # In a batch's events: everything up to the next batch_item belongs to order `index`.
    BATCH_ITEM: ("index",),
    # The command's time made something due before the command itself was applied: the
    # events before this marker are what fell due (expired gtd orders, events closed at
    # their close time, dead-man switches fired), the events after it the command's.
    # expired counts the gtd orders expired (0 when only timers fired).
    CLOCK: ("now_ms", "expired"),
    # A user's dead-man switch after a heartbeat, a disarm or its firing. expires_at_ms
    # is None when it is off; fired_ms is when it fired (the firing itself, or, in a
    # heartbeat's event, a firing since the previous heartbeat), else None.
    DEAD_MAN: ("user_id", "expires_at_ms", "timeout_ms", "fired_ms"),
    RESOLVED: (
        "event_id", "winning_outcome_id", "void", "payouts_total", "rounding", "ts_ms",
    ),
    # What a resolution paid one position: the YES and NO shares it burned and the cash
    # they paid (the same amount as that position's ``payout`` ledger entry, which
    # cannot say which side the shares were on).
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


def as_dict(event: tuple[Any, ...]) -> dict[str, Any]:
    """Name the fields of an event: ``{"type": kind, field: value, ...}``."""
    kind = event[0]
    names = LAYOUTS[kind]
    if len(names) != len(event) - 1:
        raise ValueError(f"{kind} event has {len(event) - 1} fields, layout has {len(names)}")
    out: dict[str, Any] = {"type": kind}
    out.update(zip(names, event[1:], strict=True))
    return out


def command_events(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The events of the command itself, without what its time made due."""
    for i, event in enumerate(events):
        if event[0] == CLOCK:
            return events[i + 1:]
        if event[0] not in _EXPIRY_KINDS:
            break
    return events


_EXPIRY_KINDS = frozenset((ORDER, POSITION, BALANCE, BOOK, EVENT, DEAD_MAN))


def of_kind(events: list[tuple[Any, ...]], kind: str) -> list[dict[str, Any]]:
    """The events of one kind, as dicts, in order."""
    return [as_dict(e) for e in events if e[0] == kind]
