"""Accounts, positions, events and markets: the state the engine's money lives in.

Money invariant (DESIGN §1), checked by ``Engine.audit``:
    Σ account cash (available + reserved) + Σ event collateral + rounding
        == Σ deposits - Σ withdrawals.
Shares only come into existence in fully collateralised bundles (mint, split, event
split, convert), so every event's collateral equals what it will pay out under *any*
resolution.
"""

from __future__ import annotations

from .book import Book


class Position:
    """A user's shares of one market: held (reserved included) and locked by sells."""

    __slots__ = ("market_id", "no", "no_reserved", "user", "yes", "yes_reserved")

    def __init__(self, user: int, market_id: int):
        self.user = user
        self.market_id = market_id
        self.yes = 0
        self.no = 0
        self.yes_reserved = 0
        self.no_reserved = 0

    @property
    def is_empty(self) -> bool:
        return not (self.yes or self.no)

    def snapshot(self) -> tuple:
        """The ``position`` event for this position's current state."""
        return ("position", self.user, self.market_id, self.yes, self.no,
                self.yes_reserved, self.no_reserved)


class Account:
    """A user's cash and positions, and the index of their open orders."""

    __slots__ = ("available", "orders", "positions", "reserved", "user")

    def __init__(self, user: int):
        self.user = user
        self.available = 0
        self.reserved = 0
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, object] = {}  # open orders by id, in placement order

    def snapshot(self) -> tuple:
        """The ``balance`` event for this account's current state."""
        return ("balance", self.user, self.available, self.reserved)


class Market:
    """One binary market (one outcome of an event) with its canonical YES book."""

    __slots__ = ("book", "event", "holders", "id", "last_price", "name", "status", "tick",
                 "volume")

    def __init__(self, market_id: int, event: Event, name: str, tick: int, scale: int):
        self.id = market_id
        self.event = event
        self.name = name
        self.tick = tick
        self.status = "active"
        self.book = Book(scale // tick)
        self.last_price: int | None = None
        self.volume = 0  # shares traded
        self.holders: dict[int, Position] = {}  # by user


class Event:
    """A question with one market per outcome, and the collateral backing its shares."""

    __slots__ = ("category", "close_time_ms", "collateral", "created_ms", "description",
                 "id", "markets", "slug", "status", "tick", "title", "void",
                 "winning_outcome_id")

    def __init__(self, event_id: int, title: str, tick: int, created_ms: int):
        self.id = event_id
        self.title = title
        self.tick = tick
        self.created_ms = created_ms
        self.description = ""
        self.category = ""
        self.slug = ""
        self.close_time_ms: int | None = None
        self.status = "active"
        self.markets: list[Market] = []
        self.collateral = 0
        self.winning_outcome_id: int | None = None
        self.void = False

    @property
    def is_multi(self) -> bool:
        return len(self.markets) > 1

    def snapshot(self) -> tuple:
        """The ``event`` event for this event's current state."""
        return (
            "event", self.id, self.status, self.title, self.description, self.category,
            self.slug, self.close_time_ms, self.tick,
            tuple((m.id, m.name) for m in self.markets), self.created_ms,
            self.winning_outcome_id, self.void,
        )


class Treasury:
    """Money that crossed the exchange's boundary, and what the exchange itself keeps."""

    __slots__ = ("deposits", "fees", "rounding", "withdrawals")

    def __init__(self) -> None:
        self.deposits = 0
        self.withdrawals = 0
        self.fees = 0
        self.rounding = 0
