"""What the read model costs: memory per user, position and open order, and seeding time.

``run(options)`` fills a throwaway database (a temporary SQLite file, or a throwaway
PostgreSQL schema) with ``users`` funded users, ``positions`` positions and ``orders``
open orders each, spread over ``events`` two-outcome events, then seeds a
``readmodel.ReadModel`` from it as a server does at start (one snapshot transaction):
once untraced, timed (the start-up cost), then three times under ``tracemalloc``: with
everything, without the orders, and with balances only. The differences of the retained
memory (after a full collection) give the bytes per open order, per position and per
user.

Invariant: the database is deleted afterwards (``services.ThrowawayDatabase``).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert

from pmarket.db import Balance, Event, Market, Order, Position, make_engine, upgrade
from pmarket.server.readmodel import ReadModel, read_seed, snapshot

from .services import ThrowawayDatabase

CHUNK = 5_000


@dataclass
class Options:
    """Sizes of the generated exchange."""

    users: int = 10_000
    positions: int = 5
    orders: int = 5
    events: int = 200
    database_url: str | None = None


@dataclass
class Figures:
    """What one run measured."""

    backend: str
    users: int
    positions: int
    orders: int
    seed_s: float
    total_bytes: int
    bytes_per_user: float
    bytes_per_position: float
    bytes_per_order: float

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


def _fill(db, o: Options) -> tuple[int, int]:
    """Write the generated rows; (positions, orders) written."""
    now = datetime.now(UTC)
    markets = [(2 * e + 1, e + 1) for e in range(o.events)] + \
        [(2 * e + 2, e + 1) for e in range(o.events)]
    with db.begin() as conn:
        conn.execute(insert(Event), [
            {"id": e + 1, "title": f"Event {e}", "status": "active", "tick": 100,
             "created_at": now, "updated_at": now} for e in range(o.events)])
        conn.execute(insert(Market), [
            {"id": m, "event_id": e, "name": f"Outcome {m}", "position": (m - 1) % 2,
             "status": "active", "tick": 100, "last_price": 5_000 + m % 7, "volume": m}
            for m, e in markets])
    positions = orders = 0
    for start in range(1, o.users + 1, CHUNK):
        users = range(start, min(start + CHUNK, o.users + 1))
        balances, rows, open_orders = [], [], []
        for u in users:
            balances.append({"user_id": u, "available": 1_000_000_000 + u,
                             "reserved": 40_000 * o.orders, "seq": 1})
            for k in range(o.positions):
                m = (u * 7 + k * 13) % len(markets) + 1
                rows.append({"user_id": u, "market_id": m, "yes": 100 + k, "no": k,
                             "yes_reserved": 0, "no_reserved": 0, "yes_cost": 480_000 + u,
                             "no_cost": 3_000 * k, "yes_realized_pnl": u % 1000,
                             "no_realized_pnl": 0, "seq": 1})
            for k in range(o.orders):
                orders += 1
                m = (u + k) % len(markets) + 1
                open_orders.append({
                    "id": orders, "user_id": u, "market_id": m, "event_id": (m + 1) // 2,
                    "outcome": "yes", "side": "buy", "order_type": "limit",
                    "price": 4_000 + k * 100, "quantity": 10, "filled": k % 3,
                    "status": "open" if k % 3 == 0 else "partially_filled", "tif": "gtc",
                    "post_only": False, "created_at": now, "updated_at": now, "seq": 1})
        # one (user, market) row each: several k may land on the same market
        rows = list({(r["user_id"], r["market_id"]): r for r in rows}.values())
        positions += len(rows)
        with db.begin() as conn:
            conn.execute(insert(Balance), balances)
            if rows:
                conn.execute(insert(Position), rows)
            if open_orders:
                conn.execute(insert(Order), open_orders)
    return positions, orders


def _seed(db, stream: str, traced: bool = True) -> tuple[float, int]:
    """Seed a model as the server does; (seconds, bytes it retains — 0 untraced).

    Tracing allocations slows them down several times: time an untraced seed.
    """
    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    model = ReadModel(stream)
    with snapshot(db) as conn:
        state = read_seed(conn)
    model.install(state, 1)
    elapsed = time.perf_counter() - started
    del state
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert model.ready
    return elapsed, retained


def run(options: Options) -> Figures:
    """Fill a throwaway database, seed from it three times, measure (see the module)."""
    with ThrowawayDatabase(options.database_url) as url:
        upgrade(url)
        db = make_engine(url)
        try:
            positions, orders = _fill(db, options)
            seconds, _ = _seed(db, "bench", traced=False)
            _, full = _seed(db, "bench")
            with db.begin() as conn:
                conn.execute(delete(Order))
            _, without_orders = _seed(db, "bench")
            with db.begin() as conn:
                conn.execute(delete(Position))
            _, balances_only = _seed(db, "bench")
            return Figures(
                db.dialect.name, options.users, positions, orders, seconds, full,
                balances_only / max(options.users, 1),
                (without_orders - balances_only) / max(positions, 1),
                (full - without_orders) / max(orders, 1))
        finally:
            db.dispose()
