"""The HTTP target: replay scenarios against a running pmarket server.

``HttpTarget`` implements the simulator's ``Target`` protocol with the typed client
(``pmarket.client.Client``) over the public API (``docs/API.md``). Every scenario user
signs up with an email unique to this run, so the same scenario can be replayed any
number of times against one server; admin actions (events, resolution, the audit) use an
admin token signed in once from the credentials given to the target. With
``api_keys`` each scenario user acts through an API key (scopes read and trade) it
creates right after signing up, instead of its session token — the path bots take
(``pmarket simulate --api-keys``).

What the API does not offer (the runner notes it per step as "not available over
HTTP", never a silent skip; self-trade prevention modes go as ``stp`` and convert as
``POST /events/{id}/convert``, both additions to the API listed in
``docs/API-ADDITIONS.md``):

- the simulated clock: the server stamps commands with wall-clock time, so
  ``advance_to`` moves nothing; a gtd order's expiry is sent as the same distance from
  *now* in real time (``expires_in: 30s`` lives 30 real seconds), and the runner notes
  every gtd expiry that fell due on the simulated clock but not on the server's;
- the state digest (no endpoint; ``state_digest`` returns None);
- why an order closed (the API's Order has no ``reason``: ``order_reasons`` is False).

A cancel or modify the server refuses with ``not_found`` (404: not the caller's order)
or ``order_not_open`` (409) is reported with the engine's code ``unknown_order``, as
in-process, the server's status and code kept in the message.

Invariant: a refused request becomes a ``Result`` with the API's error code, exactly as
in-process; only ``ServerUnavailable`` (nobody answers) propagates.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from .. import api
from ..client import ApiError, Client, OrderSpec
from .targets import (
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
)

__all__ = ["ADMIN_ENV", "HttpTarget"]

ADMIN_ENV = ("PMARKET_ADMIN_EMAIL", "PMARKET_ADMIN_PASSWORD")
"""Environment variables the CLI reads admin credentials from."""

_PAGE = 500
_ORDER_CODES = {"not_found": "unknown_order", "order_not_open": "unknown_order"}
"""Server codes for a cancel/modify of an order the engine does not hold (anyone else's,
or no longer open) and the engine's single word for both."""
_ONE = Decimal(1)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ms(value: datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _order_state(o: api.Order, user_id: int, sim_expiry: int | None = None) -> OrderState:
    """An API order as the simulator's ``OrderState`` (no ``reason``: the API has none)."""
    return OrderState(o.id, user_id, o.market_id, o.outcome, o.side, o.type,
                      _text(o.price) or "", o.quantity, o.filled_quantity, o.status,
                      o.time_in_force, None, o.client_order_id, sim_expiry)


def _trade(t: api.Trade, taker_order_id: int) -> Fill:
    """An own fill as a simulator trade: YES-terms price, transfer_yes/transfer_no kind."""
    yes_price = t.price if t.outcome == "yes" else _ONE - t.price
    kind = f"transfer_{t.outcome}" if t.kind == "transfer" else t.kind
    maker = t.order_id if t.role == "maker" else None
    return Fill(t.id, t.market_id, str(yes_price), t.quantity, kind, t.side,
                 taker_order_id, maker, _ms(t.executed_at), str(t.fee))


class HttpTarget:
    """A ``Target`` speaking the public HTTP API of the server at ``url``.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        admin_email: an admin account's email (events, resolution and the audit need it).
        admin_password: that account's password.
        timeout: seconds to wait for each request.
        api_keys: each user acts with an API key it creates at sign-up, not its token.

    Raises:
        ApiError: if the admin credentials are refused.
        ServerUnavailable: if nobody answers at ``url``.
    """

    name = "http"
    simulated_clock = False
    order_reasons = False

    def __init__(self, url: str, admin_email: str, admin_password: str,
                 timeout: float = 30.0, api_keys: bool = False) -> None:
        self.url = url.rstrip("/")
        self.api_keys = api_keys
        # A sign-up burst of many agents may meet the per-address limit: wait it out.
        self.api = Client(self.url, timeout=timeout, rate_limit_retries=5)
        self.run_id = uuid.uuid4().hex[:10]
        self._password = f"sim-{uuid.uuid4().hex}"
        self._clients: dict[int, Client] = {}
        self._sim_now = 0
        self._users = 0
        try:
            auth = self.api.admin_signin(admin_email, admin_password)
        except BaseException:
            self.api.close()
            raise
        self.admin = self.api.as_token(auth.token)

    # --- plumbing ------------------------------------------------------------------

    def _as(self, user: Trader) -> Client:
        client = self._clients.get(user.id)
        if client is None:
            client = self._clients[user.id] = self.api.as_token(user.token)
        return client

    @staticmethod
    def _refused(exc: ApiError) -> Result:
        return Result(error=ErrorDetail(code=exc.code, message=exc.message))

    @staticmethod
    def _order_refused(exc: ApiError) -> Result:
        """A refused cancel/modify in the engine's words (the server's code kept)."""
        code = _ORDER_CODES.get(exc.code, exc.code)
        message = exc.message if code == exc.code else \
            f"{exc.message} (HTTP {exc.status} {exc.code})"
        return Result(error=ErrorDetail(code=code, message=message))

    def _wall_expiry(self, sim_expires_ms: int | None) -> str | None:
        """A simulated expiry as ISO-8601 wall time, the same distance from now."""
        if sim_expires_ms is None:
            return None
        wall = _now_ms() + (sim_expires_ms - self._sim_now)
        return datetime.fromtimestamp(wall / 1000, UTC).isoformat().replace("+00:00", "Z")

    def _spec(self, o: OrderRequest) -> OrderSpec:
        return OrderSpec(o.market_id, o.outcome, o.side, o.quantity, o.price, o.type,
                         o.time_in_force, self._wall_expiry(o.expires_at_ms),
                         o.post_only or None, o.client_order_id,
                         None if o.stp == "cancel_resting" else o.stp)

    def _placed(self, user: Trader, r: api.OrderResult, sim_expiry: int | None) -> Result:
        order = _order_state(r.order, user.id, sim_expiry)
        trades = [_trade(t, r.order.id) for t in r.trades if t.role == "taker"]
        cancelled = [order.id] if order.status in ("cancelled", "expired") else []
        return Result(order=order, trades=trades, cancelled=cancelled)

    # --- users, events, time -------------------------------------------------------

    def signup(self, name: str) -> Trader:
        """Sign up ``name`` with an email unique to this run; the user carries its token."""
        self._users += 1
        email = f"{name}-{self.run_id}-{self._users}@sim.pmarket.test"
        client = self.api.as_token(None)
        auth = client.signup(email, name, self._password)
        credential = auth.token
        if self.api_keys:
            credential = client.create_api_key(f"sim {name}", ["read", "trade"]).key or ""
            client = self.api.as_token(credential)
        self._clients[auth.user.id] = client
        return Trader(auth.user.id, name, credential)

    def create_event(self, title: str, outcomes: list[str], tick_size: str,
                     fee_rate: str = "0") -> EventInfo:
        """Create an event as admin; its market ids by outcome name.

        Raises:
            ValueError: if the server refuses the event.
        """
        try:
            event = self.admin.create_event(title, outcomes or None, tick_size=tick_size,
                                            fee_rate=fee_rate)
        except ApiError as exc:
            raise ValueError(f"event '{title}' was refused: {exc}") from exc
        return EventInfo(event.id, title, {o.name: o.market_id for o in event.outcomes},
                         tick_size)

    def advance_to(self, now_ms: int) -> Result:
        """Remember the simulated time (the server keeps wall-clock time: nothing moves).

        Raises:
            ValueError: if time would go back.
        """
        if now_ms < self._sim_now:
            raise ValueError(f"time cannot go back from {self._sim_now} to {now_ms}")
        self._sim_now = now_ms
        return Result()

    # --- money ---------------------------------------------------------------------

    def deposit(self, user: Trader, amount: str) -> Result:
        try:
            self._as(user).onramp(amount)
        except ApiError as exc:
            return self._refused(exc)
        return Result()

    def withdraw(self, user: Trader, amount: str) -> Result:
        try:
            self._as(user).offramp(amount)
        except ApiError as exc:
            return self._refused(exc)
        return Result()

    # --- trading -------------------------------------------------------------------

    def place(self, user: Trader, order: OrderRequest) -> Result:
        spec = self._spec(order)
        try:
            placed = self._as(user).place(spec)
        except ApiError as exc:
            return self._refused(exc)
        return self._placed(user, placed, order.expires_at_ms)

    def place_batch(self, user: Trader, orders: list[OrderRequest]) -> Result:
        specs = [self._spec(o) for o in orders]
        try:
            answers = self._as(user).place_batch(specs)
        except ApiError as exc:
            return self._refused(exc)
        result = Result()
        for request, answer in zip(orders, answers, strict=False):
            if isinstance(answer, ApiError):
                item = self._refused(answer)
            else:
                item = self._placed(user, answer, request.expires_at_ms)
            result.items.append(item)
            result.trades.extend(item.trades)
        return result

    def modify(self, user: Trader, order_id: int, price: str | None,
               quantity: int | None) -> Result:
        try:
            modified = self._as(user).modify_order(order_id, price, quantity)
        except ApiError as exc:
            return self._order_refused(exc)
        return self._placed(user, modified, None)

    def cancel(self, user: Trader, order_id: int) -> Result:
        try:
            order = self._as(user).cancel_order(order_id)
        except ApiError as exc:
            return self._order_refused(exc)
        return Result(order=_order_state(order, user.id), cancelled=[order.id])

    def cancel_all(self, user: Trader, market_id: int | None = None) -> Result:
        try:
            return Result(cancelled=self._as(user).cancel_all(market_id))
        except ApiError as exc:
            return self._refused(exc)

    # --- collateral ----------------------------------------------------------------

    def split(self, user: Trader, market_id: int, quantity: int) -> Result:
        return self._collateral(lambda: self._as(user).split_market(market_id, quantity))

    def merge(self, user: Trader, market_id: int, quantity: int) -> Result:
        return self._collateral(lambda: self._as(user).merge_market(market_id, quantity))

    def split_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        return self._collateral(lambda: self._as(user).split_event(event_id, quantity))

    def merge_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        return self._collateral(lambda: self._as(user).merge_event(event_id, quantity))

    def convert(self, user: Trader, event_id: int, outcome_ids: list[int],
                quantity: int) -> Result:
        return self._collateral(
            lambda: self._as(user).convert(event_id, outcome_ids, quantity))

    def _collateral(self, send) -> Result:
        try:
            send()
        except ApiError as exc:
            return self._refused(exc)
        return Result()

    # --- admin ---------------------------------------------------------------------

    def set_event_status(self, event_id: int, status: str) -> Result:
        """Close or reopen an event (``cancelled`` stays empty: the API lists no ids)."""
        try:
            self.admin.update_event(event_id, status=status)
        except ApiError as exc:
            return self._refused(exc)
        return Result()

    def resolve(self, event_id: int, winning_outcome_id: int | None) -> Result:
        try:
            resolution = self.admin.resolve_event(event_id, winning_outcome_id)
        except ApiError as exc:
            return self._refused(exc)
        return Result(payouts_total=str(resolution.payouts_total))

    def void(self, event_id: int) -> Result:
        try:
            resolution = self.admin.void_event(event_id)
        except ApiError as exc:
            return self._refused(exc)
        return Result(payouts_total=str(resolution.payouts_total))

    def delete_event(self, event_id: int) -> Result:
        try:
            self.admin.delete_event(event_id)
        except ApiError as exc:
            return self._refused(exc)
        return Result()

    # --- queries -------------------------------------------------------------------

    def book(self, market_id: int, view: str = "yes", depth: int | None = None
             ) -> BookLevels:
        b = self.api.orderbook(market_id, view, depth)
        return BookLevels(market_id, b.view, [(str(lv.price), lv.quantity) for lv in b.bids],
                          [(str(lv.price), lv.quantity) for lv in b.asks],
                          _text(b.best_bid), _text(b.best_ask), _text(b.last_price))

    def market(self, market_id: int) -> Market:
        return self.api.market(market_id)

    def balance(self, user: Trader) -> Balance:
        return self._as(user).balance()

    def holdings(self, user: Trader) -> list[Holding]:
        client, out, offset = self._as(user), [], 0
        while True:
            page = client.positions(limit=_PAGE, offset=offset)
            out.extend(Holding(p.market_id, p.yes_quantity, p.no_quantity, p.yes_reserved,
                               p.no_reserved) for p in page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return out

    def open_orders(self, user: Trader, market_id: int | None = None) -> list[OrderState]:
        client, found, offset = self._as(user), [], 0
        while True:
            page = client.orders("open", market_id, limit=_PAGE, offset=offset)
            found.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        return [_order_state(o, user.id) for o in sorted(found, key=lambda o: o.id)]

    def order(self, user: Trader, order_id: int) -> OrderState | None:
        """``GET /orders/{id}``: None on a 404 (unknown, or another user's)."""
        try:
            return _order_state(self._as(user).order(order_id), user.id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def audit(self) -> AuditCheck:
        a = self.admin.audit()
        problems = [] if a.ok else [
            f"deposits {a.deposits} - withdrawals {a.withdrawals} != user cash "
            f"{a.user_cash} + collateral {a.collateral} + fees {a.fees} "
            f"(difference {a.difference})"]
        return AuditCheck(a.ok, str(a.difference), problems)

    def state_digest(self) -> str | None:
        """None: the API exposes no digest of the whole exchange state."""
        return None

    def close(self) -> None:
        """Close the connection pool every user's client shares."""
        self.api.close()
