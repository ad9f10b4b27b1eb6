"""Pydantic models of the HTTP edge: one per use (``OrderCreate`` in, ``OrderOut`` out).

Requests: money and prices are accepted as decimal strings or JSON numbers and become
exact integer units here (``Units``); a value that is not exact to the unit is a 422,
never rounded. Every field and every query parameter applies the input limits of
``pmarket.engine.limits`` (the engine applies the same rules to its commands): text has
no control characters or lone surrogates and a maximum length, timestamps need a zone
and fall between 1970 and 9999 UTC, numbers are size-checked before any arithmetic. A
breach is 422 ``invalid_field`` naming the field and the rule. Whether a price lies on
its market's tick grid is the engine's check (its ``invalid_price`` rejection is a 422
too). Unknown fields are refused, so no client can set a field it should not.

Responses: the handlers build plain dicts (see ``views``) and the models below document
them in the OpenAPI schema; money and prices are decimal strings there.

Invariant: no model here has a password hash field, so no response can carry one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pmarket.engine import limits, timers, units

MAX_QUANTITY = units.MAX_QUANTITY
MAX_BATCH = 20
MAX_OUTCOMES = limits.MAX_OUTCOMES
MIN_TIMEOUT_S = timers.MIN_TIMEOUT_MS // 1000
MAX_TIMEOUT_S = timers.MAX_TIMEOUT_MS // 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _fail(message: str) -> PydanticCustomError:
    """A validation error whose message is ``message`` alone (no "Value error, ")."""
    return PydanticCustomError("invalid_field", message)


def _to_units(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _fail("must be a decimal string or a number")
    try:
        return units.to_units(value, "value")  # checks the size before any arithmetic
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _positive_amount(value: int) -> int:
    if value <= 0:
        raise _fail("must be greater than 0")
    if value > units.MAX_AMOUNT:
        raise _fail(f"must be at most {units.format_money(units.MAX_AMOUNT)}")
    return value


def _price_range(value: int) -> int:
    if not 0 < value < units.SCALE:
        raise _fail("must be strictly between 0 and 1")
    return value


_DECIMAL_SCHEMA = WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?$",
               "maxLength": limits.MAX_DECIMAL_CHARS}, {"type": "number"}],
    "description": "a decimal string (at most 40 characters, no exponent) or a number, "
                   "exact (never rounded)",
})
Amount = Annotated[int, BeforeValidator(_to_units), AfterValidator(_positive_amount),
                   _DECIMAL_SCHEMA]
"""Money in a request, as integer units."""
Price = Annotated[int, BeforeValidator(_to_units), AfterValidator(_price_range),
                  _DECIMAL_SCHEMA]


def _fee_rate_range(value: int) -> int:
    if not 0 <= value <= units.MAX_FEE_RATE:
        raise _fail(f"must be from 0 to {units.format_units(units.MAX_FEE_RATE, 2)}")
    return value


FeeRate = Annotated[int, BeforeValidator(_to_units), AfterValidator(_fee_rate_range),
                    _DECIMAL_SCHEMA]
"""A taker fee rate: a decimal from 0 to 0.25, exact to 4 places (units)."""
"""A price in a request, as integer units (grid checked by the engine)."""
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
Id = Annotated[int, Field(ge=1, le=limits.MAX_ID)]


def _text_rule(max_chars: int) -> AfterValidator:
    """The input limits' text rule (``limits.text_problem``) as a validator."""
    def check(value: str) -> str:
        problem = limits.text_problem(value, max_chars)
        if problem is not None:
            raise _fail(problem)
        return value

    return AfterValidator(check)


def text(max_chars: int, min_chars: int = 0, **schema: Any) -> Any:
    """A text field: at most ``max_chars`` characters, no control characters and no lone
    surrogates (``limits``). Extra keywords go to the OpenAPI schema only."""
    return Annotated[str, Field(min_length=min_chars, max_length=max_chars,
                                json_schema_extra=schema or None), _text_rule(max_chars)]


def _email(value: str) -> str:
    # Sign-up and sign-in store and look up the address stripped and lower-cased, which
    # can lengthen it ("İ" lower-cases to two characters): the stored form must fit too.
    if len(value.strip().lower()) > limits.MAX_EMAIL:
        raise _fail(f"must be at most {limits.MAX_EMAIL} characters long once lower-cased")
    return value


def _password_bytes(value: str) -> str:
    if len(value.encode("utf-8")) > 72:
        raise _fail("password must be at most 72 bytes (bcrypt's limit)")
    return value


def _utc_time(value: datetime) -> datetime:
    """A timestamp with a zone, between 1970 and 9999 UTC once its offset is applied."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail("give a time zone (e.g. 2030-01-01T00:00:00Z)")
    problem = limits.time_ms_problem((value - _EPOCH) // _MS)  # never overflows
    if problem is not None:
        raise _fail(problem)
    return value


UtcTime = Annotated[datetime, AfterValidator(_utc_time)]
"""A timestamp in a request or a query: zone required, 1970-01-01 .. 9999-12-31 UTC."""
Email = Annotated[text(limits.MAX_EMAIL, 3), Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                  AfterValidator(_email)]
SignInEmail = Annotated[text(limits.MAX_EMAIL), AfterValidator(_email)]
Name = text(limits.MAX_USER_NAME, 1)
Password = Annotated[text(limits.MAX_PASSWORD), AfterValidator(_password_bytes)]
"""A new password; its strength is checked by ``passwords.password_problem`` at sign-up
(422 ``weak_password``), which needs the e-mail too."""
SignInPassword = text(limits.MAX_PASSWORD)
ClientOrderId = Annotated[str, Field(min_length=1, max_length=limits.MAX_CLIENT_ORDER_ID,
                                     json_schema_extra={"pattern": "^[ -~]+$"})]
"""Printable ASCII only (checked by ``_client_order_id``, which covers the text rule)."""
SearchText = text(limits.MAX_SEARCH)
"""Free text of a query string (``GET /events?q=``)."""


def _client_order_id(value: str) -> str:
    problem = limits.client_order_id_problem(value)
    if problem is not None:
        raise _fail(problem)
    return value


def _slug(value: str) -> str:
    problem = limits.slug_problem(value)
    if problem is not None:
        raise _fail(problem)
    return value


class In(BaseModel):
    """Base of request bodies: unknown fields are an error.

    Field *names* are client text too, and an unknown one is quoted in the error: a name
    holding a control character or a lone surrogate is refused before that happens.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _printable_field_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if not (type(key) is str and key.isprintable() and len(key) <= 100) and \
                        limits.text_problem(key, 100) is not None:
                    raise _fail("field names must be printable text of at most 100 "
                                "characters")
        return data


# --- auth ---------------------------------------------------------------------------


class SignUp(In):
    email: Email
    name: Name
    password: Password


class SignIn(In):
    email: SignInEmail
    password: SignInPassword


class UserOut(BaseModel):
    id: int
    email: str
    name: str


class AuthOut(BaseModel):
    token: str
    user: UserOut


class AdminAuthOut(BaseModel):
    token: str
    admin: UserOut


class MeOut(BaseModel):
    id: int
    email: str
    name: str
    role: Literal["user", "admin"]


ApiKeyName = text(100, 1)


class ApiKeyCreate(In):
    name: ApiKeyName
    scopes: Annotated[list[Literal["read", "trade"]], Field(min_length=1, max_length=2)]


class ApiKeyOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    created_at: str
    last_used_at: str | None


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    scopes: list[str]
    key: str
    created_at: str


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    total: int


# --- account ------------------------------------------------------------------------


class AmountIn(In):
    amount: Amount


class BalanceOut(BaseModel):
    available: str
    reserved: str
    total: str


class PositionOut(BaseModel):
    market_id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    yes_reserved: int
    no_reserved: int
    avg_cost_yes: str | None
    avg_cost_no: str | None
    mark_price: str | None
    """Once ``settled``, what one YES share paid (1, 0, or 1/N when void)."""
    value: str
    unrealized_pnl: str
    realized_pnl: str
    settled: bool
    """The event resolved and paid this position out (its shares are gone)."""


class PositionPage(BaseModel):
    items: list[PositionOut]
    total: int


class PayoutOut(BaseModel):
    event_id: int
    market_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    amount: str
    paid_at: str


class PayoutPage(BaseModel):
    items: list[PayoutOut]
    total: int


class PortfolioOut(BaseModel):
    balance: BalanceOut
    positions: list[PositionOut]
    positions_value: str
    total_value: str
    pnl: str


# --- orders -------------------------------------------------------------------------


class OrderCreate(In):
    market_id: Id
    outcome: Literal["yes", "no"]
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"] = "limit"
    price: Price | None = None
    quantity: Quantity
    time_in_force: Literal["gtc", "gtd", "ioc", "fok"] = "gtc"
    expires_at: UtcTime | None = None
    post_only: bool = False
    client_order_id: Annotated[ClientOrderId, AfterValidator(_client_order_id)] | None = None
    """At most 64 printable ASCII characters (U+0020-U+007E)."""
    stp: Literal["cancel_resting", "cancel_taker", "cancel_both"] = "cancel_resting"
    """Self-trade prevention: what happens if the order would trade with the caller's
    own resting order (cancel the resting order, this order, or both)."""


class OrderBatch(In):
    """Up to ``MAX_BATCH`` orders. Each item is validated on its own by the route (an
    invalid item gets its own error in the results; the others still go through), so
    here an item is any JSON value, documented as an ``OrderCreate``."""

    orders: Annotated[list[Annotated[Any, WithJsonSchema(OrderCreate.model_json_schema())]],
                      Field(min_length=1, max_length=MAX_BATCH)]


class OrderModify(In):
    price: Price | None = None
    quantity: Quantity | None = None


class QuantityIn(In):
    quantity: Quantity


class ConvertIn(In):
    outcome_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_OUTCOMES)]
    quantity: Quantity


class OrderOut(BaseModel):
    id: int
    client_order_id: str | None
    market_id: int
    event_id: int
    outcome: Literal["yes", "no"]
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"]
    price: str | None
    quantity: int
    filled_quantity: int
    remaining_quantity: int
    time_in_force: Literal["gtc", "gtd", "ioc", "fok"]
    post_only: bool
    expires_at: str | None
    status: Literal["open", "partially_filled", "filled", "cancelled", "expired", "rejected"]
    created_at: str
    updated_at: str


class TradeOut(BaseModel):
    id: int
    market_id: int
    order_id: int
    outcome: Literal["yes", "no"]
    side: Literal["buy", "sell"]
    price: str
    quantity: int
    role: Literal["maker", "taker"]
    kind: Literal["transfer", "mint", "merge"]
    fee: str
    executed_at: str


class OrderResult(BaseModel):
    order: OrderOut
    trades: list[TradeOut]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class BatchItem(BaseModel):
    order: OrderOut | None = None
    trades: list[TradeOut] | None = None
    error: ErrorDetail | None = None


class BatchOut(BaseModel):
    results: list[BatchItem]


class CancelledOut(BaseModel):
    cancelled: list[int]


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int


class TradePage(BaseModel):
    items: list[TradeOut]
    total: int


class SplitOut(BaseModel):
    balance: BalanceOut
    position: PositionOut | None


class EventSplitOut(BaseModel):
    balance: BalanceOut
    positions: list[PositionOut]


# --- market data --------------------------------------------------------------------


class LevelOut(BaseModel):
    price: str
    quantity: int


class BookOut(BaseModel):
    market_id: int
    view: Literal["yes", "no"]
    bids: list[LevelOut]
    asks: list[LevelOut]
    best_bid: str | None
    best_ask: str | None
    mid: str | None
    spread: str | None
    last_price: str | None
    sequence: int


class OutcomeOut(BaseModel):
    id: int
    name: str
    market_id: int
    last_price: str | None
    best_bid: str | None
    best_ask: str | None
    volume: int
    result: Literal["won", "lost", "void"] | None
    """None while the event is not resolved."""


class EventResolutionOut(BaseModel):
    winning_outcome_id: int | None
    """None when void, or when a single-outcome event's NO won."""
    void: bool
    resolved_at: str


class EventOut(BaseModel):
    id: int
    slug: str
    title: str
    description: str
    category: str
    status: str
    close_time: str | None
    outcomes: list[OutcomeOut]
    created_at: str
    resolution: EventResolutionOut | None
    """None until the event is resolved."""
    fee_rate: str


class EventPage(BaseModel):
    items: list[EventOut]
    total: int


class OutcomeBookOut(BaseModel):
    outcome_id: int
    name: str
    market_id: int
    book: BookOut


class EventBookOut(BaseModel):
    event_id: int
    outcomes: list[OutcomeBookOut]
    implied_probability_sum: str | None


class MarketOut(BaseModel):
    id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    status: str
    tick_size: str
    last_price: str | None
    best_bid: str | None
    best_ask: str | None
    volume: int
    open_interest: int
    result: Literal["yes", "no", "void"] | None
    """None while the market's event is not resolved."""


class PublicTradeOut(BaseModel):
    id: int
    market_id: int
    price: str
    quantity: int
    taker_side: Literal["buy", "sell"]
    executed_at: str


class PublicTradePage(BaseModel):
    items: list[PublicTradeOut]
    total: int


class CandleOut(BaseModel):
    start: str
    open: str
    high: str
    low: str
    close: str
    volume: int


class CandlePage(BaseModel):
    items: list[CandleOut]
    total: int


# --- admin --------------------------------------------------------------------------

Title = text(limits.MAX_TITLE, 1)
Text = text(limits.MAX_DESCRIPTION)
Category = text(limits.MAX_CATEGORY)
Slug = Annotated[text(limits.MAX_SLUG, pattern="^[a-z0-9-]*$"), AfterValidator(_slug)]
OutcomeName = text(limits.MAX_OUTCOME_NAME, 1)


class EventCreate(In):
    title: Title
    description: Text = ""
    category: Category = ""
    slug: Slug | None = None
    close_time: UtcTime | None = None
    outcomes: Annotated[list[OutcomeName], Field(max_length=MAX_OUTCOMES)] = []
    # The default is written as a client sends it (the schema shows it), converted to
    # units like any value sent.
    tick_size: Annotated[int, BeforeValidator(_to_units), _DECIMAL_SCHEMA] = Field(
        default="0.01", validate_default=True)
    fee_rate: FeeRate | None = None  # None: the server's PMARKET_FEE_RATE


class EventUpdate(In):
    title: Title | None = None
    description: Text | None = None
    category: Category | None = None
    close_time: UtcTime | None = None
    status: Literal["active", "closed"] | None = None
    fee_rate: FeeRate | None = None


class EventResolve(In):
    winning_outcome_id: Id | None = None
    void: bool = False


class ResolutionOut(BaseModel):
    event: EventOut
    payouts_total: str


class AdminUserOut(BaseModel):
    id: int
    email: str
    name: str
    created_at: str
    disabled: bool
    disabled_at: str | None


class AdminUserPage(BaseModel):
    items: list[AdminUserOut]
    total: int


class AuditOut(BaseModel):
    ok: bool
    deposits: str
    withdrawals: str
    user_cash: str
    collateral: str
    fees: str
    rounding: str
    difference: str
    markets: list[dict[str, Any]]


class EventFeesOut(BaseModel):
    event_id: int
    amount: str


class FeesOut(BaseModel):
    total: str
    by_event: list[EventFeesOut]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, Any]
    # the background checks' interval, timeout and the age beyond which a result is
    # stale (reported down): seconds (server/health.py)
    checks: dict[str, float]


# --- dead-man switch -----------------------------------------------------------------


class HeartbeatIn(In):
    timeout_s: Annotated[int, Field(ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S, strict=True,
                                    examples=[30])]


class HeartbeatOut(BaseModel):
    expires_at: str
    timeout_s: int
    fired_at: str | None
