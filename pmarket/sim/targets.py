"""What the simulator drives: a small exchange interface, and its in-process implementation.

A ``Target`` is spoken to the way a client speaks to the public HTTP API
(``docs/API.md``): users sign up and get a token, money and prices travel as decimal
strings ("0.57", "125.4000"), quantities as integers, ids as integers, and a refused
request comes back as an error code with a message. The runner never touches an engine
directly, so the same scenario can be replayed against any implementation.

Two targets exist: ``InProcessTarget`` wraps a ``pmarket.engine.Engine`` (the
default), and ``http_target.HttpTarget`` replays scenarios against a running server
through ``pmarket.client``. A request a target cannot express raises ``Unsupported``;
a target without ``simulated_clock`` cannot expire gtd orders on the runner's clock.
The runner reports both as per-step notes.

Simulated time belongs to the runner: it calls ``advance_to`` before each step and
every command the target sends is stamped with that time, so gtd expiry happens exactly
when the scenario's clock says. Trade prices are always in YES terms (the canonical
book's price); order prices in their owner's terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple, Protocol

from ..engine import Engine, units
from ..engine import commands as c

__all__ = [
    "Audit",
    "Balance",
    "BookLevels",
    "EventInfo",
    "Holding",
    "InProcessTarget",
    "MarketInfo",
    "OrderRequest",
    "OrderState",
    "Rejection",
    "Result",
    "Target",
    "TargetUnavailable",
    "Trade",
    "Unsupported",
    "User",
    "open_target",
    "price_text",
]


# --- the values a target speaks in -----------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Audit:
    """``GET /admin/audit``: whether the money invariant holds, and what is wrong if not."""

    ok: bool
    difference: str
    problems: list[str]


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

    def signup(self, name: str) -> User:
        """``POST /auth/signup``: a new user and its token."""

    def create_event(self, title: str, outcomes: list[str], tick_size: str) -> EventInfo:
        """``POST /admin/events``: one market per outcome (none: a yes/no market)."""

    def advance_to(self, now_ms: int) -> Result:
        """Return once the target's clock reads ``now_ms``; ``cancelled`` lists expiries."""

    def deposit(self, user: User, amount: str) -> Result:
        """``POST /onramp``."""

    def withdraw(self, user: User, amount: str) -> Result:
        """``POST /offramp``."""

    def place(self, user: User, order: OrderRequest) -> Result:
        """``POST /orders``: the order's state and the trades it made."""

    def place_batch(self, user: User, orders: list[OrderRequest]) -> Result:
        """``POST /orders/batch``: one item per order, in request order."""

    def modify(self, user: User, order_id: int, price: str | None,
               quantity: int | None) -> Result:
        """``PATCH /orders/{id}`` (``quantity`` is the new total, filled included)."""

    def cancel(self, user: User, order_id: int) -> Result:
        """``DELETE /orders/{id}``."""

    def cancel_all(self, user: User, market_id: int | None = None) -> Result:
        """``DELETE /orders``: ``cancelled`` lists the ids."""

    def split(self, user: User, market_id: int, quantity: int) -> Result:
        """``POST /markets/{id}/split``."""

    def merge(self, user: User, market_id: int, quantity: int) -> Result:
        """``POST /markets/{id}/merge``."""

    def split_event(self, user: User, event_id: int, quantity: int) -> Result:
        """``POST /events/{id}/split``."""

    def merge_event(self, user: User, event_id: int, quantity: int) -> Result:
        """``POST /events/{id}/merge``."""

    def convert(self, user: User, event_id: int, outcome_ids: list[int],
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

    def market(self, market_id: int) -> MarketInfo:
        """``GET /markets/{id}``."""

    def balance(self, user: User) -> Balance:
        """``GET /balance``."""

    def holdings(self, user: User) -> list[Holding]:
        """``GET /positions``."""

    def open_orders(self, user: User, market_id: int | None = None) -> list[OrderState]:
        """``GET /orders?status=open``, oldest first."""

    def order(self, user: User, order_id: int) -> OrderState | None:
        """``GET /orders/{id}`` in any state (None where the API answers 404)."""

    def audit(self) -> Audit:
        """``GET /admin/audit``."""

    def state_digest(self) -> str | None:
        """A hash of the whole exchange state, where the target can give one."""

    def close(self) -> None:
        """Release connections."""


class TargetUnavailable(Exception):
    """The requested target cannot be used (no server, no admin credentials...)."""


class Unsupported(Exception):
    """A request the target cannot send: ``str(exc)`` says what is missing and why."""


def open_target(url: str | None, admin_email: str | None = None,
                admin_password: str | None = None) -> Target:
    """The target for ``--target URL`` (None: a fresh in-process engine).

    Args:
        url: a running server's base URL, or None for the in-process engine.
        admin_email: an admin account's email (needed for a URL).
        admin_password: that admin's password.

    Raises:
        TargetUnavailable: for a URL without admin credentials, with credentials the
            server refuses, or where no server answers.
    """
    if url is None:
        return InProcessTarget()
    missing = [what for what, value in (
        ("--admin-email (or PMARKET_ADMIN_EMAIL)", admin_email),
        ("--admin-password (or PMARKET_ADMIN_PASSWORD)", admin_password)) if not value]
    if missing:
        raise TargetUnavailable(
            f"replaying against {url} needs an admin account to create events, resolve "
            f"them and read the audit; missing: {' and '.join(missing)}")
    from ..client import ApiError, ServerUnavailable
    from .http_target import HttpTarget

    try:
        return HttpTarget(url, str(admin_email), str(admin_password))
    except ServerUnavailable as exc:
        raise TargetUnavailable(f"no pmarket server answers at {url}: {exc}") from None
    except ApiError as exc:
        raise TargetUnavailable(
            f"{url} refused the admin sign-in of {admin_email}: {exc.message}") from None


# --- the in-process engine -------------------------------------------------------------


# Request words to engine enums (a dict lookup is ~20x cheaper than ``Enum(value)``).
_OUTCOMES = {e.value: e for e in c.Outcome}
_SIDES = {e.value: e for e in c.Side}
_TYPES = {e.value: e for e in c.OrderType}
_TIFS = {e.value: e for e in c.TimeInForce}
_STPS = {e.value: e for e in c.SelfTrade}


@lru_cache(maxsize=65_536)
def price_text(price: int, tick: int) -> str:
    """A price in units as the decimal string of its market's grid (cached)."""
    return units.format_price(price, tick)


@lru_cache(maxsize=65_536)
def _price_units(text: str, tick: int) -> int:
    return units.parse_price(text, tick)


@lru_cache(maxsize=4_096)
def _amount_units(text: str) -> int:
    return units.parse_amount(text)


class InProcessTarget:
    """A ``Target`` over a fresh ``pmarket.engine.Engine`` in this process.

    The engine keeps only open orders; this target remembers the last state of every
    order it has seen in the engine's events, so closed orders can be looked up as the
    API's ``GET /orders/{id}`` would.
    """

    name = "in-process"
    simulated_clock = True
    order_reasons = True

    def __init__(self) -> None:
        self.engine = Engine()
        self.now_ms = 0
        self._users = 0
        self._ticks: dict[int, int] = {}
        self._orders: dict[int, tuple] = {}

    # --- plumbing ------------------------------------------------------------------

    def _apply(self, cmd: c.Command) -> list[tuple]:
        cmd.ts_ms = self.now_ms
        return self.engine.apply(cmd)

    def _price(self, text: str | None, market_id: int) -> int | None:
        return None if text is None else _price_units(text, self._ticks.get(market_id, 1))

    def _result(self, events: list[tuple]) -> Result:
        """Read a command's events into a ``Result`` (batches: one per ``batch_item``)."""
        result = Result()
        current = result
        orders = self._orders
        for ev in events:
            kind = ev[0]
            if kind == "clock":  # what came before were expirations, not this command
                expired = current.cancelled
                result = current = Result()
                current.cancelled.extend(expired)
            elif kind == "order":
                orders[ev[1]] = ev
                if current.order is None:
                    current.order = self._order_state(ev)
                if ev[11] == "cancelled" or ev[11] == "expired":
                    current.cancelled.append(ev[1])
            elif kind == "fill":
                current.trades.append(Trade(
                    ev[1], ev[2], price_text(ev[3], self._ticks[ev[2]]), ev[4], ev[5], ev[6],
                    ev[7], ev[9], ev[11]))
            elif kind == "rejected":
                if current.error is None:
                    current.error = Rejection(ev[3], ev[4])
            elif kind == "duplicate":
                current.duplicate = True
            elif kind == "batch_item":
                current = Result()
                result.items.append(current)
            elif kind == "resolved":
                current.payouts_total = units.format_money(ev[4])
        if result.items:
            for item in result.items:
                result.trades.extend(item.trades)
        return result

    def _order_state(self, ev: tuple) -> OrderState:
        # id, user, market, outcome, side, type, price, quantity, filled, status, tif,
        # reason, client_order_id, expires_at_ms (see events.LAYOUTS["order"])
        return OrderState(ev[1], ev[2], ev[3], ev[5], ev[6], ev[7],
                          price_text(ev[8], self._ticks[ev[3]]), ev[9], ev[10], ev[11],
                          ev[12], ev[18], ev[15], ev[14])

    # --- users, events, time -------------------------------------------------------

    def signup(self, name: str) -> User:
        """Create a user (in-process: the next integer id, no token)."""
        self._users += 1
        return User(self._users, name)

    def create_event(self, title: str, outcomes: list[str], tick_size: str) -> EventInfo:
        """Create an event with one market per outcome (none: a single yes/no market).

        Raises:
            ValueError: if the engine refuses the event.
        """
        tick = units.parse_tick(tick_size)
        events = self._apply(c.CreateEvent(title=title, outcomes=tuple(outcomes), tick=tick))
        created = [ev for ev in events if ev[0] == "event"]
        if not created:
            raise ValueError(f"event '{title}' was refused: {events}")
        ev = created[0]
        for market_id, _name in ev[9]:
            self._ticks[market_id] = tick
        return EventInfo(ev[1], title, {name: mid for mid, name in ev[9]}, tick_size)

    def advance_to(self, now_ms: int) -> Result:
        """Move the clock forward; gtd orders due by then expire (``cancelled`` lists them)."""
        if now_ms < self.now_ms:
            raise ValueError(f"time cannot go back from {self.now_ms} to {now_ms}")
        self.now_ms = now_ms
        return self._result(self._apply(c.Expire()))

    # --- money ---------------------------------------------------------------------

    def deposit(self, user: User, amount: str) -> Result:
        return self._result(self._apply(c.Deposit(user_id=user.id,
                                                  amount=_amount_units(amount))))

    def withdraw(self, user: User, amount: str) -> Result:
        return self._result(self._apply(c.Withdraw(user_id=user.id,
                                                   amount=_amount_units(amount))))

    # --- trading -------------------------------------------------------------------

    def _command(self, user: User, o: OrderRequest) -> c.PlaceOrder:
        return c.PlaceOrder(
            user_id=user.id, market_id=o.market_id, outcome=_OUTCOMES[o.outcome],
            side=_SIDES[o.side], quantity=o.quantity, price=self._price(o.price, o.market_id),
            order_type=_TYPES[o.type], tif=_TIFS[o.time_in_force],
            expires_at_ms=o.expires_at_ms, post_only=o.post_only,
            client_order_id=o.client_order_id, stp=_STPS[o.stp])

    def place(self, user: User, order: OrderRequest) -> Result:
        return self._result(self._apply(self._command(user, order)))

    def place_batch(self, user: User, orders: list[OrderRequest]) -> Result:
        cmd = c.PlaceBatch(user_id=user.id, orders=tuple(self._command(user, o) for o in orders))
        return self._result(self._apply(cmd))

    def modify(self, user: User, order_id: int, price: str | None,
               quantity: int | None) -> Result:
        known = self._orders.get(order_id)
        market_id = known[3] if known else 0
        return self._result(self._apply(c.ModifyOrder(
            user_id=user.id, order_id=order_id, price=self._price(price, market_id),
            quantity=quantity)))

    def cancel(self, user: User, order_id: int) -> Result:
        return self._result(self._apply(c.CancelOrder(user_id=user.id, order_id=order_id)))

    def cancel_all(self, user: User, market_id: int | None = None) -> Result:
        return self._result(self._apply(c.CancelAll(user_id=user.id, market_id=market_id)))

    # --- collateral ----------------------------------------------------------------

    def split(self, user: User, market_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.Split(user_id=user.id, market_id=market_id,
                                                quantity=quantity)))

    def merge(self, user: User, market_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.Merge(user_id=user.id, market_id=market_id,
                                                quantity=quantity)))

    def split_event(self, user: User, event_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.SplitEvent(user_id=user.id, event_id=event_id,
                                                     quantity=quantity)))

    def merge_event(self, user: User, event_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.MergeEvent(user_id=user.id, event_id=event_id,
                                                     quantity=quantity)))

    def convert(self, user: User, event_id: int, outcome_ids: list[int],
                quantity: int) -> Result:
        return self._result(self._apply(c.Convert(
            user_id=user.id, event_id=event_id, outcome_ids=tuple(outcome_ids),
            quantity=quantity)))

    # --- admin ---------------------------------------------------------------------

    def set_event_status(self, event_id: int, status: str) -> Result:
        """Close ("closed": open orders are cancelled) or reopen ("active") an event."""
        return self._result(self._apply(c.UpdateEvent(event_id=event_id,
                                                      status=c.EventStatus(status))))

    def resolve(self, event_id: int, winning_outcome_id: int | None) -> Result:
        return self._result(self._apply(c.ResolveEvent(
            event_id=event_id, winning_outcome_id=winning_outcome_id)))

    def void(self, event_id: int) -> Result:
        return self._result(self._apply(c.ResolveEvent(event_id=event_id, void=True)))

    def delete_event(self, event_id: int) -> Result:
        return self._result(self._apply(c.DeleteEvent(event_id=event_id)))

    # --- queries -------------------------------------------------------------------

    def book(self, market_id: int, view: str = "yes", depth: int | None = None) -> BookLevels:
        tick = self._ticks[market_id]
        b = self.engine.book(market_id, view, depth)

        def show(p: int | None) -> str | None:
            return None if p is None else price_text(p, tick)

        return BookLevels(market_id, view, [(price_text(p, tick), q) for p, q in b.bids],
                          [(price_text(p, tick), q) for p, q in b.asks], show(b.best_bid),
                          show(b.best_ask), show(b.last_price))

    def market(self, market_id: int) -> MarketInfo:
        tick = self._ticks[market_id]
        m = self.engine.market_view(market_id)

        def show(p: int | None) -> str | None:
            return None if p is None else price_text(p, tick)

        return MarketInfo(m.market_id, m.event_id, m.status, units.format_units(tick),
                          show(m.last_price), show(m.best_bid), show(m.best_ask), m.volume,
                          m.open_interest)

    def balance(self, user: User) -> Balance:
        available, reserved = self.engine.balance(user.id)
        return Balance(units.format_money(available), units.format_money(reserved))

    def holdings(self, user: User) -> list[Holding]:
        return [Holding(p[2], p[3], p[4], p[5], p[6]) for p in self.engine.positions(user.id)]

    def open_orders(self, user: User, market_id: int | None = None) -> list[OrderState]:
        return [self._order_state(ev) for ev in self.engine.open_orders(user.id, market_id)]

    def order(self, user: User, order_id: int) -> OrderState | None:
        """An order of ``user`` in any state (another user's order: None, as a 404)."""
        ev = self.engine.order(order_id) or self._orders.get(order_id)
        if ev is None or ev[2] != user.id:
            return None
        return self._order_state(ev)

    def audit(self) -> Audit:
        report = self.engine.audit()
        return Audit(report.ok, units.format_money(report.difference), list(report.problems))

    def state_digest(self) -> str | None:
        """A hash of the engine's whole state (identical runs give identical digests)."""
        return self.engine.digest()

    def close(self) -> None:
        """Nothing to release in-process."""
