"""A user's money and holdings: balance, on/off-ramp, positions, portfolio, payouts, own
trades.

Deposits and withdrawals are engine commands, answered from the engine's reply (the
``balance`` event of that command); the engine checks the available cash atomically, so
concurrent withdrawals can never overdraw. The balance, positions, portfolio and payouts come
from the read model (``readmodel``) once it reflects the caller's writes, else from the
database after they are projected — the same answer either way; own trades always come
from the database.

Invariant: positions are valued at the market's mark (what a YES share paid once the
event resolved; else last trade, else an exact mid), in each side's own terms: YES at
``mark``, NO at ``1 - mark``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import or_, select

from pmarket import api
from pmarket.api import convert
from pmarket.db import Balance, Market, Order, Payout, Position, Trade
from pmarket.engine import Deposit, Withdraw
from pmarket.engine.events import BalanceState, EngineEvent
from pmarket.engine.units import to_units

from .. import views
from ..deps import CurrentUser, RuntimeDep
from ..exactjson import ExactJSONRoute
from ..readmodel import ReadModel, holder, serving
from ..runtime import Runtime
from ..scope import Reader
from . import lists
from .common import ERRORS, PageParams, QueryId, ok, page, read, tick

router = APIRouter(route_class=ExactJSONRoute, tags=["account"], responses=ERRORS)

TRADE_COLUMNS = (Trade.id, Trade.market_id, Trade.price, Trade.quantity, Trade.kind,
                 Trade.taker_side, Trade.taker_order_id, Trade.taker_user_id,
                 Trade.maker_order_id, Trade.maker_user_id, Trade.executed_at, Trade.fee)
"""What a trade's API objects are made of (``views.own_trade_row``, ``public_trade_row``)."""


def mark(runtime: Runtime, market_id: int) -> tuple[int | None, bool]:
    """A market's YES mark and whether it is settled: what a YES share paid once its
    event resolved; else the last trade, else the mid when it is a whole unit."""
    m = runtime.replica.markets.get(market_id)
    if m is None:
        return None, False
    if m.settlement is not None:
        return m.settlement, True
    if m.last_price is not None:
        return m.last_price, False
    bid, ask = m.best_bid(), m.best_ask()
    if bid is not None and ask is not None and (bid + ask) % 2 == 0:
        return (bid + ask) // 2, False
    return None, False


def balance_from_events(events: list[EngineEvent], user_id: int) -> dict[str, str] | None:
    """The caller's balance after a command, from its reply events."""
    for ev in reversed(events):
        if isinstance(ev, BalanceState) and ev.user_id == user_id:
            return convert.balance(ev)
    return None


async def read_balance(runtime: Runtime, user_id: int) -> dict[str, str]:
    """The user's balance as an API object."""
    model = await serving(runtime, Reader(user_id))
    if model is not None:
        return views.balance(*model.balance(user_id))
    row = await read(runtime, lambda conn: conn.execute(
        select(Balance.available, Balance.reserved).where(Balance.user_id == user_id)).first())
    return views.balance(row.available, row.reserved) if row else views.balance(0, 0)


async def read_positions(runtime: Runtime, user_id: int, *, market_id: int | None = None,
                         event_id: int | None = None, include_empty: bool = False
                         ) -> list[views.Valued]:
    """The user's positions as API objects, each with its value and P&L."""
    model = await serving(runtime, holder(runtime, user_id))
    if model is not None:
        return memory_positions(runtime, model, user_id, market_id=market_id,
                                event_id=event_id, include_empty=include_empty)

    def query(conn):
        q = (select(Position, Market.event_id, Market.name)
             .join(Market, Market.id == Position.market_id)
             .where(Position.user_id == user_id))
        if market_id is not None:
            q = q.where(Position.market_id == market_id)
        if event_id is not None:
            q = q.where(Market.event_id == event_id)
        if not include_empty:
            q = q.where(or_(Position.yes > 0, Position.no > 0, Position.yes_realized_pnl != 0,
                            Position.no_realized_pnl != 0))
        return conn.execute(q.order_by(Market.event_id, Market.position)).all()

    rows = await read(runtime, query)
    return [views.position(row.Position, row.event_id, row.name,
                           *mark(runtime, row.Position.market_id)) for row in rows]


def memory_positions(runtime: Runtime, model: ReadModel, user_id: int, **filters: Any
                     ) -> list[views.Valued]:
    """``read_positions`` from the read model (synchronous: one consistent state)."""
    return [views.position_values(mid, row, m.event_id, m.name, *mark(runtime, mid))
            for mid, row, m in model.user_positions(user_id, **filters)]


async def _money_command(runtime: Runtime, command) -> Any:
    events = await runtime.gateway.send(command)
    return ok(balance_from_events(events, command.user_id) or views.balance(0, 0))


@router.get("/balance", response_model=api.Balance)
async def get_balance(user: CurrentUser, runtime: RuntimeDep):
    """Cash available, reserved by open buy orders, and their total."""
    return ok(await read_balance(runtime, user.id))


@router.post("/onramp", response_model=api.Balance)
async def onramp(body: api.AmountIn, user: CurrentUser, runtime: RuntimeDep):
    """Deposit cash (409 `balance_limit` past the per-account limit,
    `PMARKET_MAX_USER_BALANCE`; 422 `exchange_money_limit` if the exchange would then
    hold more than its overflow guard of $100 trillion)."""
    return await _money_command(runtime, Deposit(
        user_id=user.id, amount=body.amount,
        max_balance=runtime.settings.max_user_balance))


@router.post("/offramp", response_model=api.Balance)
async def offramp(body: api.AmountIn, user: CurrentUser, runtime: RuntimeDep):
    """Withdraw cash (409 if more than available)."""
    return await _money_command(runtime, Withdraw(user_id=user.id, amount=body.amount))


@router.get("/positions", response_model=api.Page[api.Position])
async def positions(user: CurrentUser, runtime: RuntimeDep, paging: PageParams,
                    market_id: QueryId = None, event_id: QueryId = None):
    """Shares held per market, with cost basis, mark and P&L."""
    items = await read_positions(runtime, user.id, market_id=market_id, event_id=event_id)
    chosen = items[paging.offset:paging.offset + paging.limit]
    return ok(page([view for view, _, _ in chosen], len(items)))


@router.get("/portfolio", response_model=api.Portfolio)
async def portfolio(user: CurrentUser, runtime: RuntimeDep):
    """Balance, positions and their value and P&L."""
    model = await serving(runtime, holder(runtime, user.id))
    if model is not None:  # both from the same state
        balance = views.balance(*model.balance(user.id))
        items = memory_positions(runtime, model, user.id)
    else:
        balance = await read_balance(runtime, user.id)
        items = await read_positions(runtime, user.id)
    value = sum(worth for _, worth, _ in items)
    pnl = sum(gain for _, _, gain in items)
    total = to_units(balance["total"]) + value
    return ok({"balance": balance, "positions": [view for view, _, _ in items],
               "positions_value": views.money(value), "total_value": views.money(total),
               "pnl": views.money(pnl)})


def user_payouts(user_id: int, event_id: int | None) -> lists.Listing:
    """What resolutions paid a user, newest first (the database path)."""
    arms = (select(Payout.id).where(Payout.user_id == user_id, *(
        () if event_id is None else (Payout.event_id == event_id,))),)
    return lists.Listing(arms, lists.merged(arms))


def own_trades(user_id: int, market_id: int | None) -> lists.Listing:
    """A user's trades newest first: two index-ordered arms instead of one OR (which
    sorts every trade of the user): the trades they took, and those they made (a
    trade of theirs on both sides counted once, as the taker's)."""
    market = () if market_id is None else (Trade.market_id == market_id,)
    taken = select(Trade.id).where(Trade.taker_user_id == user_id, *market)
    made = select(Trade.id).where(Trade.maker_user_id == user_id,
                                  Trade.taker_user_id != user_id, *market)
    return lists.Listing((taken, made), lists.merged((taken, made)))


@router.get("/payouts", response_model=api.Page[api.Payout])
async def payouts(user: CurrentUser, runtime: RuntimeDep, paging: PageParams,
                  event_id: QueryId = None):
    """What resolutions paid the caller, position by position, newest first."""
    model = await serving(runtime, Reader(user.id))
    if model is not None:
        mine = model.user_payouts(user.id, event_id)
        chosen = mine[paging.offset:paging.offset + paging.limit]
        return ok(page([views.payout(mid, eid, model.markets[mid].name, yes, no, amount,
                                     views.iso(at))
                        for eid, mid, yes, no, amount, at in chosen], len(mine)))

    listing = user_payouts(user.id, event_id)

    def query(conn):
        total, ids = listing.page(conn, paging)
        rows = conn.execute(
            select(Payout.id, Payout.market_id, Payout.event_id, Payout.yes, Payout.no,
                   Payout.amount, Payout.paid_at, Market.name)
            .join(Market, Market.id == Payout.market_id).where(Payout.id.in_(ids))
        ).all() if ids else []
        return page([views.payout(p.market_id, p.event_id, p.name, p.yes, p.no, p.amount,
                                  views.iso(p.paid_at))
                     for p in lists.paced(lists.in_order(rows, ids, lambda p: p.id))], total)

    return ok(await lists.read_list(runtime, user.id, query))


@router.get("/trades", response_model=api.Page[api.Trade])
async def my_trades(user: CurrentUser, runtime: RuntimeDep, paging: PageParams,
                    market_id: QueryId = None):
    """The caller's own fills, newest first, in their own terms."""
    uid = user.id
    listing = own_trades(uid, market_id)

    def query(conn):
        total, ids = listing.page(conn, paging)
        trades = conn.execute(select(*TRADE_COLUMNS).where(Trade.id.in_(ids))).all() \
            if ids else []
        trades = lists.in_order(trades, ids, lambda t: t.id)
        order_ids = {t.taker_order_id if t.taker_user_id == uid else t.maker_order_id
                     for t in trades}
        orders = {o.id: o for o in conn.execute(
            select(Order.id, Order.outcome, Order.side).where(Order.id.in_(order_ids)))}
        items = []
        for t in lists.paced(trades):
            taker = t.taker_user_id == uid
            oid = t.taker_order_id if taker else t.maker_order_id
            o = orders.get(oid)
            if o is None:
                continue
            items.append(views.own_trade_row(t, oid, o.outcome, o.side,
                                             "taker" if taker else "maker",
                                             tick(runtime, t.market_id)))
        return page(items, total)

    return ok(await lists.read_list(runtime, uid, query))
