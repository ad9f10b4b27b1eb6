"""The API's objects, defined once: what the server accepts and answers, what the client
returns, and what the simulator and the terminal speak.

Request bodies (``In``: ``SignUp``, ``OrderCreate``, ``EventCreate``...) refuse unknown
fields and turn money and prices into exact integer units (``fields``). Response objects
(``Out``: ``Order``, ``Balance``, ``Event``...) hold money and prices as ``Decimal`` and
times as aware ``datetime``, and go out as the API's JSON (decimal strings, ISO-8601
UTC). The server names them as its routes' ``response_model`` (the OpenAPI document)
while its hot routes build plain dicts of the same shape; the client parses every answer
with them. Modules by resource: ``accounts``, ``orders``, ``markets``, ``admin``;
``convert`` is the one conversion from engine events to these answers (the server's
replies, read model and WebSocket pushes, and the simulator's in-process target).

Invariant: an API object is defined here and nowhere else (a test keeps it so).
"""

from .accounts import (
    AdminAuth,
    AmountIn,
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    Auth,
    Balance,
    Heartbeat,
    HeartbeatIn,
    Me,
    Payout,
    Portfolio,
    Position,
    SignIn,
    SignUp,
    User,
)
from .admin import (
    AdminUser,
    Audit,
    AuditMarket,
    EventCreate,
    EventFees,
    EventResolve,
    EventUpdate,
    Fees,
    Health,
    Resolution,
)
from .base import Dec, Out, Page, Time, dec, iso
from .fields import In
from .markets import (
    Book,
    Candle,
    Event,
    EventBook,
    EventResolution,
    Level,
    Market,
    Outcome,
    OutcomeBook,
    PublicTrade,
)
from .orders import (
    BatchItem,
    BatchResult,
    Cancelled,
    ConvertIn,
    Error,
    ErrorDetail,
    EventSplitResult,
    Order,
    OrderBatch,
    OrderCreate,
    OrderModify,
    OrderResult,
    QuantityIn,
    SplitResult,
    Trade,
)

__all__ = [
    "AdminAuth",
    "AdminUser",
    "AmountIn",
    "ApiKey",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "Audit",
    "AuditMarket",
    "Auth",
    "Balance",
    "BatchItem",
    "BatchResult",
    "Book",
    "Cancelled",
    "Candle",
    "ConvertIn",
    "Dec",
    "Error",
    "ErrorDetail",
    "Event",
    "EventBook",
    "EventCreate",
    "EventFees",
    "EventResolution",
    "EventResolve",
    "EventSplitResult",
    "EventUpdate",
    "Fees",
    "Health",
    "Heartbeat",
    "HeartbeatIn",
    "In",
    "Level",
    "Market",
    "Me",
    "Order",
    "OrderBatch",
    "OrderCreate",
    "OrderModify",
    "OrderResult",
    "Out",
    "Outcome",
    "OutcomeBook",
    "Page",
    "Payout",
    "Portfolio",
    "Position",
    "PublicTrade",
    "QuantityIn",
    "Resolution",
    "SignIn",
    "SignUp",
    "SplitResult",
    "Time",
    "Trade",
    "User",
    "dec",
    "iso",
]
