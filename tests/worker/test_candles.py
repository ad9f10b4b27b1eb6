"""Candles are maintained from fills: OHLC in YES units and share volume per interval."""

from __future__ import annotations

import sqlalchemy as sa

from pmarket.db import Candle, Market, from_ms
from pmarket.worker import CANDLE_INTERVALS
from tests.dbfixtures import Database

from .helpers import project, rows
from .scenario import random_session


def _expected(deliveries, length_ms: int) -> dict[tuple[int, int], tuple]:
    out: dict[tuple[int, int], list] = {}
    for d in deliveries:
        for e in d.events:
            if e.kind != "fill":
                continue
            market, price, qty, ts = e.market_id, e.price, e.quantity, e.ts_ms
            key = (market, ts - ts % length_ms)
            c = out.get(key)
            if c is None:
                out[key] = [price, price, price, price, qty, 1]
            else:
                c[1], c[2], c[3] = max(c[1], price), min(c[2], price), price
                c[4] += qty
                c[5] += 1
    return {k: tuple(v) for k, v in out.items()}


def test_candles_match_the_fills_for_every_interval_across_batches(database: Database):
    r = random_session(500, seed=4, step_ms=700)  # some 7 minutes of trading
    project(database, r.deliveries, batch=40)  # buckets straddle transactions
    for name, length in CANDLE_INTERVALS.items():
        stored = {(c.market_id, c.start): (c.open, c.high, c.low, c.close, c.volume, c.trades)
                  for c in rows(database, sa.select(Candle).where(Candle.interval == name))}
        expected = {(m, from_ms(start)): v for (m, start), v in
                    _expected(r.deliveries, length).items()}
        assert stored == expected, name
    assert len({c.start for c in rows(database, sa.select(Candle).where(
        Candle.interval == "5m"))}) > 1


def test_daily_volume_equals_market_volume(database: Database):
    r = random_session(300, seed=8)
    project(database, r.deliveries, batch=25)
    daily = dict(rows(database, sa.select(Candle.market_id, sa.func.sum(Candle.volume))
                      .where(Candle.interval == "1d").group_by(Candle.market_id)))
    volume = {m: v for m, v in rows(database, sa.select(Market.id, Market.volume)) if v}
    assert daily == volume
