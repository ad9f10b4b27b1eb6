"""What the simulator drives: a small exchange interface, and how to open one.

A ``Target`` is spoken to the way a client speaks to the public HTTP API
(``docs/API.md``): users sign up and get a token, money and prices travel as decimal
strings ("0.57", "125.4000"), quantities as integers, ids as integers, and a refused
request comes back as an error code with a message. The runner never touches an engine
directly, so the same scenario can be replayed against any implementation.

Two targets exist: ``inprocess_target.InProcessTarget`` wraps a ``pmarket.engine.Engine``
(the default), and ``http_target.HttpTarget`` replays scenarios against a running server
through ``pmarket.client``. A request a target cannot express raises ``Unsupported``;
a target without ``simulated_clock`` cannot expire gtd orders on the runner's clock.
The runner reports both as per-step notes.

Simulated time belongs to the runner: it calls ``advance_to`` before each step and
every command the target sends is stamped with that time, so gtd expiry happens exactly
when the scenario's clock says. Trade prices are always in YES terms (the canonical
book's price); order prices in their owner's terms.

The values a target speaks in live in ``values``; this module re-exports them and
``InProcessTarget``, so ``from pmarket.sim.targets import ...`` reaches every name.
``connect.open_target`` opens the target a command line asks for.
"""

from __future__ import annotations

from typing import Protocol

from .inprocess_target import InProcessTarget
from .values import (
    AuditCheck,
    Balance,
    BookLevels,
    ErrorDetail,
    EventInfo,
    Fill,
    Holding,
    Market,
    OrderRequest,
    OrderState,
    Result,
    Trader,
    price_text,
)

__all__ = [
    "AuditCheck",
    "Balance",
    "BookLevels",
    "ErrorDetail",
    "EventInfo",
    "Fill",
    "Holding",
    "InProcessTarget",
    "Market",
    "OrderRequest",
    "OrderState",
    "Result",
    "Target",
    "TargetUnavailable",
    "Trader",
    "Unsupported",
    "price_text",
]


class Target(Protocol):
    """An exchange the simulator can drive (see the module docstring for conventions).

    Each method maps onto the public API (``docs/API.md``); a refused request returns a
    ``Result`` whose ``error`` carries the API's code, it never raises.
    """

    name: str
    simulated_clock: bool
    """Whether ``advance_to`` really moves the exchange's clock (gtd expiry follows it)."""
    order_reasons: bool
    """Whether ``OrderState.reason`` says why a closed order stopped."""

    def signup(self, name: str) -> Trader:
        """``POST /auth/signup``: a new user and its token."""

    def create_event(self, title: str, outcomes: list[str], tick_size: str,
                     fee_rate: str = "0") -> EventInfo:
        """``POST /admin/events``: one market per outcome (none: a yes/no market), takers
        paying ``fee_rate``."""

    def advance_to(self, now_ms: int) -> Result:
        """Return once the target's clock reads ``now_ms``; ``cancelled`` lists expiries."""

    def deposit(self, user: Trader, amount: str) -> Result:
        """``POST /onramp``."""

    def withdraw(self, user: Trader, amount: str) -> Result:
        """``POST /offramp``."""

    def place(self, user: Trader, order: OrderRequest) -> Result:
        """``POST /orders``: the order's state and the trades it made."""

    def place_batch(self, user: Trader, orders: list[OrderRequest]) -> Result:
        """``POST /orders/batch``: one item per order, in request order."""

    def modify(self, user: Trader, order_id: int, price: str | None,
               quantity: int | None) -> Result:
        """``PATCH /orders/{id}`` (``quantity`` is the new total, filled included)."""

    def cancel(self, user: Trader, order_id: int) -> Result:
        """``DELETE /orders/{id}``."""

    def cancel_all(self, user: Trader, market_id: int | None = None) -> Result:
        """``DELETE /orders``: ``cancelled`` lists the ids."""

    def split(self, user: Trader, market_id: int, quantity: int) -> Result:
        """``POST /markets/{id}/split``."""

    def merge(self, user: Trader, market_id: int, quantity: int) -> Result:
        """``POST /markets/{id}/merge``."""

    def split_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        """``POST /events/{id}/split``."""

    def merge_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        """``POST /events/{id}/merge``."""

    def convert(self, user: Trader, event_id: int, outcome_ids: list[int],
                quantity: int) -> Result:
        """NO of each listed outcome into YES of every other outcome."""

    def set_event_status(self, event_id: int, status: str) -> Result:
        """``PATCH /admin/events/{id}`` with ``status`` "closed" or "active"."""

    def resolve(self, event_id: int, winning_outcome_id: int | None) -> Result:
        """``POST /admin/events/{id}/resolve`` (None: a yes/no event's NO wins)."""

    def void(self, event_id: int) -> Result:
        """``POST /admin/events/{id}/resolve`` with ``void: true``."""

    def delete_event(self, event_id: int) -> Result:
        """``DELETE /admin/events/{id}``."""

    def book(self, market_id: int, view: str = "yes", depth: int | None = None
             ) -> BookLevels:
        """``GET /markets/{id}/orderbook``."""

    def market(self, market_id: int) -> Market:
        """``GET /markets/{id}``."""

    def balance(self, user: Trader) -> Balance:
        """``GET /balance``."""

    def holdings(self, user: Trader) -> list[Holding]:
        """``GET /positions``."""

    def open_orders(self, user: Trader, market_id: int | None = None) -> list[OrderState]:
        """``GET /orders?status=open``, oldest first."""

    def order(self, user: Trader, order_id: int) -> OrderState | None:
        """``GET /orders/{id}`` in any state (None where the API answers 404)."""

    def audit(self) -> AuditCheck:
        """``GET /admin/audit``."""

    def state_digest(self) -> str | None:
        """A hash of the whole exchange state, where the target can give one."""

    def close(self) -> None:
        """Release connections."""


class TargetUnavailable(Exception):
    """The requested target cannot be used (no server, no admin credentials...)."""


class Unsupported(Exception):
    """A request the target cannot send: ``str(exc)`` says what is missing and why."""
