"""Events: search and list them, read one, its books side by side, event split/merge/convert.

An event's outcomes are its markets (outcome id == market id), listed in the order the
admin gave them. Live prices (best bid/ask, last) come from the replica; titles,
statuses and volumes from the read model (``readmodel``), or from the database when
there is none. Title search (``q``) always uses the database's index
(``pmarket.db.title_search``).

Invariant: deleted events are invisible here (404 / not listed).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from pmarket import api
from pmarket.api.fields import Category, SearchText
from pmarket.db import Event, Market, title_search
from pmarket.engine import Convert, MergeEvent, SplitEvent

from .. import views
from ..deps import CurrentUser, PublicLimited, RuntimeDep
from ..errors import EncodedJSON, not_found
from ..exactjson import ExactJSONRoute
from ..marketdata import Replica, book_view
from ..params import Depth, PathId
from ..readmodel import serving
from ..runtime import Runtime
from .account import balance_from_events, read_positions
from .common import ERRORS, PageParams, ok, page, read

router = APIRouter(route_class=ExactJSONRoute, tags=["events"], responses=ERRORS)

EventId = PathId


def event_view(runtime: Runtime, e: Any, markets: list[Any]) -> dict[str, Any]:
    """The API's event object from its row and its markets' rows."""
    fmt = views.price_formatter(e.tick)
    outcomes = []
    for m in markets:
        live = runtime.replica.markets.get(m.id)
        last = live.last_price if live is not None and live.last_price is not None \
            else m.last_price
        bid = live.best_bid() if live is not None else None
        ask = live.best_ask() if live is not None else None
        outcomes.append({
            "id": m.id, "name": m.name, "market_id": m.id,
            "last_price": fmt(last) if last is not None else None,
            "best_bid": fmt(bid) if bid is not None else None,
            "best_ask": fmt(ask) if ask is not None else None,
            "volume": m.volume, "result": views.outcome_result(e, m.id),
        })
    return {"id": e.id, "slug": e.slug, "title": e.title, "description": e.description,
            "category": e.category, "status": e.status, "close_time": views.iso(e.close_time),
            "outcomes": outcomes, "created_at": views.iso(e.created_at),
            "resolution": views.resolution(e),
            "fee_rate": views.format_rate(e.fee_rate)}


def load_events(conn, events: list[Any]) -> dict[int, list[Any]]:
    """The markets of ``events``, by event id, in outcome order."""
    ids = [e.id for e in events]
    by_event: dict[int, list[Any]] = {i: [] for i in ids}
    if ids:
        for m in conn.execute(select(Market).where(Market.event_id.in_(ids))
                              .order_by(Market.event_id, Market.position)).scalars():
            by_event[m.event_id].append(m)
    return by_event


async def read_event(runtime: Runtime, event_id: int) -> dict[str, Any]:
    """One visible event as an API object, or 404."""
    model = await serving(runtime)
    if model is not None:
        e = model.event(event_id)
        if e is None:
            raise not_found(f"event {event_id}")
        return event_view(runtime, e, model.event_markets(e))

    def query(conn):
        e = conn.execute(select(Event).where(Event.id == event_id,
                                             Event.status != "deleted")).scalar()
        return (e, load_events(conn, [e])[e.id]) if e is not None else (None, [])

    e, markets = await read(runtime, query)
    if e is None:
        raise not_found(f"event {event_id}")
    return event_view(runtime, e, markets)


@router.get("/events", response_model=api.Page[api.Event],
            dependencies=[PublicLimited])
async def list_events(runtime: RuntimeDep, paging: PageParams,
                      q: Annotated[SearchText | None, Query()] = None,
                      category: Annotated[Category | None, Query()] = None,
                      status: Literal["active", "closed", "resolved"] | None = None):
    """Events, newest first; ``q`` searches titles."""
    model = None if q else await serving(runtime)
    if model is not None:
        def build() -> dict[str, Any]:
            ids = model.list_events(category, status)
            chosen = [model.events[i] for i in ids[paging.offset:paging.offset + paging.limit]]
            return page([event_view(runtime, e, model.event_markets(e)) for e in chosen],
                        len(ids))

        # The same page for every reader until the next delivery changes the state.
        return ok(model.memo(("events", runtime.replica.last_seq, category, status,
                              paging.offset, paging.limit), build))

    def query(conn):
        stmt = select(Event).where(Event.status != "deleted")
        if q:
            stmt = stmt.where(title_search(q, runtime.db.dialect.name))
        if category:
            stmt = stmt.where(Event.category == category)
        if status:
            stmt = stmt.where(Event.status == status)
        total = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        events = conn.execute(stmt.order_by(Event.id.desc()).limit(paging.limit)
                              .offset(paging.offset)).scalars().all()
        return total, events, load_events(conn, events)

    total, events, markets = await read(runtime, query)
    return ok(page([event_view(runtime, e, markets[e.id]) for e in events], total))


@router.get("/events/{event_id}", response_model=api.Event,
            dependencies=[PublicLimited])
async def get_event(event_id: EventId, runtime: RuntimeDep):
    """One event with its outcomes."""
    return ok(await read_event(runtime, event_id))


@router.get("/events/{event_id}/orderbook", response_model=api.EventBook,
            dependencies=[PublicLimited])
async def event_book(event_id: EventId, runtime: RuntimeDep,
                     depth: Depth = None):
    """Every outcome's YES book, and the sum of their implied probabilities."""
    await runtime.barrier.for_replica()
    replica = runtime.replica
    ids = replica.event_markets.get(event_id)
    if not ids:
        raise not_found(f"event {event_id}")
    return EncodedJSON(replica.page(("event book", event_id, depth),
                                    lambda: _event_book(replica, event_id, ids, depth)))


def _event_book(replica: Replica, event_id: int, ids: list[int], depth: int | None) -> dict:
    outcomes, probabilities = [], []
    for mid in ids:
        m = replica.markets[mid]
        outcomes.append({"outcome_id": mid, "name": m.name, "market_id": mid,
                         "book": book_view(m, "yes", depth)})
        bid, ask = m.best_bid(), m.best_ask()
        if bid is not None and ask is not None:
            probabilities.append(bid + ask)  # twice the mid, in units
        elif m.last_price is not None:
            probabilities.append(2 * m.last_price)
    ticks = [replica.markets[mid].tick for mid in ids]
    implied = views.half_units(sum(probabilities), max(ticks)) if probabilities else None
    return {"event_id": event_id, "outcomes": outcomes, "implied_probability_sum": implied}


async def _event_collateral(runtime: Runtime, command, user_id: int, event_id: int):
    events = await runtime.gateway.send(command)
    positions = await read_positions(runtime, user_id, event_id=event_id, include_empty=True)
    balance = balance_from_events(events, user_id) or views.balance(0, 0)
    return ok({"balance": balance, "positions": [view for view, _, _ in positions]})


@router.post("/events/{event_id}/split", response_model=api.EventSplitResult)
async def split_event(event_id: EventId, body: api.QuantityIn, user: CurrentUser,
                      runtime: RuntimeDep):
    """$1 per unit into one YES of every outcome (409 on a single-outcome event)."""
    return await _event_collateral(runtime, SplitEvent(
        user_id=user.id, event_id=event_id, quantity=body.quantity), user.id, event_id)


@router.post("/events/{event_id}/merge", response_model=api.EventSplitResult)
async def merge_event(event_id: EventId, body: api.QuantityIn, user: CurrentUser,
                      runtime: RuntimeDep):
    """One YES of every outcome back into $1 per unit (409 on a single-outcome event)."""
    return await _event_collateral(runtime, MergeEvent(
        user_id=user.id, event_id=event_id, quantity=body.quantity), user.id, event_id)


@router.post("/events/{event_id}/convert", response_model=api.EventSplitResult)
async def convert_event(event_id: EventId, body: api.ConvertIn, user: CurrentUser,
                        runtime: RuntimeDep):
    """NO of each chosen outcome into YES of every other outcome, plus $(k - 1) per unit
    for k chosen outcomes (409 on a single-outcome event or without the free NO shares;
    422 for outcome ids that are not distinct outcomes of the event)."""
    return await _event_collateral(runtime, Convert(
        user_id=user.id, event_id=event_id, outcome_ids=tuple(body.outcome_ids),
        quantity=body.quantity), user.id, event_id)


__all__ = ["router"]
