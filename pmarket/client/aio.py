"""The asyncio pmarket client: one coroutine per endpoint of ``API.md``, and the stream.

It mirrors ``pmarket.client.sync.Client`` method for method (both build their requests
in ``calls``). Invariant: a client holds at most one token; signing up or in replaces
it, and ``stream()`` subscribes to the user channel with that token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from pmarket import api
from pmarket.client import calls as c
from pmarket.client.calls import Amount, Call, OrderSpec
from pmarket.client.deadman import AsyncDeadManSwitch
from pmarket.client.errors import ApiError, ServerUnavailable
from pmarket.client.http import (
    API_KEY_ENV,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    env_api_key,
    env_url,
    read,
    request_args,
    retry_wait,
    ws_url,
)
from pmarket.client.stream import MarketStream

T = TypeVar("T")
AuthT = TypeVar("AuthT", api.Auth, api.AdminAuth)


class AsyncClient:
    """An asyncio client of the pmarket HTTP API.

    Args:
        base_url: The server's URL, e.g. ``http://127.0.0.1:8000``.
        token: A bearer token to act with (signing in sets one).
        api_key: An API key (``pmk_...``) to act with instead of a token; a key is sent
            as a bearer token too. ``from_env`` takes it from ``PMARKET_API_KEY``.
        timeout: Seconds to wait for each request.
        transport: An ``httpx`` transport (``httpx.MockTransport`` in tests).
        rate_limit_retries: How many times a call answered 429 (or 503 with
            ``Retry-After``) is sent again after waiting what the server asks (at most
            ``MAX_RETRY_WAIT_S`` each); 0 raises ``ApiError`` at once.
    """

    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *,
                 api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, rate_limit_retries: int = 0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 _http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token or api_key
        self.rate_limit_retries = rate_limit_retries
        self.user: api.User | None = None
        self._owns_http = _http is None
        self._http = _http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                           transport=transport)

    @classmethod
    def from_env(cls, base_url: str | None = None, **options: Any) -> AsyncClient:
        """A client acting with the API key in ``PMARKET_API_KEY`` against
        ``base_url`` (default: ``PMARKET_URL``, else ``DEFAULT_URL``).

        Raises:
            ValueError: ``PMARKET_API_KEY`` is not set.
        """
        key = env_api_key()
        if key is None:
            raise ValueError(f"{API_KEY_ENV} is not set")
        return cls(base_url or env_url(), api_key=key, **options)

    def as_token(self, token: str | None) -> AsyncClient:
        """A client acting with ``token`` that shares this one's connections."""
        return AsyncClient(self.base_url, token, rate_limit_retries=self.rate_limit_retries,
                      _http=self._http)

    async def close(self) -> None:
        """Close the connections (only if this client opened them)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, call: Call[T]) -> T:
        """Send ``call`` and return its typed result.

        Raises:
            ApiError: The server answered with an error status.
            ServerUnavailable: No server answered.
        """
        retries = self.rate_limit_retries
        while True:
            try:
                response = await self._http.request(call.method, call.path,
                                                    **request_args(call, self.token))
            except httpx.TransportError as exc:
                raise ServerUnavailable(f"no answer from {self.base_url}: {exc}") from exc
            wait = retry_wait(response, retries)
            if wait is None:
                return read(call, response)
            retries -= 1
            await asyncio.sleep(wait)

    def _signed_in(self, auth: AuthT) -> AuthT:
        self.token, self.user = auth.token, auth.user
        return auth

    # --- auth ----------------------------------------------------------------------

    async def signup(self, email: str, name: str, password: str) -> api.Auth:
        """Create a user account and act as it."""
        return self._signed_in(await self.call(c.signup(email, name, password)))

    async def signin(self, email: str, password: str) -> api.Auth:
        """Sign in as a user and act as them."""
        return self._signed_in(await self.call(c.signin(email, password)))

    async def admin_signin(self, email: str, password: str) -> api.AdminAuth:
        """Sign in as an admin and act as them."""
        return self._signed_in(await self.call(c.admin_signin(email, password)))

    async def signout_all(self) -> None:
        """End every session of this user (all their tokens, this one too)."""
        return await self.call(c.signout_all())

    async def create_api_key(self, name: str, scopes: list[str] | None = None) -> api.ApiKeyCreated:
        """Create an API key (default scopes: read and trade); its secret is in
        ``.key``, shown this once."""
        return await self.call(c.create_api_key(name, scopes or ["read", "trade"]))

    async def api_keys(self, limit: int | None = None, offset: int | None = None
                 ) -> api.Page[api.ApiKey]:
        """This user's API keys (never their secrets)."""
        return await self.call(c.api_keys(limit, offset))

    async def delete_api_key(self, key_id: int) -> None:
        """Revoke an API key: it stops working at once."""
        return await self.call(c.delete_api_key(key_id))

    async def me(self) -> api.Me:
        """The account the token belongs to."""
        return await self.call(c.me())

    # --- account -------------------------------------------------------------------

    async def balance(self) -> api.Balance:
        """Cash available, reserved and total."""
        return await self.call(c.balance())

    async def onramp(self, amount: Amount) -> api.Balance:
        """Deposit ``amount``."""
        return await self.call(c.onramp(amount))

    async def offramp(self, amount: Amount) -> api.Balance:
        """Withdraw ``amount`` (409 if more than available)."""
        return await self.call(c.offramp(amount))

    async def positions(self, market_id: int | None = None, event_id: int | None = None,
                  limit: int | None = None, offset: int | None = None
                  ) -> api.Page[api.Position]:
        """Shares held, with cost basis and P&L."""
        return await self.call(c.positions(market_id, event_id, limit, offset))

    async def portfolio(self) -> api.Portfolio:
        """Balance, positions and totals."""
        return await self.call(c.portfolio())

    async def orders(self, status: str | None = None, market_id: int | None = None,
               limit: int | None = None, offset: int | None = None) -> api.Page[api.Order]:
        """Own orders (``status`` "open" or "all")."""
        return await self.call(c.orders(status, market_id, limit, offset))

    async def order(self, order_id: int) -> api.Order:
        """One own order (404 for anyone else's)."""
        return await self.call(c.order(order_id))

    async def payouts(self, event_id: int | None = None, limit: int | None = None,
                      offset: int | None = None) -> api.Page[api.Payout]:
        """What resolutions paid, position by position, newest first."""
        return await self.call(c.payouts(event_id, limit, offset))

    async def trades(self, market_id: int | None = None, limit: int | None = None,
               offset: int | None = None) -> api.Page[api.Trade]:
        """Own fills."""
        return await self.call(c.trades(market_id, limit, offset))

    # --- trading -------------------------------------------------------------------

    async def place(self, spec: OrderSpec) -> api.OrderResult:
        """Place the order ``spec`` describes."""
        return await self.call(c.place_order(spec))

    async def place_order(self, market_id: int, outcome: str, side: str, quantity: int,
                    price: Amount | None = None, type: str = "limit",
                    time_in_force: str | None = None,
                    expires_at: datetime | str | None = None,
                    post_only: bool | None = None,
                    client_order_id: str | None = None,
                    stp: str | None = None) -> api.OrderResult:
        """Place one order; see ``OrderSpec`` for the fields."""
        return await self.place(OrderSpec(market_id, outcome, side, quantity, price, type,
                                    time_in_force, expires_at, post_only, client_order_id,
                                    stp))

    async def place_batch(self, specs: list[OrderSpec]) -> list[api.OrderResult | ApiError]:
        """Place up to 20 orders; each result is an OrderResult or an ApiError."""
        return await self.call(c.place_batch(specs))

    async def modify_order(self, order_id: int, price: Amount | None = None,
                     quantity: int | None = None) -> api.OrderResult:
        """Change price and/or total quantity of an open order."""
        return await self.call(c.modify_order(order_id, price, quantity))

    async def cancel_order(self, order_id: int) -> api.Order:
        """Cancel one order."""
        return await self.call(c.cancel_order(order_id))

    async def cancel_all(self, market_id: int | None = None) -> list[int]:
        """Cancel every open order (of one market); returns the ids cancelled."""
        return await self.call(c.cancel_all(market_id))

    async def split_market(self, market_id: int, quantity: int) -> api.SplitResult:
        """Turn cash into ``quantity`` YES + NO pairs."""
        return await self.call(c.split_market(market_id, quantity))

    async def merge_market(self, market_id: int, quantity: int) -> api.SplitResult:
        """Turn ``quantity`` YES + NO pairs back into cash."""
        return await self.call(c.merge_market(market_id, quantity))

    async def split_event(self, event_id: int, quantity: int) -> api.EventSplitResult:
        """Turn cash into ``quantity`` complete sets of YES."""
        return await self.call(c.split_event(event_id, quantity))

    async def merge_event(self, event_id: int, quantity: int) -> api.EventSplitResult:
        """Turn ``quantity`` complete sets of YES back into cash."""
        return await self.call(c.merge_event(event_id, quantity))

    async def convert(self, event_id: int, outcome_ids: list[int], quantity: int
                      ) -> api.EventSplitResult:
        """Turn ``quantity`` NO of each of ``outcome_ids`` into as many YES of every other
        outcome of the event, plus $(k - 1) per unit for k chosen outcomes."""
        return await self.call(c.convert(event_id, outcome_ids, quantity))

    # --- market data ---------------------------------------------------------------

    async def events(self, q: str | None = None, category: str | None = None,
               status: str | None = None, limit: int | None = None,
               offset: int | None = None) -> api.Page[api.Event]:
        """Events matching the search text and filters."""
        return await self.call(c.events(q, category, status, limit, offset))

    async def event(self, event_id: int) -> api.Event:
        """One event."""
        return await self.call(c.event(event_id))

    async def event_orderbook(self, event_id: int, depth: int | None = None) -> api.EventBook:
        """Every outcome's book of one event."""
        return await self.call(c.event_orderbook(event_id, depth))

    async def market(self, market_id: int) -> api.Market:
        """One market."""
        return await self.call(c.market(market_id))

    async def orderbook(self, market_id: int, view: str | None = None,
                  depth: int | None = None) -> api.Book:
        """One market's book in the "yes" or "no" view."""
        return await self.call(c.orderbook(market_id, view, depth))

    async def market_trades(self, market_id: int, limit: int | None = None,
                      offset: int | None = None) -> api.Page[api.PublicTrade]:
        """One market's public trades."""
        return await self.call(c.market_trades(market_id, limit, offset))

    async def candles(self, market_id: int, interval: str = "1m",
                start: datetime | str | None = None, end: datetime | str | None = None,
                limit: int | None = None, offset: int | None = None) -> api.Page[api.Candle]:
        """OHLCV bars of one market."""
        return await self.call(c.candles(market_id, interval, start, end, limit, offset))

    # --- admin ---------------------------------------------------------------------

    async def create_event(self, title: str, outcomes: list[str] | None = None, **fields: Any
                     ) -> api.Event:
        """Create an event (fields: description, category, slug, close_time, tick_size)."""
        return await self.call(c.create_event(title, outcomes, **fields))

    async def update_event(self, event_id: int, **fields: Any) -> api.Event:
        """Edit an event (fields: title, description, category, close_time, status)."""
        return await self.call(c.update_event(event_id, **fields))

    async def resolve_event(self, event_id: int, winning_outcome_id: int | None) -> api.Resolution:
        """Resolve an event with its winner (None: a yes/no event's NO wins)."""
        return await self.call(c.resolve_event(event_id, winning_outcome_id))

    async def void_event(self, event_id: int) -> api.Resolution:
        """Void an event (every outcome pays its even share)."""
        return await self.call(c.void_event(event_id))

    async def delete_event(self, event_id: int) -> None:
        """Delete an event nothing has traded or is held in."""
        return await self.call(c.delete_event(event_id))

    async def users(self, limit: int | None = None, offset: int | None = None
                    ) -> api.Page[api.AdminUser]:
        """Every user account."""
        return await self.call(c.users(limit, offset))

    async def disable_user(self, user_id: int) -> api.AdminUser:
        """Disable a user: their tokens and keys stop working, open orders cancelled."""
        return await self.call(c.disable_user(user_id))

    async def enable_user(self, user_id: int) -> api.AdminUser:
        """Let a disabled user sign in again."""
        return await self.call(c.enable_user(user_id))

    async def audit(self) -> api.Audit:
        """The exchange-wide money audit."""
        return await self.call(c.audit())

    async def fees(self) -> api.Fees:
        """The taker fees collected: the total and each event's part."""
        return await self.call(c.fees())

    def stream(self, **options: Any) -> MarketStream:
        """A live WebSocket stream on ``/ws`` acting with this client's token.

        Use as ``async with client.stream() as s: await s.subscribe(...)``; see
        ``MarketStream`` for the options.
        """
        return MarketStream(ws_url(self.base_url), self.token, **options)

    # --- dead-man switch -----------------------------------------------------------

    async def heartbeat(self, timeout_s: int) -> api.Heartbeat:
        """Arm the dead-man switch (or keep it armed) for ``timeout_s`` (5 to 300)."""
        return await self.call(c.heartbeat(timeout_s))

    async def disarm_heartbeat(self) -> None:
        """Turn the dead-man switch off."""
        return await self.call(c.disarm_heartbeat())

    def dead_man_switch(self, timeout_s: int = 30, interval_s: float | None = None,
                        on_fired: Callable[[api.Heartbeat], Any] | None = None
                        ) -> AsyncDeadManSwitch:
        """The dead-man switch as a context manager sending heartbeats in the background
        (every ``interval_s``, default ``timeout_s / 3``); see ``pmarket.client.deadman``."""
        return AsyncDeadManSwitch(self, timeout_s, interval_s, on_fired)

    # --- system --------------------------------------------------------------------

    async def health(self) -> api.Health:
        """Each component's health."""
        return await self.call(c.health())
