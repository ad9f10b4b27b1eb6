"""Typed clients of the pmarket HTTP API and its WebSocket.

``Client`` (blocking) and ``AsyncClient`` (asyncio) have one method per endpoint of
``API.md`` and return the API's objects of ``pmarket.api`` (immutable pydantic
models, the server's own definitions); ``MarketStream`` yields live messages and
keeps local books. Invariant: money and prices are ``Decimal`` end to end, and every
failure is an ``ApiError`` (the server said no) or a ``ServerUnavailable`` (nobody
answered).

    >>> with Client("http://127.0.0.1:8000") as api:     # doctest: +SKIP
    ...     api.signup("ann@example.com", "Ann", "a long password")
    ...     api.onramp("100")
    ...     api.place_order(market_id=1, outcome="yes", side="buy", quantity=10,
    ...                     price="0.40")
"""

from pmarket.api import (
    AdminAuth,
    AdminUser,
    ApiKey,
    ApiKeyCreated,
    Audit,
    Auth,
    Balance,
    Book,
    Candle,
    Event,
    EventBook,
    EventResolution,
    EventSplitResult,
    Fees,
    Health,
    Heartbeat,
    Level,
    Market,
    Me,
    Order,
    OrderResult,
    Outcome,
    OutcomeBook,
    Page,
    Payout,
    Portfolio,
    Position,
    PublicTrade,
    Resolution,
    SplitResult,
    Trade,
    User,
)
from pmarket.client.aio import AsyncClient
from pmarket.client.calls import Call, OrderSpec
from pmarket.client.deadman import AsyncDeadManSwitch, DeadManSwitch
from pmarket.client.errors import ApiError, ClientError, ServerUnavailable
from pmarket.client.http import API_KEY_ENV, DEFAULT_URL
from pmarket.client.stream import (
    BalanceMessage,
    BookMessage,
    ConnectionMessage,
    ErrorMessage,
    FillMessage,
    LocalBook,
    MarketStream,
    OrderMessage,
    StreamMessage,
    TradeMessage,
)
from pmarket.client.sync import Client

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_URL",
    "AdminAuth",
    "AdminUser",
    "ApiError",
    "ApiKey",
    "ApiKeyCreated",
    "AsyncClient",
    "AsyncDeadManSwitch",
    "Audit",
    "Auth",
    "Balance",
    "BalanceMessage",
    "Book",
    "BookMessage",
    "Call",
    "Candle",
    "Client",
    "ClientError",
    "ConnectionMessage",
    "DeadManSwitch",
    "ErrorMessage",
    "Event",
    "EventBook",
    "EventResolution",
    "EventSplitResult",
    "Fees",
    "FillMessage",
    "Health",
    "Heartbeat",
    "Level",
    "LocalBook",
    "Market",
    "MarketStream",
    "Me",
    "Order",
    "OrderMessage",
    "OrderResult",
    "OrderSpec",
    "Outcome",
    "OutcomeBook",
    "Page",
    "Payout",
    "Portfolio",
    "Position",
    "PublicTrade",
    "Resolution",
    "ServerUnavailable",
    "SplitResult",
    "StreamMessage",
    "Trade",
    "TradeMessage",
    "User",
]
