"""Orders and trading: placing, batching, modifying and cancelling orders, one's own
fills, the API's error object, and splitting, merging and converting shares.

Invariant: an order and its own trades are in the owner's terms (a buy NO at 0.30 reads
exactly so); the book and the public tape (``markets``) are in YES terms.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from .accounts import Balance, Position
from .base import Dec, Out, Time
from .fields import (
    MAX_BATCH,
    MAX_OUTCOMES,
    ClientOrderId,
    Flag,
    Id,
    In,
    Price,
    Quantity,
    UtcTime,
)

Outcome = Literal["yes", "no"]
Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["gtc", "gtd", "ioc", "fok"]
OrderStatus = Literal["open", "partially_filled", "filled", "cancelled", "expired",
                      "rejected"]


class OrderCreate(In):
    """``POST /orders`` (and each order of a batch)."""

    market_id: Id
    outcome: Outcome
    side: Side
    type: OrderType = "limit"
    price: Price | None = None
    quantity: Quantity
    time_in_force: TimeInForce = "gtc"
    expires_at: UtcTime | None = None
    post_only: Flag = False
    client_order_id: ClientOrderId | None = None
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
    """``PATCH /orders/{id}``: a new price, a new total quantity, or both."""

    price: Price | None = None
    quantity: Quantity | None = None


class QuantityIn(In):
    """A split or merge of ``quantity`` shares."""

    quantity: Quantity


class ConvertIn(In):
    """``POST /events/{id}/convert``."""

    outcome_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_OUTCOMES)]
    quantity: Quantity


class Order(Out):
    """An order in its owner's own terms."""

    id: int
    client_order_id: str | None
    market_id: int
    event_id: int
    outcome: Outcome
    side: Side
    type: OrderType
    price: Dec | None
    quantity: int
    filled_quantity: int
    remaining_quantity: int
    time_in_force: TimeInForce
    post_only: bool
    expires_at: Time | None
    status: OrderStatus
    created_at: Time
    updated_at: Time

    @property
    def is_open(self) -> bool:
        """Whether the order still rests on the book."""
        return self.status in ("open", "partially_filled")


class Trade(Out):
    """One of the caller's own fills (``fee``: what the caller paid as taker)."""

    id: int
    market_id: int
    order_id: int
    outcome: Outcome
    side: Side
    price: Dec
    quantity: int
    role: Literal["maker", "taker"]
    kind: Literal["transfer", "mint", "merge"]
    fee: Dec = Decimal(0)
    executed_at: Time


class OrderResult(Out):
    """What a placement or modification did: the order and the trades it made."""

    order: Order
    trades: list[Trade]


class ErrorDetail(Out):
    """Why a request was refused: a stable ``code`` and a sentence for people."""

    code: str
    message: str


class Error(Out):
    """The body of every error answer."""

    error: ErrorDetail


class BatchItem(Out):
    """One order of a batch: what it did (``order`` and ``trades``), or why it was
    refused (``error`` alone): the fields an item does not carry are absent, so none is
    required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    order: Order | None = None
    trades: list[Trade] | None = None
    error: ErrorDetail | None = None


class BatchResult(Out):
    """``POST /orders/batch``: one item per order, in the request's order."""

    results: list[BatchItem]


class Cancelled(Out):
    """``DELETE /orders``: the ids of the orders cancelled."""

    cancelled: list[int]


class SplitResult(Out):
    """After a market split or merge: the new balance and the market's position."""

    balance: Balance
    position: Position | None


class EventSplitResult(Out):
    """After an event split, merge or convert: the new balance and every outcome's
    position."""

    balance: Balance
    positions: list[Position]
