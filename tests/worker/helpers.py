"""Reading the projected tables back for comparisons in tests."""

from __future__ import annotations

import sqlalchemy as sa

from pmarket.db import (
    Balance,
    Candle,
    ConsumerPosition,
    Event,
    LedgerEntry,
    Market,
    Order,
    Position,
    SkippedDelivery,
    Trade,
)
from pmarket.db.models import ParkedEvent
from pmarket.worker import Projector
from tests.dbfixtures import Database

from .scenario import STREAM

_WALL_CLOCK = {ConsumerPosition: {"updated_at"}, ParkedEvent: {"parked_at", "attempted_at"}}


def dump(database: Database) -> dict[str, list[tuple]]:
    """Every row of every projected table, sorted, as plain tuples."""
    out = {}
    with database.engine.connect() as conn:
        for model in (Event, Market, Order, Trade, LedgerEntry, Balance, Position, Candle,
                      ConsumerPosition, SkippedDelivery, ParkedEvent):
            table = model.__table__
            cols = [c for c in table.c if c.name not in _WALL_CLOCK.get(model, ())]
            rows = conn.execute(sa.select(*cols)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def project(database: Database, deliveries, batch: int | None = None,
            projector: Projector | None = None):
    """Project ``deliveries`` in transactions of ``batch`` deliveries (all in one by default)."""
    projector = projector or Projector(STREAM)
    deliveries = list(deliveries)
    size = batch or max(len(deliveries), 1)
    results = [projector.apply(database.engine, deliveries[i:i + size])
               for i in range(0, len(deliveries), size)]
    return results[-1] if results else None


def rows(database: Database, query) -> list:
    """The rows of a query."""
    with database.engine.connect() as conn:
        return conn.execute(query).all()
