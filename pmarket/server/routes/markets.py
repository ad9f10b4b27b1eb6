"""One market: its summary, book (YES or NO view), public trades, candles, split/merge.

Books come from the in-memory replica (``marketdata``); the market itself from the read
model (``readmodel``), or the database when there is none; trades and candles from the
database. Split and merge are engine commands; their answer carries the balance from
the reply and the position read back once the command is projected (its cost basis and
P&L are the worker's).

Invariant: the NO view is the YES book mirrored — NO bids are ``1 - YES asks`` — so the
two views always describe the same orders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from sqlalchemy import select

from pmarket import api
from pmarket.api.fields import UtcTime
from pmarket.db import Candle, Event, Market, Trade
from pmarket.engine import Merge, Split
from pmarket.engine.units import format_units

from .. import views
from ..deps import CurrentUser, PublicLimited, RuntimeDep
from ..errors import EncodedJSON, not_found
from ..exactjson import ExactJSONRoute
from ..params import Depth, PathId
from ..readmodel import serving
from ..runtime import Runtime
from ..scope import Reader
from . import lists
from .account import TRADE_COLUMNS, balance_from_events, read_positions
from .common import ERRORS, PageParams, ok, page, read, tick

router = APIRouter(route_class=ExactJSONRoute, tags=["markets"], responses=ERRORS)

MarketId = PathId


async def replica_market(runtime: Runtime, market_id: int):
    """The replica's market after this server's writes to it, or 404."""
    await runtime.barrier.for_replica(Reader(markets=(market_id,)))
    m = runtime.replica.markets.get(market_id)
    if m is None:
        raise not_found(f"market {market_id}")
    return m


@router.get("/markets/{market_id}", response_model=api.Market,
            dependencies=[PublicLimited])
async def get_market(market_id: MarketId, runtime: RuntimeDep):
    """A market's status, tick, prices, volume, open interest and result."""
    model = await serving(runtime)
    if model is not None:
        found = model.market(market_id)
    else:
        found = await read(runtime, lambda conn: conn.execute(
            select(Market, Event).join(Event, Event.id == Market.event_id)
            .where(Market.id == market_id, Event.status != "deleted")).first())
    if found is None:
        raise not_found(f"market {market_id}")
    m, e = found
    live = runtime.replica.markets.get(market_id)
    fmt = views.price_formatter(m.tick)
    last = live.last_price if live is not None and live.last_price is not None else m.last_price
    bid = live.best_bid() if live is not None else None
    ask = live.best_ask() if live is not None else None
    return ok({
        "id": m.id, "event_id": m.event_id, "outcome_id": m.id, "outcome_name": m.name,
        "status": e.status, "tick_size": format_units(m.tick, 4).rstrip("0"),
        "last_price": fmt(last) if last is not None else None,
        "best_bid": fmt(bid) if bid is not None else None,
        "best_ask": fmt(ask) if ask is not None else None,
        "volume": m.volume, "open_interest": m.open_interest,
        "result": views.market_result(e, m.id),
    })


@router.get("/markets/{market_id}/orderbook", response_model=api.Book,
            dependencies=[PublicLimited])
async def market_book(market_id: MarketId, runtime: RuntimeDep, depth: Depth = None,
                      view: Literal["yes", "no"] = "yes"):
    """The book, aggregated by price level, in YES or NO terms."""
    m = await replica_market(runtime, market_id)
    return EncodedJSON(runtime.replica.book_page(m, view, depth))


def public_trades(market_id: int) -> lists.Listing:
    """A market's trades, newest first."""
    arms = (select(Trade.id).where(Trade.market_id == market_id),)
    return lists.Listing(arms, lists.merged(arms))


def market_candles_listing(market_id: int, interval: str, start: datetime | None,
                           end: datetime | None) -> lists.Listing:
    """A market's candles of one interval, oldest first, from ``start`` to ``end``."""
    where = [Candle.market_id == market_id, Candle.interval == interval]
    if start is not None:
        where.append(Candle.start >= start)
    if end is not None:
        where.append(Candle.start < end)
    arms = (select(Candle.start).where(*where),)
    return lists.Listing(arms, lists.merged(arms), newest_first=False)


@router.get("/markets/{market_id}/trades", response_model=api.Page[api.PublicTrade],
            dependencies=[PublicLimited])
async def market_trades(market_id: MarketId, runtime: RuntimeDep, paging: PageParams):
    """The market's trades, newest first, prices in YES terms."""
    listing = public_trades(market_id)

    def query(conn):
        exists = conn.execute(select(Market.id).where(Market.id == market_id)).first()
        if exists is None:
            return None
        total, ids = listing.page(conn, paging)
        rows = conn.execute(select(*TRADE_COLUMNS).where(Trade.id.in_(ids))).all() \
            if ids else []
        t = tick(runtime, market_id)
        return page([views.public_trade_row(r, t)
                     for r in lists.paced(lists.in_order(rows, ids, lambda r: r.id))], total)

    answer = await lists.read_list(runtime, ("market", market_id), query)
    if answer is None:
        raise not_found(f"market {market_id}")
    return ok(answer)


@router.get("/markets/{market_id}/candles", response_model=api.Page[api.Candle],
            dependencies=[PublicLimited])
async def market_candles(market_id: MarketId, runtime: RuntimeDep, paging: PageParams,
                         interval: Literal["1m", "5m", "1h", "1d"] = "1m",
                         start: UtcTime | None = None, end: UtcTime | None = None):
    """OHLC (YES terms) and volume per interval, oldest first."""

    listing = market_candles_listing(market_id, interval, start, end)

    def query(conn):
        exists = conn.execute(select(Market.id).where(Market.id == market_id)).first()
        if exists is None:
            return None
        total, starts = listing.page(conn, paging)
        rows = conn.execute(
            select(Candle.start, Candle.open, Candle.high, Candle.low, Candle.close,
                   Candle.volume).where(Candle.market_id == market_id,
                                        Candle.interval == interval,
                                        Candle.start.in_(starts))).all() \
            if starts else []
        fmt = views.price_formatter(tick(runtime, market_id))
        return page([{"start": views.iso(c.start), "open": fmt(c.open), "high": fmt(c.high),
                      "low": fmt(c.low), "close": fmt(c.close), "volume": c.volume}
                     for c in lists.paced(lists.in_order(rows, starts, lambda c: c.start))], total)

    answer = await lists.read_list(runtime, ("market", market_id), query)
    if answer is None:
        raise not_found(f"market {market_id}")
    return ok(answer)


async def _collateral(runtime: Runtime, command, user_id: int, market_id: int):
    events = await runtime.gateway.send(command)
    positions = await read_positions(runtime, user_id, market_id=market_id,
                                     include_empty=True)
    balance = balance_from_events(events, user_id) or views.balance(0, 0)
    return ok({"balance": balance,
               "position": positions[0][0] if positions else None})


@router.post("/markets/{market_id}/split", response_model=api.SplitResult)
async def split(market_id: MarketId, body: api.QuantityIn, user: CurrentUser,
                runtime: RuntimeDep):
    """Turn $1 per unit into one YES and one NO of the market."""
    return await _collateral(runtime, Split(user_id=user.id, market_id=market_id,
                                            quantity=body.quantity), user.id, market_id)


@router.post("/markets/{market_id}/merge", response_model=api.SplitResult)
async def merge(market_id: MarketId, body: api.QuantityIn, user: CurrentUser,
                runtime: RuntimeDep):
    """Turn one YES and one NO of the market back into $1 per unit."""
    return await _collateral(runtime, Merge(user_id=user.id, market_id=market_id,
                                            quantity=body.quantity), user.id, market_id)
