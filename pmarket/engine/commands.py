"""Commands: everything that can change the engine's state.

A command is a plain value. The engine applies commands one at a time, in log order,
and nothing else changes it; time and sequence numbers travel *in* the command
(``seq``, ``ts_ms``) because the engine has no clock. Applying the same command log to
a fresh engine always yields the same events and the same state.

Prices and amounts are integer units (see ``units``); prices are in the owner's own
terms (a buy of NO at 0.30 carries ``price=3000``, ``outcome=Outcome.NO``).

The classes are native (compiled with the rest of the core, ``compiled.CORE``), so the
engine reads a command's fields as struct fields. Other packages build commands with
values of any type (the bus codec validates first; tests send poison on purpose), and
the engine rejects a bad value as data, so every field a client controls is declared
``Unchecked[T]``: ``T`` to readers and to the codec, which decodes the wire into ``T``,
but stored unchecked, so a command is never refused at construction. Only the envelope
the runner stamps (``seq``, ``ts_ms``) is exactly ``int``. The ``Unchecked`` annotations
are quoted: mypyc keeps a quoted annotation for ``typing.get_type_hints`` (the codec
reads the field types there) and would replace an unquoted union with ``type``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

_T = TypeVar("_T")

Unchecked = Union[_T, Any]  # noqa: UP007 (``X | Any`` cannot take a type variable)
"""A command field a client controls: read as ``_T``, stored as any value (module doc)."""


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Outcome(enum.Enum):
    YES = "yes"
    NO = "no"


class OrderType(enum.Enum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(enum.Enum):
    GTC = "gtc"
    GTD = "gtd"
    IOC = "ioc"
    FOK = "fok"


class SelfTrade(enum.Enum):
    """What happens when an order would trade with its owner's own resting order."""

    CANCEL_RESTING = "cancel_resting"
    CANCEL_TAKER = "cancel_taker"
    CANCEL_BOTH = "cancel_both"


class EventStatus(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"
    RESOLVED = "resolved"


@dataclass(slots=True, kw_only=True)
class Command:
    """Base of every command: the envelope the runner stamps.

    Attributes:
        seq: position in the command log (0 = unsequenced, e.g. in tests). The engine
            refuses a sequenced command whose ``seq`` is not above the last one applied,
            so a redelivered command is never applied twice.
        ts_ms: Unix time in milliseconds assigned by the runner; the engine's clock.
    """

    seq: int = 0
    ts_ms: int = 0


# --- admin: events and markets ------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class CreateEvent(Command):
    """Create an event with one market per outcome (no outcomes: a single yes/no market)."""

    title: "Unchecked[str]"
    outcomes: "Unchecked[tuple[str, ...]]" = ()
    tick: "Unchecked[int]" = 100
    description: "Unchecked[str]" = ""
    category: "Unchecked[str]" = ""
    slug: "Unchecked[str]" = ""
    close_time_ms: "Unchecked[int | None]" = None
    fee_rate: "Unchecked[int]" = 0  # units (700 = 7%), 0..units.MAX_FEE_RATE: takers' fee rate


@dataclass(slots=True, kw_only=True)
class UpdateEvent(Command):
    """Change an event's descriptive fields and/or close (cancels open orders) or reopen it.

    A new ``fee_rate`` applies to the fills of the commands after this one.
    """

    event_id: "Unchecked[int]"
    title: "Unchecked[str | None]" = None
    description: "Unchecked[str | None]" = None
    category: "Unchecked[str | None]" = None
    close_time_ms: "Unchecked[int | None]" = None
    status: "Unchecked[EventStatus | None]" = None
    fee_rate: "Unchecked[int | None]" = None


@dataclass(slots=True, kw_only=True)
class DeleteEvent(Command):
    """Delete an event in which nothing ever traded and nothing is held."""

    event_id: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class ResolveEvent(Command):
    """Resolve with a winning outcome, with no winner (single-outcome only), or void."""

    event_id: "Unchecked[int]"
    winning_outcome_id: "Unchecked[int | None]" = None
    void: "Unchecked[bool]" = False


# --- money across the boundary -------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Deposit(Command):
    """Credit ``amount`` units to the user.

    Attributes:
        max_balance: the most cash (available + reserved, units) the user may hold after
            the deposit; 0 means no per-user limit. The server stamps its configured
            limit here, so the limit in force is part of the command log.
    """

    user_id: "Unchecked[int]"
    amount: "Unchecked[int]"
    max_balance: "Unchecked[int]" = 0


@dataclass(slots=True, kw_only=True)
class Withdraw(Command):
    user_id: "Unchecked[int]"
    amount: "Unchecked[int]"


# --- trading -------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class PlaceOrder(Command):
    """Place an order in the owner's terms.

    ``price`` is the limit price, or for a market order its optional protective worst
    price (default: the worst price on the grid). ``expires_at_ms`` is required for
    ``gtd``. A repeated ``client_order_id`` of the same user never creates a second order.
    ``max_open_orders``: the most open orders the user may have when this one arrives
    (it is refused at that many); 0 means no limit. The server stamps its configured
    limit here, so the limit in force is part of the command log.
    """

    user_id: "Unchecked[int]"
    market_id: "Unchecked[int]"
    outcome: "Unchecked[Outcome]"
    side: "Unchecked[Side]"
    quantity: "Unchecked[int]"
    price: "Unchecked[int | None]" = None
    order_type: "Unchecked[OrderType]" = OrderType.LIMIT
    tif: "Unchecked[TimeInForce]" = TimeInForce.GTC
    expires_at_ms: "Unchecked[int | None]" = None
    post_only: "Unchecked[bool]" = False
    client_order_id: "Unchecked[str | None]" = None
    stp: "Unchecked[SelfTrade]" = SelfTrade.CANCEL_RESTING
    max_open_orders: "Unchecked[int]" = 0


@dataclass(slots=True, kw_only=True)
class PlaceBatch(Command):
    """Place several orders of one user; each succeeds or is rejected on its own."""

    user_id: "Unchecked[int]"
    orders: "Unchecked[tuple[PlaceOrder, ...]]" = field(default_factory=tuple)


@dataclass(slots=True, kw_only=True)
class ModifyOrder(Command):
    """Change price and/or total quantity (filled part included) of an open order.

    A lower quantity at the same price keeps time priority; a price change or a higher
    quantity loses it (and may trade at once, as a new order would).
    """

    user_id: "Unchecked[int]"
    order_id: "Unchecked[int]"
    price: "Unchecked[int | None]" = None
    quantity: "Unchecked[int | None]" = None


@dataclass(slots=True, kw_only=True)
class CancelOrder(Command):
    user_id: "Unchecked[int]"
    order_id: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class CancelAll(Command):
    """Cancel every open order of a user, optionally only in one market."""

    user_id: "Unchecked[int]"
    market_id: "Unchecked[int | None]" = None


@dataclass(slots=True, kw_only=True)
class Expire(Command):
    """The clock tick: advance the clock to ``ts_ms``; changes nothing else.

    Every command advances the clock, and whatever its time makes due happens before
    the command itself (``timers``): gtd orders expire, events reaching their
    ``close_time`` close, dead-man switches past their deadline fire. The runtime sends
    this command when something is due and no other command came (``next_due_ms``).
    """


# --- dead-man switch -----------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Heartbeat(Command):
    """Arm (or keep armed) the user's dead-man switch until ``ts_ms + timeout_ms``.

    If the clock reaches that deadline before the next heartbeat, every open order of
    the user is cancelled and the switch turns off. A heartbeat whose time is at or
    past the deadline is too late: the switch fires first, then this one arms it anew.
    """

    user_id: "Unchecked[int]"
    timeout_ms: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class DisarmHeartbeat(Command):
    """Turn the user's dead-man switch off (nothing happens if it is not armed)."""

    user_id: "Unchecked[int]"


# --- collateral operations -----------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Split(Command):
    """$1 per unit of ``quantity`` -> 1 YES + 1 NO of a market."""

    user_id: "Unchecked[int]"
    market_id: "Unchecked[int]"
    quantity: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class Merge(Command):
    """1 YES + 1 NO of a market -> $1, per unit of ``quantity``."""

    user_id: "Unchecked[int]"
    market_id: "Unchecked[int]"
    quantity: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class SplitEvent(Command):
    """$1 -> one YES of every outcome (events with two or more outcomes only)."""

    user_id: "Unchecked[int]"
    event_id: "Unchecked[int]"
    quantity: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class MergeEvent(Command):
    """One YES of every outcome -> $1 (events with two or more outcomes only)."""

    user_id: "Unchecked[int]"
    event_id: "Unchecked[int]"
    quantity: "Unchecked[int]"


@dataclass(slots=True, kw_only=True)
class Convert(Command):
    """NO of each outcome in ``outcome_ids`` -> YES of every other outcome.

    Converting k NOs also releases $(k - 1) per unit: k NOs always pay k - 1 more than
    the YES of the remaining outcomes.
    """

    user_id: "Unchecked[int]"
    event_id: "Unchecked[int]"
    outcome_ids: "Unchecked[tuple[int, ...]]"
    quantity: "Unchecked[int]"


ADMIN_COMMANDS = (CreateEvent, UpdateEvent, DeleteEvent, ResolveEvent)
"""Commands only an operator may send."""
