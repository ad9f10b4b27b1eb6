"""Trading: place (one or a batch), modify, cancel one or all, and read one's orders.

Writes are engine commands answered from the reply: the command's first ``order`` event
is the order itself (in the owner's terms) and its ``fill`` events are the order's
trades. A batch's reply is cut at each ``batch_item`` marker; each item is an order or
an error on its own. Open orders are read from the read model (``readmodel``) once it
reflects the caller's writes; closed ones (``status=all``, or one closed order) from the
database after the caller's writes are projected.

Invariant: an order id that is not the caller's answers exactly like one that does not
exist (404), for reads, modifications and cancellations alike.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import ValidationError
from sqlalchemy import select

from pmarket import api
from pmarket.api import convert
from pmarket.db import Order
from pmarket.db.types import to_ms
from pmarket.engine import (
    CancelAll,
    CancelOrder,
    ModifyOrder,
    OrderType,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    SelfTrade,
    Side,
    TimeInForce,
)
from pmarket.engine.events import BATCH_ITEM, EngineEvent, Fill, OrderState, Rejected, first_order

from .. import views
from ..deps import CurrentUser, OrderId, RuntimeDep, owned_order
from ..errors import ApiError, not_found, validation_message
from ..exactjson import ExactJSONRoute
from ..gateway import rejection_error
from ..readmodel import ReadModel, serving
from ..runtime import Runtime
from ..scope import Reader
from . import lists
from .common import ERRORS, PageParams, QueryId, ok, page, tick

router = APIRouter(route_class=ExactJSONRoute, tags=["orders"], responses=ERRORS)

OPEN = ("open", "partially_filled")
ORDER_COLUMNS = (Order.id, Order.client_order_id, Order.market_id, Order.event_id,
                 Order.outcome, Order.side, Order.order_type, Order.price, Order.quantity,
                 Order.filled, Order.status, Order.tif, Order.post_only, Order.expires_at,
                 Order.created_at, Order.updated_at)
"""What an Order's API object is made of (``views.order_row``)."""


def place_command(user_id: int, body: api.OrderCreate, max_open_orders: int) -> PlaceOrder:
    """The engine command for an order request (422 for an inconsistent request), with
    the per-account open-order limit in force (``Settings.max_open_orders``)."""
    if body.type == "limit" and body.price is None:
        raise ApiError(422, "invalid_field", "price: a limit order needs a price")
    if body.time_in_force == "gtd" and body.expires_at is None:
        raise ApiError(422, "invalid_field", "expires_at: a gtd order needs expires_at")
    return PlaceOrder(
        user_id=user_id, market_id=body.market_id, outcome=Outcome(body.outcome),
        side=Side(body.side), quantity=body.quantity, price=body.price,
        order_type=OrderType(body.type), tif=TimeInForce(body.time_in_force),
        expires_at_ms=to_ms(body.expires_at), post_only=body.post_only,
        client_order_id=body.client_order_id, stp=SelfTrade(body.stp),
        max_open_orders=max_open_orders)


def order_result(runtime: Runtime, events: list[EngineEvent]) -> dict[str, Any]:
    """``{order, trades}`` of a placement or modification from its reply events."""
    order = first_order(events)
    if order is None:
        raise RuntimeError(f"the engine's reply holds no order: {events!r}")
    t = tick(runtime, order.market_id)
    oid = order.order_id
    trades = []
    for ev in events:
        if isinstance(ev, Fill):
            if ev.taker_order_id == oid:
                trades.append(convert.own_trade(ev, order, "taker", t))
            elif ev.maker_order_id == oid:
                trades.append(convert.own_trade(ev, order, "maker", t))
    return {"order": convert.order(order, t), "trades": trades}


def split_batch(events: list[EngineEvent]) -> list[list[EngineEvent]]:
    """A batch reply cut into each item's events (each part follows its marker)."""
    parts: list[list[EngineEvent]] = []
    for ev in events:
        if ev.kind == BATCH_ITEM:
            parts.append([])
        elif parts:
            parts[-1].append(ev)
    return parts


@router.post("/orders", status_code=201, response_model=api.OrderResult)
async def place_order(body: api.OrderCreate, user: CurrentUser, runtime: RuntimeDep):
    """Place an order; an ioc/fok/market remainder comes back cancelled, still 201."""
    events = await runtime.gateway.send(place_command(user.id, body,
                                                      runtime.settings.max_open_orders))
    return ok(order_result(runtime, events), 201)


@router.post("/orders/batch", response_model=api.BatchResult)
async def place_batch(body: api.OrderBatch, user: CurrentUser, runtime: RuntimeDep):
    """Place up to 20 orders; each result (order or error) in request order. An invalid
    or rejected item gets its own error and the others still go through; only a
    malformed envelope (no ``orders`` list, more than 20 items) fails the request."""
    results: list[dict[str, Any] | None] = [None] * len(body.orders)
    commands = []
    for i, raw in enumerate(body.orders):
        try:
            item = api.OrderCreate.model_validate(raw)
            commands.append((i, place_command(user.id, item,
                                              runtime.settings.max_open_orders)))
        except ValidationError as exc:
            results[i] = {"error": {"code": "invalid_field",
                                    "message": validation_message(exc.errors(), "order")}}
        except ApiError as exc:
            results[i] = {"error": {"code": exc.code, "message": exc.message}}
    if commands:
        events = await runtime.gateway.send_raw(
            PlaceBatch(user_id=user.id, orders=tuple(c for _, c in commands)))
        if events and isinstance(events[0], Rejected):
            raise rejection_error(events[0])
        for (i, _), part in zip(commands, split_batch(events), strict=False):
            rejected = next((ev for ev in part if isinstance(ev, Rejected)), None)
            if rejected is not None:
                err = rejection_error(rejected)
                results[i] = {"error": {"code": err.code, "message": err.message}}
            else:
                results[i] = order_result(runtime, part)
    return ok({"results": results})


def open_order_view(runtime: Runtime, model: ReadModel, order: OrderState) -> orjson.Fragment:
    """An open order's API object, rendered once per state of the order."""
    cached = model.rendered.get(order.order_id)
    if cached is not None and cached[0] is order:
        return cached[1]
    view = orjson.Fragment(orjson.dumps(convert.order(order, tick(runtime, order.market_id))))
    model.rendered[order.order_id] = (order, view)
    return view


def history(user_id: int, status: str, market_id: int | None) -> lists.Listing:
    """A user's orders newest first (``status`` "open": only those still working, one
    index-ordered arm per working status)."""
    market = () if market_id is None else (Order.market_id == market_id,)
    if status != "open":
        arms = (select(Order.id).where(Order.user_id == user_id, *market),)
    else:
        arms = tuple(select(Order.id).where(Order.user_id == user_id, Order.status == s,
                                            *market) for s in OPEN)
    return lists.Listing(arms, lists.merged(arms))


@router.get("/orders", response_model=api.Page[api.Order])
async def list_orders(user: CurrentUser, runtime: RuntimeDep, paging: PageParams,
                      status: Annotated[Literal["open", "all"], Query()] = "all",
                      market_id: QueryId = None):
    """The caller's orders, newest first (``status=open``: only those still working)."""
    if status == "open":
        model = await serving(runtime, Reader(user.id))
        if model is not None:
            total, chosen = model.open_orders(user.id, market_id, paging.limit,
                                              paging.offset)
            return ok(page([open_order_view(runtime, model, o) for o in chosen], total))

    listing = history(user.id, status, market_id)

    def query(conn):
        total, ids = listing.page(conn, paging)
        rows = conn.execute(select(*ORDER_COLUMNS).where(Order.id.in_(ids))).all() \
            if ids else []
        return page([views.order_row(o, tick(runtime, o.market_id))
                     for o in lists.paced(lists.in_order(rows, ids, lambda o: o.id))], total)

    return ok(await lists.read_list(runtime, user.id, query))


@router.get("/orders/{order_id}", response_model=api.Order)
async def get_order(order_id: OrderId, user: CurrentUser, runtime: RuntimeDep):
    """One of the caller's orders (404 if it is not theirs)."""
    model = await serving(runtime, Reader(user.id))
    if model is not None:
        open_order = model.open_order(order_id)
        if open_order is not None:
            if open_order.user_id != user.id:
                raise not_found(f"order {order_id}")
            return ok(open_order_view(runtime, model, open_order))
    order = await owned_order(order_id, user.id, runtime)  # closed, or unknown here
    return ok(views.order_row(order, tick(runtime, order.market_id)))


async def _closed_or_missing(runtime: Runtime, user_id: int, order_id: int,
                             exc: ApiError) -> ApiError:
    """After the engine said "no open order": 409 if it is the caller's closed order."""
    if exc.status != 404:
        return exc
    # Usually the order just closed (filled, cancelled): the replica saw it close, and
    # only needs to catch up with this server's writes, not the database.
    await runtime.barrier.for_replica()
    known = runtime.replica.closed_order(order_id)
    if known is not None:
        owner, status = known
        if owner != user_id:
            return not_found(f"order {order_id}")
        return ApiError(409, "order_not_open", f"order {order_id} is {status}")
    try:
        order = await owned_order(order_id, user_id, runtime)
    except ApiError as missing:
        return missing
    return ApiError(409, "order_not_open", f"order {order.id} is {order.status}")


@router.patch("/orders/{order_id}", response_model=api.OrderResult)
async def modify_order(order_id: OrderId, body: api.OrderModify, user: CurrentUser,
                       runtime: RuntimeDep):
    """Change an open order's price and/or total quantity (filled part included)."""
    if body.price is None and body.quantity is None:
        raise ApiError(422, "invalid_field", "give a new price, a new quantity or both")
    try:
        events = await runtime.gateway.send(ModifyOrder(
            user_id=user.id, order_id=order_id, price=body.price, quantity=body.quantity))
    except ApiError as exc:
        raise await _closed_or_missing(runtime, user.id, order_id, exc) from None
    return ok(order_result(runtime, events))


@router.delete("/orders/{order_id}", response_model=api.Order)
async def cancel_order(order_id: OrderId, user: CurrentUser, runtime: RuntimeDep):
    """Cancel one of the caller's open orders (409 if it is no longer open)."""
    # Straight to the engine (the authority on open orders); the database is only
    # consulted to tell "closed" (409) from "not yours / unknown" (404).
    try:
        events = await runtime.gateway.send(CancelOrder(user_id=user.id, order_id=order_id))
    except ApiError as exc:
        raise await _closed_or_missing(runtime, user.id, order_id, exc) from None
    ev = next(e for e in events if isinstance(e, OrderState) and e.order_id == order_id)
    return ok(convert.order(ev, tick(runtime, ev.market_id)))


@router.delete("/orders", response_model=api.Cancelled)
async def cancel_all(user: CurrentUser, runtime: RuntimeDep, market_id: QueryId = None):
    """Cancel every open order of the caller (optionally in one market)."""
    events = await runtime.gateway.send(CancelAll(user_id=user.id, market_id=market_id))
    cancelled = [ev.order_id for ev in events
                 if isinstance(ev, OrderState) and ev.status == "cancelled"]
    return ok({"cancelled": cancelled})
