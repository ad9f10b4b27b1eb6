"""Pydantic models of the HTTP edge: one per use (``OrderCreate`` in, ``OrderOut`` out).

Requests: money and prices are accepted as decimal strings or JSON numbers and become
exact integer units here (``Units``); a value that is not exact to the unit is a 422,
never rounded. Whether a price lies on its market's tick grid is the engine's check
(its ``invalid_price`` rejection is a 422 too). Unknown fields are refused, so no client
can set a field it should not.

Responses: the handlers build plain dicts (see ``views``) and the models below document
them in the OpenAPI schema; money and prices are decimal strings there.

Invariant: no model here has a password hash field, so no response can carry one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from pmarket.engine import units

MAX_QUANTITY = units.MAX_QUANTITY
MAX_BATCH = 20
MAX_OUTCOMES = 100


def _to_units(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a decimal string or a number")
    if isinstance(value, str) and (len(value) > 40 or not value.strip()):
        raise ValueError("must be a decimal number")
    return units.to_units(value, "value")


def _positive_amount(value: int) -> int:
    if value <= 0:
        raise ValueError("must be greater than 0")
    if value > units.MAX_AMOUNT:
        raise ValueError(f"must be at most {units.format_money(units.MAX_AMOUNT)}")
    return value


def _price_range(value: int) -> int:
    if not 0 < value < units.SCALE:
        raise ValueError("must be strictly between 0 and 1")
    return value


_DECIMAL_SCHEMA = WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?$"}, {"type": "number"}],
    "description": "a decimal string or number, exact (never rounded)",
})
Amount = Annotated[int, BeforeValidator(_to_units), AfterValidator(_positive_amount),
                   _DECIMAL_SCHEMA]
"""Money in a request, as integer units."""
Price = Annotated[int, BeforeValidator(_to_units), AfterValidator(_price_range),
                  _DECIMAL_SCHEMA]
"""A price in a request, as integer units (grid checked by the engine)."""
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
Id = Annotated[int, Field(ge=1, le=2**62)]
Email = Annotated[str, Field(min_length=3, max_length=320,
                             pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def _password_bytes(value: str) -> str:
    if len(value.encode("utf-8")) > 72:
        raise ValueError("password must be at most 72 bytes (bcrypt's limit)")
    return value


Password = Annotated[str, Field(max_length=1000), AfterValidator(_password_bytes)]
"""A new password; its strength is checked by ``passwords.password_problem`` at sign-up
(422 ``weak_password``), which needs the e-mail too."""


class In(BaseModel):
    """Base of request bodies: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


# --- auth ---------------------------------------------------------------------------


class SignUp(In):
    email: Email
    name: Name
    password: Password


class SignIn(In):
    email: Annotated[str, Field(max_length=320)]
    password: Annotated[str, Field(max_length=1000)]


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
    value: str
    unrealized_pnl: str
    realized_pnl: str


class PositionPage(BaseModel):
    items: list[PositionOut]
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
    expires_at: datetime | None = None
    post_only: bool = False
    client_order_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
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

Title = Annotated[str, Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(max_length=10_000)]
Category = Annotated[str, Field(max_length=100)]
Slug = Annotated[str, Field(max_length=200, pattern=r"^[a-z0-9-]*$")]
OutcomeName = Annotated[str, Field(min_length=1, max_length=200)]


class EventCreate(In):
    title: Title
    description: Text = ""
    category: Category = ""
    slug: Slug | None = None
    close_time: datetime | None = None
    outcomes: Annotated[list[OutcomeName], Field(max_length=100)] = []
    tick_size: Annotated[int, BeforeValidator(_to_units), _DECIMAL_SCHEMA] = 100


class EventUpdate(In):
    title: Title | None = None
    description: Text | None = None
    category: Category | None = None
    close_time: datetime | None = None
    status: Literal["active", "closed"] | None = None


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


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, Any]
