"""The values a simulator target speaks in: the public API's objects, and the
simulator's own plain data.

The API's objects come from ``pmarket.api`` (``Balance``, ``Market``, ``ErrorDetail``: a
refused request's code and message inside a ``Result``, never an exception). The rest
is the simulator's: what a run needs beyond the API (``Trader`` with its credential,
``OrderState`` with its owner and why it closed, ``Fill`` with both order ids) or less
than it (``BookLevels`` and ``Holding``, which the engine alone can answer), as plain
data built once per order of a load run. There, money and prices are decimal strings
("0.57", "125.4000") as in ``docs/API.md``, quantities and ids integers; fill prices
are in YES terms (the canonical book's price), order prices in their owner's terms. Both
targets (``inprocess_target`` and ``http_target``) and the runner build and read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from ..api import Balance, ErrorDetail, Market
from ..engine import units

__all__ = [
    "AuditCheck",
    "Balance",
    "BookLevels",
    "ErrorDetail",
    "EventInfo",
    "Fill",
    "Holding",
    "Market",
    "OrderRequest",
    "OrderState",
    "Result",
    "Trader",
    "price_text",
]


@dataclass(frozen=True, slots=True)
class Trader:
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


class Fill(NamedTuple):
    """One trade as the engine made it (the API's own trades are ``pmarket.api.Trade``):
    ``price`` in YES terms, ``kind`` transfer_yes|mint|merge|transfer_no, both order ids."""

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

    error: ErrorDetail | None = None
    order: OrderState | None = None
    trades: list[Fill] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    items: list[Result] = field(default_factory=list)
    duplicate: bool = False
    payouts_total: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
class AuditCheck:
    """The simulator's verdict on ``GET /admin/audit``: whether the money invariant holds,
    and what is wrong if not (``problems``, in words)."""

    ok: bool
    difference: str
    problems: list[str]


@lru_cache(maxsize=65_536)
def price_text(price: int, tick: int) -> str:
    """A price in units as the decimal string of its market's grid (cached)."""
    return units.format_price(price, tick)
