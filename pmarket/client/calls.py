"""Every request of the pmarket API as a value: method, path, query, body and parser.

The sync and async clients only differ in how they send; both build their requests
here, so the two can never drift apart. Invariant: money and prices leave as decimal
strings (``str(Decimal)``: exact, never a float), and ``None`` fields are left out of
bodies and queries so the server applies its documented defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pmarket import api
from pmarket.client.errors import ApiError

T = TypeVar("T")
Amount = Decimal | str | int


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its success body.

    Attributes:
        method: HTTP method.
        path: Path below the base URL, ids filled in.
        parse: Turns the decoded JSON body (``None`` for 204) into the result.
        params: Query parameters (``None`` values dropped).
        body: JSON body, or ``None`` for none.
        accept: Error statuses whose body is still a result (``/health`` answers 503
            with its report when degraded).
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    accept: tuple[int, ...] = ()


def money(value: Amount | None) -> str | None:
    """A price or amount as the decimal string the API expects."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("pass money and prices as Decimal or str, never float")
    return str(value)


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _page(limit: int | None, offset: int | None) -> dict[str, Any]:
    return _clean({"limit": limit, "offset": offset})


def _none(_: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """The body of ``POST /orders`` (and one element of a batch)."""

    market_id: int
    outcome: str
    side: str
    quantity: int
    price: Amount | None = None
    type: str = "limit"
    time_in_force: str | None = None
    expires_at: datetime | str | None = None
    post_only: bool | None = None
    client_order_id: str | None = None
    stp: str | None = None
    """Self-trade prevention: ``cancel_resting`` (the server's default), ``cancel_taker``
    or ``cancel_both``."""

    def to_json(self) -> dict[str, Any]:
        """The JSON body, ``None`` fields left out."""
        return _clean({
            "market_id": self.market_id, "outcome": self.outcome, "side": self.side,
            "type": self.type, "price": money(self.price), "quantity": self.quantity,
            "time_in_force": self.time_in_force, "expires_at": _iso(self.expires_at),
            "post_only": self.post_only, "client_order_id": self.client_order_id,
            "stp": self.stp})


def parse_batch(d: Any) -> list[api.OrderResult | ApiError]:
    """``{results: [...]}``: each an OrderResult, or an ApiError for a refused order."""
    out: list[api.OrderResult | ApiError] = []
    for item in api.BatchResult.model_validate(d).results:
        if item.error is not None:
            out.append(ApiError(0, item.error.code, item.error.message))
        elif item.order is not None:
            out.append(api.OrderResult(order=item.order, trades=item.trades or []))
    return out


# --- auth --------------------------------------------------------------------------


def signup(email: str, name: str, password: str) -> Call[api.Auth]:
    """``POST /auth/signup``."""
    return Call("POST", "/auth/signup", api.Auth.model_validate,
                body={"email": email, "name": name, "password": password})


def signin(email: str, password: str) -> Call[api.Auth]:
    """``POST /auth/signin``."""
    return Call("POST", "/auth/signin", api.Auth.model_validate,
                body={"email": email, "password": password})


def admin_signin(email: str, password: str) -> Call[api.AdminAuth]:
    """``POST /auth/admin/signin``."""
    return Call("POST", "/auth/admin/signin", api.AdminAuth.model_validate,
                body={"email": email, "password": password})


def signout_all() -> Call[None]:
    """``POST /auth/signout-all``: every token of the caller stops working."""
    return Call("POST", "/auth/signout-all", _none)


def create_api_key(name: str, scopes: list[str]) -> Call[api.ApiKeyCreated]:
    """``POST /api-keys`` (``scopes``: ``["read"]`` or ``["read", "trade"]``)."""
    return Call("POST", "/api-keys", api.ApiKeyCreated.model_validate,
                body={"name": name, "scopes": scopes})


def api_keys(limit: int | None = None, offset: int | None = None) -> Call[api.Page[api.ApiKey]]:
    """``GET /api-keys``."""
    return Call("GET", "/api-keys", api.Page[api.ApiKey].model_validate,
                params=_page(limit, offset))


def delete_api_key(key_id: int) -> Call[None]:
    """``DELETE /api-keys/{id}``: the key stops working at once."""
    return Call("DELETE", f"/api-keys/{key_id}", _none)


def me() -> Call[api.Me]:
    """``GET /me``."""
    return Call("GET", "/me", api.Me.model_validate)


# --- account -----------------------------------------------------------------------


def balance() -> Call[api.Balance]:
    """``GET /balance``."""
    return Call("GET", "/balance", api.Balance.model_validate)


def onramp(amount: Amount) -> Call[api.Balance]:
    """``POST /onramp``."""
    return Call("POST", "/onramp", api.Balance.model_validate, body={"amount": money(amount)})


def offramp(amount: Amount) -> Call[api.Balance]:
    """``POST /offramp``."""
    return Call("POST", "/offramp", api.Balance.model_validate, body={"amount": money(amount)})


def positions(market_id: int | None = None, event_id: int | None = None,
              limit: int | None = None, offset: int | None = None
              ) -> Call[api.Page[api.Position]]:
    """``GET /positions``."""
    return Call("GET", "/positions", api.Page[api.Position].model_validate,
                params=_clean({"market_id": market_id, "event_id": event_id,
                               **_page(limit, offset)}))


def portfolio() -> Call[api.Portfolio]:
    """``GET /portfolio``."""
    return Call("GET", "/portfolio", api.Portfolio.model_validate)


def orders(status: str | None = None, market_id: int | None = None,
           limit: int | None = None, offset: int | None = None) -> Call[api.Page[api.Order]]:
    """``GET /orders`` (``status``: "open" or "all")."""
    return Call("GET", "/orders", api.Page[api.Order].model_validate,
                params=_clean({"status": status, "market_id": market_id,
                               **_page(limit, offset)}))


def order(order_id: int) -> Call[api.Order]:
    """``GET /orders/{id}``."""
    return Call("GET", f"/orders/{order_id}", api.Order.model_validate)


def payouts(event_id: int | None = None, limit: int | None = None,
            offset: int | None = None) -> Call[api.Page[api.Payout]]:
    """``GET /payouts`` (what resolutions paid, newest first)."""
    return Call("GET", "/payouts", api.Page[api.Payout].model_validate,
                params=_clean({"event_id": event_id, **_page(limit, offset)}))


def trades(market_id: int | None = None, limit: int | None = None,
           offset: int | None = None) -> Call[api.Page[api.Trade]]:
    """``GET /trades`` (own fills)."""
    return Call("GET", "/trades", api.Page[api.Trade].model_validate,
                params=_clean({"market_id": market_id, **_page(limit, offset)}))


# --- trading -----------------------------------------------------------------------


def place_order(spec: OrderSpec) -> Call[api.OrderResult]:
    """``POST /orders``."""
    return Call("POST", "/orders", api.OrderResult.model_validate, body=spec.to_json())


def place_batch(specs: list[OrderSpec]) -> Call[list[api.OrderResult | ApiError]]:
    """``POST /orders/batch`` (at most 20)."""
    return Call("POST", "/orders/batch", parse_batch,
                body={"orders": [s.to_json() for s in specs]})


def modify_order(order_id: int, price: Amount | None = None,
                 quantity: int | None = None) -> Call[api.OrderResult]:
    """``PATCH /orders/{id}``; ``quantity`` is the new total, filled part included."""
    return Call("PATCH", f"/orders/{order_id}", api.OrderResult.model_validate,
                body=_clean({"price": money(price), "quantity": quantity}))


def cancel_order(order_id: int) -> Call[api.Order]:
    """``DELETE /orders/{id}``."""
    return Call("DELETE", f"/orders/{order_id}", api.Order.model_validate)


def cancel_all(market_id: int | None = None) -> Call[list[int]]:
    """``DELETE /orders``: the ids cancelled."""
    return Call("DELETE", "/orders", lambda d: [int(i) for i in d.get("cancelled", [])],
                params=_clean({"market_id": market_id}))


def split_market(market_id: int, quantity: int) -> Call[api.SplitResult]:
    """``POST /markets/{id}/split``: cash into YES + NO pairs."""
    return Call("POST", f"/markets/{market_id}/split", api.SplitResult.model_validate,
                body={"quantity": quantity})


def merge_market(market_id: int, quantity: int) -> Call[api.SplitResult]:
    """``POST /markets/{id}/merge``: YES + NO pairs back into cash."""
    return Call("POST", f"/markets/{market_id}/merge", api.SplitResult.model_validate,
                body={"quantity": quantity})


def split_event(event_id: int, quantity: int) -> Call[api.EventSplitResult]:
    """``POST /events/{id}/split``: cash into complete sets of YES."""
    return Call("POST", f"/events/{event_id}/split", api.EventSplitResult.model_validate,
                body={"quantity": quantity})


def merge_event(event_id: int, quantity: int) -> Call[api.EventSplitResult]:
    """``POST /events/{id}/merge``: complete sets of YES back into cash."""
    return Call("POST", f"/events/{event_id}/merge", api.EventSplitResult.model_validate,
                body={"quantity": quantity})


def convert(event_id: int, outcome_ids: list[int], quantity: int
            ) -> Call[api.EventSplitResult]:
    """``POST /events/{id}/convert``: NO of each chosen outcome into YES of the others."""
    return Call("POST", f"/events/{event_id}/convert", api.EventSplitResult.model_validate,
                body={"outcome_ids": list(outcome_ids), "quantity": quantity})


# --- market data -------------------------------------------------------------------


def events(q: str | None = None, category: str | None = None, status: str | None = None,
           limit: int | None = None, offset: int | None = None) -> Call[api.Page[api.Event]]:
    """``GET /events`` with optional search text and filters."""
    return Call("GET", "/events", api.Page[api.Event].model_validate,
                params=_clean({"q": q or None, "category": category or None,
                               "status": status or None, **_page(limit, offset)}))


def event(event_id: int) -> Call[api.Event]:
    """``GET /events/{id}``."""
    return Call("GET", f"/events/{event_id}", api.Event.model_validate)


def event_orderbook(event_id: int, depth: int | None = None) -> Call[api.EventBook]:
    """``GET /events/{id}/orderbook``."""
    return Call("GET", f"/events/{event_id}/orderbook", api.EventBook.model_validate,
                params=_clean({"depth": depth}))


def market(market_id: int) -> Call[api.Market]:
    """``GET /markets/{id}``."""
    return Call("GET", f"/markets/{market_id}", api.Market.model_validate)


def orderbook(market_id: int, view: str | None = None, depth: int | None = None
              ) -> Call[api.Book]:
    """``GET /markets/{id}/orderbook`` in the "yes" or "no" view."""
    return Call("GET", f"/markets/{market_id}/orderbook", api.Book.model_validate,
                params=_clean({"view": view, "depth": depth}))


def market_trades(market_id: int, limit: int | None = None, offset: int | None = None
                  ) -> Call[api.Page[api.PublicTrade]]:
    """``GET /markets/{id}/trades`` (the public tape)."""
    return Call("GET", f"/markets/{market_id}/trades",
                api.Page[api.PublicTrade].model_validate, params=_page(limit, offset))


def candles(market_id: int, interval: str = "1m", start: datetime | str | None = None,
            end: datetime | str | None = None, limit: int | None = None,
            offset: int | None = None) -> Call[api.Page[api.Candle]]:
    """``GET /markets/{id}/candles`` (interval 1m/5m/1h/1d)."""
    return Call("GET", f"/markets/{market_id}/candles",
                api.Page[api.Candle].model_validate,
                params=_clean({"interval": interval, "start": _iso(start), "end": _iso(end),
                               **_page(limit, offset)}))


# --- admin -------------------------------------------------------------------------


def create_event(title: str, outcomes: list[str] | None = None, description: str | None = None,
                 category: str | None = None, slug: str | None = None,
                 close_time: datetime | str | None = None,
                 tick_size: Amount | None = None,
                 fee_rate: Amount | None = None) -> Call[api.Event]:
    """``POST /admin/events`` (no outcomes: a single yes/no market; no fee_rate: the
    server's default)."""
    return Call("POST", "/admin/events", api.Event.model_validate, body=_clean({
        "title": title, "description": description, "category": category, "slug": slug,
        "close_time": _iso(close_time), "outcomes": outcomes or None,
        "tick_size": money(tick_size), "fee_rate": money(fee_rate)}))


def update_event(event_id: int, title: str | None = None, description: str | None = None,
                 category: str | None = None, close_time: datetime | str | None = None,
                 status: str | None = None,
                 fee_rate: Amount | None = None) -> Call[api.Event]:
    """``PATCH /admin/events/{id}`` (status "closed" cancels open orders; a new fee_rate
    applies to later fills)."""
    return Call("PATCH", f"/admin/events/{event_id}", api.Event.model_validate, body=_clean({
        "title": title, "description": description, "category": category,
        "close_time": _iso(close_time), "status": status, "fee_rate": money(fee_rate)}))


def resolve_event(event_id: int, winning_outcome_id: int | None) -> Call[api.Resolution]:
    """``POST /admin/events/{id}/resolve`` (None: a yes/no event's NO wins)."""
    return Call("POST", f"/admin/events/{event_id}/resolve", api.Resolution.model_validate,
                body={"winning_outcome_id": winning_outcome_id})


def void_event(event_id: int) -> Call[api.Resolution]:
    """``POST /admin/events/{id}/resolve`` with ``void: true``."""
    return Call("POST", f"/admin/events/{event_id}/resolve", api.Resolution.model_validate,
                body={"void": True})


def delete_event(event_id: int) -> Call[None]:
    """``DELETE /admin/events/{id}`` (409 once anything traded or is held)."""
    return Call("DELETE", f"/admin/events/{event_id}", _none)


def users(limit: int | None = None, offset: int | None = None) -> Call[api.Page[api.AdminUser]]:
    """``GET /admin/users``."""
    return Call("GET", "/admin/users", api.Page[api.AdminUser].model_validate,
                params=_page(limit, offset))


def disable_user(user_id: int) -> Call[api.AdminUser]:
    """``POST /admin/users/{id}/disable``."""
    return Call("POST", f"/admin/users/{user_id}/disable", api.AdminUser.model_validate)


def enable_user(user_id: int) -> Call[api.AdminUser]:
    """``POST /admin/users/{id}/enable``."""
    return Call("POST", f"/admin/users/{user_id}/enable", api.AdminUser.model_validate)


def audit() -> Call[api.Audit]:
    """``GET /admin/audit``."""
    return Call("GET", "/admin/audit", api.Audit.model_validate)


def fees() -> Call[api.Fees]:
    """``GET /admin/fees``."""
    return Call("GET", "/admin/fees", api.Fees.model_validate)


# --- dead-man switch ------------------------------------------------------------------


def heartbeat(timeout_s: int) -> Call[api.Heartbeat]:
    """``POST /heartbeat``: arm the dead-man switch for ``timeout_s`` (5 to 300)."""
    return Call("POST", "/heartbeat", api.Heartbeat.model_validate, body={"timeout_s": timeout_s})


def disarm_heartbeat() -> Call[None]:
    """``DELETE /heartbeat``: turn the dead-man switch off."""
    return Call("DELETE", "/heartbeat", _none)


# --- system ------------------------------------------------------------------------


def health() -> Call[api.Health]:
    """``GET /health``."""
    return Call("GET", "/health", api.Health.model_validate, accept=(503,))
