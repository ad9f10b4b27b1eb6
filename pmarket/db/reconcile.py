"""Reconciliation: does the database say what the engine says?

``reconcile(engine_or_snapshot, bind)`` compares the engine's state (a live ``Engine`` or
a snapshot dict) with the projected tables and lists every difference: cash balances,
share holdings and reservations, open orders, the number of trades, each market's volume
and last price, each event's status and fee rate, the fees each event's trades
collected, deliveries the worker stepped over and events it parked.

Invariant: it only reads. An empty list means the database matches the engine on all of
the above; the engine is the reference (a difference is the database's to fix).
Compare with a quiescent engine, or one whose snapshot was taken at the consumer's
position: events still in flight are differences too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from pmarket.engine import Engine

from .models import (
    Balance,
    Event,
    Market,
    Order,
    ParkedEvent,
    Position,
    SkippedDelivery,
    Trade,
)

OPEN_STATUSES = ("open", "partially_filled")


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the engine and the database disagree on.

    Attributes:
        what: ``balance``, ``position``, ``open_order``, ``trades``, ``market``,
            ``event``, ``fees``, ``skipped`` or ``parked``.
        key: which one (``user 3``, ``user 3 market 7``, ``order 12``...).
        engine: the engine's value (None: absent there).
        database: the database's value (None: absent there).
    """

    what: str
    key: str
    engine: Any
    database: Any

    def __str__(self) -> str:
        return f"{self.what} {self.key}: engine {self.engine!r}, database {self.database!r}"


def _conn(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def _compare(what: str, label, engine: dict, database: dict) -> list[Difference]:
    return [Difference(what, label(key), engine.get(key), database.get(key))
            for key in sorted(engine.keys() | database.keys(), key=repr)
            if engine.get(key) != database.get(key)]


def reconcile(source: Engine | dict, bind: Session | Connection) -> list[Difference]:
    """Every difference between the engine's state and the database.

    Args:
        source: a live engine or a snapshot (``Engine.snapshot()``).
        bind: a session or connection to the database.
    """
    eng = source if isinstance(source, Engine) else Engine.restore(source)
    conn = _conn(bind)
    out: list[Difference] = []

    engine_cash = {a.user: (a.available, a.reserved) for a in eng.accounts.values()
                   if a.available or a.reserved}
    db_cash = {u: (a, r) for u, a, r in conn.execute(
        select(Balance.user_id, Balance.available, Balance.reserved)) if a or r}
    out += _compare("balance", lambda u: f"user {u}", engine_cash, db_cash)

    engine_pos = {(p.user, p.market_id): (p.yes, p.no, p.yes_reserved, p.no_reserved)
                  for a in eng.accounts.values() for p in a.positions.values()
                  if p.yes or p.no or p.yes_reserved or p.no_reserved}
    db_pos = {(u, m): tuple(v) for u, m, *v in conn.execute(
        select(Position.user_id, Position.market_id, Position.yes, Position.no,
               Position.yes_reserved, Position.no_reserved)) if any(v)}
    out += _compare("position", lambda k: f"user {k[0]} market {k[1]}", engine_pos, db_pos)

    engine_orders = {o.id: (o.user, o.market.id, o.price, o.quantity, o.filled, o.status)
                     for o in eng.orders.values()}
    db_orders = {oid: tuple(v) for oid, *v in conn.execute(
        select(Order.id, Order.user_id, Order.market_id, Order.price, Order.quantity,
               Order.filled, Order.status).where(Order.status.in_(OPEN_STATUSES)))}
    out += _compare("open_order", lambda k: f"order {k}", engine_orders, db_orders)

    trades = select(func.count()).select_from(Trade)
    if eng.id_stride != 1:
        trades = trades.where(Trade.id % eng.id_stride == eng.id_offset % eng.id_stride)
    db_trades = conn.execute(trades).scalar_one()
    engine_trades = (eng.last_trade_id - eng.id_offset) // eng.id_stride
    if db_trades != engine_trades:
        out.append(Difference("trades", "count", engine_trades, db_trades))

    engine_markets = {m.id: (m.status, m.volume, m.last_price) for m in eng.markets.values()}
    db_markets = {mid: tuple(v) for mid, *v in conn.execute(
        select(Market.id, Market.status, Market.volume, Market.last_price)
        .where(Market.id.in_(list(engine_markets)) | (Market.status != "deleted")))}
    out += _compare("market", lambda k: f"market {k}", engine_markets, db_markets)

    engine_events = {e.id: (e.status, e.fee_rate) for e in eng.events.values()}
    db_events = {eid: tuple(v) for eid, *v in conn.execute(
        select(Event.id, Event.status, Event.fee_rate).where(
            Event.id.in_(list(engine_events)) | (Event.status != "deleted")))}
    out += _compare("event", lambda k: f"event {k}", engine_events, db_events)

    engine_fees = {e.id: e.fees for e in eng.events.values() if e.fees}
    db_fees = {eid: int(amount) for eid, amount in conn.execute(
        select(Market.event_id, func.sum(Trade.fee)).join(Market, Market.id == Trade.market_id)
        .where(Market.event_id.in_(list(engine_events)), Trade.fee > 0)
        .group_by(Market.event_id))}
    out += _compare("fees", lambda k: f"event {k}", engine_fees, db_fees)

    for row in conn.execute(select(SkippedDelivery)).mappings():
        out.append(Difference(
            "skipped", f"commands {row['first_seq']}..{row['last_seq']} on {row['stream']}",
            "applied", f"missing ({row['error']})"))
    for row in conn.execute(select(ParkedEvent).order_by(ParkedEvent.id)).mappings():
        where = ("a whole delivery" if row["idx"] is None
                 else f"event {row['idx']} ({row['kind']})")
        out.append(Difference(
            "parked", f"#{row['id']}: {where} of commands {row['first_seq']}..{row['last_seq']}"
            f" on {row['stream']}", "applied", f"parked ({row['error']})"))
    return out
