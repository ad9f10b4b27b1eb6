"""Market data: events and their outcomes, markets, order books, the public tape and
candles.

Invariant: books, the tape and candles are in YES terms unless a book says otherwise
(``view`` "no" mirrors every price to 1 - p and swaps bids and asks).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from .base import Dec, Out, Time

View = Literal["yes", "no"]


class Level(Out):
    """One price level of a book: the price and the total quantity resting there."""

    price: Dec
    quantity: int


class Book(Out):
    """An order book in one view's terms: bids high→low, asks low→high."""

    market_id: int
    view: View
    bids: list[Level]
    asks: list[Level]
    best_bid: Dec | None
    best_ask: Dec | None
    mid: Dec | None
    spread: Dec | None
    last_price: Dec | None
    sequence: int


class Outcome(Out):
    """One outcome of an event, with its market's quote."""

    id: int
    name: str
    market_id: int
    last_price: Dec | None
    best_bid: Dec | None
    best_ask: Dec | None
    volume: int
    result: Literal["won", "lost", "void"] | None = None
    """None while the event is not resolved."""


class EventResolution(Out):
    """How an event resolved: its winner, whether it was void, and when."""

    winning_outcome_id: int | None
    """None when void, or when a single-outcome event's NO won."""
    void: bool
    resolved_at: Time


class Event(Out):
    """An event (a question) and its outcomes, one market each."""

    id: int
    slug: str
    title: str
    description: str
    category: str
    status: str
    close_time: Time | None
    outcomes: list[Outcome]
    created_at: Time
    resolution: EventResolution | None = None
    """None until the event is resolved."""
    fee_rate: Dec = Decimal(0)
    """What takers pay: fee_rate x quantity x p x (1 - p)."""

    def winner(self) -> Outcome | None:
        """The outcome that won, if the event resolved with one."""
        return next((o for o in self.outcomes if o.result == "won"), None)


class OutcomeBook(Out):
    """One outcome's book within an event-level order book."""

    outcome_id: int
    name: str
    market_id: int
    book: Book


class EventBook(Out):
    """``GET /events/{id}/orderbook``: every outcome's book, and the sum of their
    implied probabilities."""

    event_id: int
    outcomes: list[OutcomeBook]
    implied_probability_sum: Dec | None


class Market(Out):
    """One binary market (one outcome of an event), prices in YES terms."""

    id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    status: str
    tick_size: Dec
    last_price: Dec | None
    best_bid: Dec | None
    best_ask: Dec | None
    volume: int
    open_interest: int
    result: Literal["yes", "no", "void"] | None = None
    """None while the market's event is not resolved."""


class PublicTrade(Out):
    """A trade on the tape: ``price`` in YES terms."""

    id: int
    market_id: int
    price: Dec
    quantity: int
    taker_side: Literal["buy", "sell"]
    executed_at: Time


class Candle(Out):
    """One OHLCV bar, prices in YES terms."""

    start: Time
    open: Dec
    high: Dec
    low: Dec
    close: Dec
    volume: int
