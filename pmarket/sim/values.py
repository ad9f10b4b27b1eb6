"""The values a simulator target speaks in: the public API's objects, as plain data.

Money and prices are decimal strings ("0.57", "125.4000") as in ``docs/API.md``,
quantities and ids integers; a refused request is a ``Rejection`` (the API's error code
and message) inside a ``Result``, never an exception. Trade prices are in YES terms (the
canonical book's price), order prices in their owner's terms. Both targets
(``inprocess_target`` and ``http_target``) and the runner build and read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from ..engine import units

__all__ = [
    "Audit",
    "Balance",
    "BookLevels",
    "EventInfo",
    "Holding",
    "MarketInfo",
    "OrderRequest",
    "OrderState",
    "Rejection",
    "Result",
    "Trade",
    "User",
    "price_text",
]


@dataclass(frozen=True, slots=True)
class User:
    """A signed-up user; ``token`` authenticates its requests (None in-process)."""

    id: int
    name: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class EventInfo:
    """A created event: its id, and the market id of each outcome by name."""

    id: int
    title: str
    markets: dict[str, int]
    tick_size: str


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The body of ``POST /orders`` (``expires_at_ms``: simulated Unix milliseconds)."""

    market_id: int
    outcome: str
    side: str
    quantity: int
    price: str | None = None
    type: str = "limit"
    time_in_force: str = "gtc"
    expires_at_ms: int | None = None
    post_only: bool = False
    client_order_id: str | None = None
    stp: str = "cancel_resting"


class OrderState(NamedTuple):
    """An order in its owner's terms; ``reason`` says why a closed order stopped.

    A named tuple rather than a dataclass: one is built per order of a load run, and a
    tuple is several times cheaper to build than a frozen dataclass.
    """

    id: int
    user_id: int
    market_id: int
    outcome: str
    side: str
    type: str
    price: str
    quantity: int
    filled_quantity: int
    status: str
    time_in_force: str
    reason: str | None = None
    client_order_id: str | None = None
    expires_at_ms: int | None = None

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.filled_quantity


class Trade(NamedTuple):
    """One trade; ``price`` in YES terms, ``kind`` transfer_yes|mint|merge|transfer_no."""

    id: int
    market_id: int
    price: str
    quantity: int
    kind: str
    taker_side: str
    taker_order_id: int
    maker_order_id: int | None
    ts_ms: int
    fee: str = "0"  # what the taker paid (money)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused request: the API's error code and its human sentence."""

    code: str
    message: str


@dataclass(slots=True)
class Result:
    """What one request did.

    Attributes:
        error: why the request was refused (nothing changed), or None.
        order: the placed / modified / cancelled order's new state.
        trades: the trades the request made, in order.
        cancelled: ids of the orders a cancel-all (or expiry) closed.
        items: one result per order of a batch, in request order.
        duplicate: the placement repeated a client_order_id; ``order`` is the original.
        payouts_total: money paid out by a resolution (decimal string).
    """

    error: Rejection | None = None
    order: OrderState | None = None
    trades: list[Trade] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    items: list[Result] = field(default_factory=list)
    duplicate: bool = False
    payouts_total: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Balance:
    """``GET /balance``: cash available and reserved by open buys."""

    available: str
    reserved: str


@dataclass(frozen=True, slots=True)
class Holding:
    """One market of ``GET /positions``: shares held (reserved included) and reserved."""

    market_id: int
    yes: int
    no: int
    yes_reserved: int
    no_reserved: int


@dataclass(frozen=True, slots=True)
class BookLevels:
    """``GET /markets/{id}/orderbook``: levels ``(price, quantity)`` in the view's terms."""

    market_id: int
    view: str
    bids: list[tuple[str, int]]
    asks: list[tuple[str, int]]
    best_bid: str | None
    best_ask: str | None
    last_price: str | None


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """``GET /markets/{id}`` (prices in YES terms)."""

    id: int
    event_id: int
    status: str
    tick_size: str
    last_price: str | None
    best_bid: str | None
    best_ask: str | None
    volume: int
    open_interest: int
    result: str | None = None
    """None while the event is open; "yes", "no" or "void" once it is resolved."""


@dataclass(frozen=True, slots=True)
class Audit:
    """``GET /admin/audit``: whether the money invariant holds, and what is wrong if not."""

    ok: bool
    difference: str
    problems: list[str]


@lru_cache(maxsize=65_536)
def price_text(price: int, tick: int) -> str:
    """A price in units as the decimal string of its market's grid (cached)."""
    return units.format_price(price, tick)
