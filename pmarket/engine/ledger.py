"""Accounts, positions, events and markets: the state the engine's money lives in.

Money invariant (DESIGN §1), checked by ``Engine.audit``:
    Σ account cash (available + reserved) + Σ event collateral + fees + rounding
        == Σ deposits - Σ withdrawals  (``Treasury.held``)  <= ``units.MAX_TOTAL_MONEY``.
Shares only come into existence in fully collateralised bundles (mint, split, event
split, convert), so every event's collateral equals what it will pay out under *any*
resolution.

Compiled with mypyc (see setup.py): classes here are native, with fixed, typed
attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .book import Book
from .events import BalanceState, EventState, OrderState, PositionState

if TYPE_CHECKING:
    from .book import Order


class Position:
    """A user's shares of one market: held (reserved included) and locked by sells."""

    user: int
    market_id: int
    yes: int
    no: int
    yes_reserved: int
    no_reserved: int
    touched: bool  # listed among what the current command changed

    def __init__(self, user: int, market_id: int) -> None:
        self.user = user
        self.market_id = market_id
        self.yes = 0
        self.no = 0
        self.yes_reserved = 0
        self.no_reserved = 0
        self.touched = False

    @property
    def is_empty(self) -> bool:
        """Whether the user holds no share of this market."""
        return not (self.yes or self.no)

    def snapshot(self) -> PositionState:
        """The ``position`` event for this position's current state."""
        return PositionState(self.user, self.market_id, self.yes, self.no,
                             self.yes_reserved, self.no_reserved)


class Account:
    """A user's cash and positions, and the index of their open orders."""

    user: int
    available: int
    reserved: int
    positions: dict[int, Position]
    orders: dict[int, Order]  # open orders by id, in placement order
    touched: bool  # listed among what the current command changed
    open_view: list[OrderState] | None  # cached open orders (queries.open_orders)
    caches_views: bool  # whether flushes keep its orders' ``view`` current

    def __init__(self, user: int) -> None:
        self.user = user
        self.available = 0
        self.reserved = 0
        self.positions = {}
        self.orders = {}
        self.touched = False
        self.open_view = None
        self.caches_views = False

    def snapshot(self) -> BalanceState:
        """The ``balance`` event for this account's current state."""
        return BalanceState(self.user, self.available, self.reserved)


class Market:
    """One binary market (one outcome of an event) with its canonical YES book."""

    id: int
    event: Event
    name: str
    tick: int
    status: str
    book: Book
    last_price: int | None
    volume: int  # shares traded
    holders: dict[int, Position]  # by user, in the order they first held
    touched: bool  # listed among what the current command changed

    def __init__(self, market_id: int, event: Event, name: str, tick: int,
                 scale: int) -> None:
        self.id = market_id
        self.event = event
        self.name = name
        self.tick = tick
        self.status = "active"
        self.book = Book(scale // tick)
        self.last_price = None
        self.volume = 0
        self.holders = {}
        self.touched = False


class Event:
    """A question with one market per outcome, and the collateral backing its shares."""

    id: int
    title: str
    tick: int
    created_ms: int
    description: str
    category: str
    slug: str
    close_time_ms: int | None
    status: str
    markets: list[Market]
    collateral: int
    winning_outcome_id: int | None
    void: bool
    fee_rate: int  # units of SCALE (700 = 7%): what takers pay (units.taker_fee)
    fees: int  # fees its takers paid, all of them in the treasury's fee account

    def __init__(self, event_id: int, title: str, tick: int, created_ms: int) -> None:
        self.id = event_id
        self.title = title
        self.tick = tick
        self.created_ms = created_ms
        self.description = ""
        self.category = ""
        self.slug = ""
        self.close_time_ms = None
        self.status = "active"
        self.markets = []
        self.collateral = 0
        self.winning_outcome_id = None
        self.void = False
        self.fee_rate = 0
        self.fees = 0

    @property
    def is_multi(self) -> bool:
        """Whether the event has several outcomes (and so several markets)."""
        return len(self.markets) > 1

    def snapshot(self) -> EventState:
        """The ``event`` event for this event's current state."""
        return EventState(
            self.id, self.status, self.title, self.description, self.category,
            self.slug, self.close_time_ms, self.tick,
            tuple((m.id, m.name) for m in self.markets), self.created_ms,
            self.winning_outcome_id, self.void, self.fee_rate,
        )


class Treasury:
    """Money that crossed the exchange's boundary, and what the exchange itself keeps."""

    deposits: int
    withdrawals: int
    fees: int
    rounding: int

    def __init__(self) -> None:
        self.deposits = 0
        self.withdrawals = 0
        self.fees = 0
        self.rounding = 0

    @property
    def held(self) -> int:
        """Money the exchange holds: Σ deposits - Σ withdrawals, which the money
        invariant equates with all cash + all collateral + fees + rounding. Kept by the
        two running totals (O(1)), so snapshots and the digest carry it with them;
        deposits keep it at most ``units.MAX_TOTAL_MONEY``."""
        return self.deposits - self.withdrawals
