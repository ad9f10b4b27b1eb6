"""Generated order flow: seeded trading agents and load-test bursts.

Three kinds of agent trade one market each, acting at times drawn in simulated time:

- ``MarketMaker`` quotes ``levels`` bids and asks around a fair value that drifts a few
  ticks per requote (pulled back towards the configured value); it cancels its quotes
  and places a fresh batch every ``every``.
  Its asks sell YES it holds, otherwise buy NO (the same ask on the YES book).
- ``NoiseTrader`` buys or sells YES or NO at random, as market orders or gtd limit
  orders priced around the current mid; it only sells shares it holds.
- ``InformedTrader`` knows how the market will resolve and takes every price that is
  at least ``edge`` away from that value (ioc orders).

``burst_orders`` generates the load-test workloads: many orders from a group of users
with prices and quantities drawn uniformly.

Invariant: every random choice comes from a ``random.Random`` seeded from the
scenario's seed, and prices are integer units on the market's grid, so the same seed
always produces the same commands. Agents talk to the target only through the
runner's ``call`` (which times and records every request).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from ..engine import units
from ..engine.units import SCALE
from .scenario import AgentSpec, Burst
from .targets import OrderRequest, Result, Target, Trader, price_text

Call = Callable[..., Result]
"""``call(op, method, *args) -> Result``: the runner's timed, recorded request."""


def _on_grid(price: int, tick: int) -> int:
    """Clamp a price to the grid strictly inside (0, 1)."""
    price -= price % tick
    return min(max(price, tick), SCALE - tick)


class Agent(ABC):
    """Base of the agents: one user, one market, its own random generator."""

    def __init__(self, spec: AgentSpec, user: Trader, market_id: int, rng: random.Random,
                 target: Target, call: Call):
        self.spec = spec
        self.user = user
        self.market_id = market_id
        self.rng = rng
        self.target = target
        self.call = call

    def next_delay_ms(self) -> int:
        """Time to the next action: exponential around the mean interval (Poisson flow)."""
        return max(1, round(self.rng.expovariate(1.0 / self.spec.interval_ms)))

    @abstractmethod
    def act(self, now_ms: int) -> None:
        """Do one thing at simulated time ``now_ms``."""

    def size(self) -> int:
        """A quantity drawn uniformly from the configured size range."""
        low, high = self.spec.size
        return self.rng.randint(low, high)

    def order(self, outcome: str, side: str, quantity: int, price: int | None,
              **extra) -> OrderRequest:
        """An order request for this agent's market (``price`` in units, owner's terms)."""
        text = None if price is None else price_text(price, self.spec.tick)
        return OrderRequest(self.market_id, outcome, side, quantity, text, **extra)

    def free_shares(self) -> tuple[int, int]:
        """(YES, NO) shares held and not locked by open sells."""
        for h in self.target.holdings(self.user):
            if h.market_id == self.market_id:
                return h.yes - h.yes_reserved, h.no - h.no_reserved
        return 0, 0

    def yes_quotes(self) -> tuple[int | None, int | None]:
        """Best YES bid and ask in units (None: that side is empty)."""
        book = self.target.book(self.market_id, "yes", 1)
        bid = units.to_units(book.best_bid) if book.best_bid is not None else None
        ask = units.to_units(book.best_ask) if book.best_ask is not None else None
        return bid, ask


class MarketMaker(Agent):
    """Quotes both sides around a drifting fair value, requoting every interval."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fair = self.spec.fair_value

    def next_delay_ms(self) -> int:
        return max(1, round(self.spec.interval_ms))

    def act(self, now_ms: int) -> None:
        spec, tick = self.spec, self.spec.tick
        if spec.drift_ticks:
            # A random walk pulled back towards the configured fair value, so that makers
            # of one market stay near each other instead of drifting apart for hours.
            pull = round((spec.fair_value - self.fair) / tick / 8)
            step = self.rng.randint(-spec.drift_ticks, spec.drift_ticks) + pull
            self.fair = _on_grid(self.fair + step * tick, tick)
        half = max(1, spec.spread // (2 * tick))
        self.call("cancel_all", self.target.cancel_all, self.user, self.market_id)
        free_yes, _free_no = self.free_shares()
        orders = []
        for level in range(spec.levels):
            bid = self.fair - (half + level) * tick
            ask = self.fair + (half + level) * tick
            if bid >= tick:
                orders.append(self.order("yes", "buy", self.size(), bid))
            if ask <= SCALE - tick:
                size = self.size()
                if free_yes >= size:
                    free_yes -= size
                    orders.append(self.order("yes", "sell", size, ask))
                else:
                    orders.append(self.order("no", "buy", size, SCALE - ask))
        if orders:
            self.call("place_batch", self.target.place_batch, self.user, orders)


class NoiseTrader(Agent):
    """Trades at random around the mid, with market orders and short-lived gtd limits."""

    def act(self, now_ms: int) -> None:
        spec, tick, rng = self.spec, self.spec.tick, self.rng
        bid, ask = self.yes_quotes()
        if bid is not None and ask is not None:
            ref = (bid + ask) // 2
        else:
            ref = bid if bid is not None else ask if ask is not None else SCALE // 2
        outcome = rng.choice(("yes", "no"))
        if outcome == "no":
            ref = SCALE - ref
        quantity = self.size()
        side = "buy"
        if rng.random() < 0.4:
            free_yes, free_no = self.free_shares()
            free = free_yes if outcome == "yes" else free_no
            if free:
                side, quantity = "sell", min(quantity, free)
        if rng.random() < spec.market_orders:
            request = self.order(outcome, side, quantity, None, type="market")
        else:
            width = spec.width // tick
            price = _on_grid(ref + rng.randint(-width, width) * tick, tick)
            request = self.order(outcome, side, quantity, price, time_in_force="gtd",
                                 expires_at_ms=now_ms + spec.ttl_ms)
        self.call("place", self.target.place, self.user, request)


class InformedTrader(Agent):
    """Knows the resolution and takes every price at least ``edge`` from its value."""

    def act(self, now_ms: int) -> None:
        spec = self.spec
        bid, ask = self.yes_quotes()
        limit = SCALE - spec.edge
        if spec.knows == "yes" and ask is not None and ask <= limit:
            outcome = "yes"
        elif spec.knows == "no" and bid is not None and SCALE - bid <= limit:
            outcome = "no"
        else:
            return
        request = self.order(outcome, "buy", self.size(), limit, time_in_force="ioc")
        self.call("place", self.target.place, self.user, request)


AGENTS: dict[str, type[Agent]] = {
    "market_maker": MarketMaker,
    "noise": NoiseTrader,
    "informed": InformedTrader,
}


def burst_orders(burst: Burst, count: int, users: list[Trader], market_id: int,
                 rng: random.Random) -> Iterator[tuple[int, Trader, OrderRequest]]:
    """The orders of a load burst: ``(offset_ms, user, order)`` in sending order.

    Args:
        burst: the workload's shape.
        count: how many orders (the burst's count, possibly scaled down).
        users: the group sending them, picked in turn (``cycle``) or at random.
        market_id: the market they go to.
        rng: the seeded generator every draw comes from.
    """
    tick = burst.tick
    low, high = burst.price[0] // tick, burst.price[1] // tick
    q_low, q_high = burst.quantity
    sides = ("buy", "sell")
    outcomes = ("yes", "no")
    for i in range(count):
        user = users[i % len(users)] if burst.pick == "cycle" else rng.choice(users)
        side = burst.side if burst.side != "random" else rng.choice(sides)
        outcome = burst.outcome if burst.outcome != "random" else rng.choice(outcomes)
        price = (low if low == high else rng.randint(low, high)) * tick
        quantity = q_low if q_low == q_high else rng.randint(q_low, q_high)
        order = OrderRequest(market_id, outcome, side, quantity, price_text(price, tick),
                             time_in_force=burst.tif)
        yield burst.over_ms * i // count, user, order
