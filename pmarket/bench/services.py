"""``pmarket bench services``: the engine and the worker behind Redis and PostgreSQL.

Three figures, each on a throwaway key prefix (deleted afterwards) and, for the
database, a throwaway PostgreSQL schema or SQLite file:

* **engine** — commands/s through Redis into the engine service: the command stream is
  filled first (every command addressed for a reply), then an ``EngineService`` in this
  process drains it: read, decode, apply, one atomic ``complete`` per batch (delivery,
  replies, acks). Timed from start to the last command applied.
* **worker** — events/s persisted: a ``Worker`` projects the deliveries the engine just
  wrote into the database; timed until its committed position reaches the last seq.
* **latency** — a ``pmarket engine`` process serves ``Bus.request`` calls sent at a fixed
  rate; p50/p99 from command sent to reply received, as a server sees it.

Figures depend on the machine's load; on the shared 2-core VMs they vary by tens of
percent between runs.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
import sqlalchemy as sa

from pmarket.bus import Bus, BusError, encode_command, make_bus
from pmarket.bus.values import CORRELATION_ID, REPLY_TO
from pmarket.engine.commands import (
    Command,
    CreateEvent,
    Deposit,
    Outcome,
    PlaceOrder,
    Side,
    Split,
)
from pmarket.runtime.service import EngineService

TARGETS = {"engine": 20_000.0, "worker": 10_000.0, "latency_p99_ms": 5.0}
USERS = 200
MARKETS = 4
_SHAPES = ((Side.BUY, Outcome.YES), (Side.SELL, Outcome.NO),   # YES bids
           (Side.SELL, Outcome.YES), (Side.BUY, Outcome.NO))   # YES asks


@dataclass(slots=True)
class ServicesResult:
    """What one run measured (None: that part was not run)."""

    commands: int
    engine_commands_per_s: float | None = None
    events: int | None = None
    worker_events_per_s: float | None = None
    database: str | None = None
    rate_per_s: int | None = None
    requests: int | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    timeouts: int | None = None  # requests that failed: no reply in 5 s, or no connection

    def as_dict(self) -> dict:
        return {**asdict(self), "targets": TARGETS}


def setup_commands() -> list[Command]:
    """Events with one market each (market id == event index + 1), funded users with
    shares of every market, so any order can be covered."""
    cmds: list[Command] = [CreateEvent(title=f"Bench event {k}") for k in range(MARKETS)]
    for user in range(1, USERS + 1):
        cmds.append(Deposit(user_id=user, amount=10**12))
        cmds.extend(Split(user_id=user, market_id=m, quantity=10**5)
                    for m in range(1, MARKETS + 1))
    return cmds


def order_flow(n: int, rng: random.Random) -> list[Command]:
    """``n`` limit orders from many users around mid 0.50; about half of them cross."""
    out: list[Command] = []
    for _ in range(n):
        side, outcome = rng.choice(_SHAPES)
        yes_price = rng.randint(45, 55) * 100  # both sides straddle 0.50: half cross
        price = yes_price if outcome is Outcome.YES else 10_000 - yes_price
        out.append(PlaceOrder(user_id=rng.randint(1, USERS), market_id=rng.randint(1, MARKETS),
                              outcome=outcome, side=side, price=price,
                              quantity=rng.randint(1, 50)))
    return out


async def _fill(bus: Bus, cmds: list[Command], reply_to: str) -> None:
    stream = bus.commands_stream()
    for start in range(0, len(cmds), 2_000):
        entries = [(encode_command(c), {REPLY_TO: reply_to, CORRELATION_ID: str(start + i)})
                   for i, c in enumerate(cmds[start:start + 2_000])]
        await bus.append(stream, entries)


async def bench_engine(redis_url: str, prefix: str, n: int, seed: int
                       ) -> tuple[float, EngineService, int]:
    """Commands/s of an in-process ``EngineService`` draining a pre-filled stream."""
    bus = make_bus(redis_url, prefix=prefix)
    try:
        setup = setup_commands()
        await _fill(bus, setup + order_flow(n, random.Random(seed)), "bench-sink")
        total = len(setup) + n
        service = EngineService(bus, batch_size=1_000, snapshot_every=10**9,
                                snapshot_interval_s=1e9, block_ms=50)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await service.ready.wait()
        began = time.perf_counter()
        while service.engine.last_seq < total:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - began
        stop.set()
        await task
        return total / elapsed, service, total
    finally:
        await bus.close()


async def bench_worker(redis_url: str, prefix: str, database_url: str, last_seq: int
                       ) -> tuple[float, int]:
    """Events/s a ``Worker`` persists from the event stream the engine just wrote."""
    from pmarket.db import make_engine, upgrade
    from pmarket.worker import Projector, Worker

    upgrade(database_url)
    db = make_engine(database_url)
    bus = make_bus(redis_url, prefix=prefix)
    try:
        worker = Worker(bus, db, consumer="bench", batch_size=200, block_ms=50)
        projector = Projector(bus.events_stream(), "worker")
        stop = asyncio.Event()
        began = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        while await asyncio.to_thread(projector.position, db) < last_seq:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        stop.set()
        await task
        return worker.stats.events / elapsed, worker.stats.events
    finally:
        await bus.close()
        db.dispose()


async def bench_latency(redis_url: str, prefix: str, rate: int, seconds: float, seed: int
                        ) -> tuple[list[float], int]:
    """Latencies (ms) of ``Bus.request`` at ``rate``/s against a ``pmarket engine``."""
    pmarket = str(Path(sys.executable).parent / "pmarket")
    proc = subprocess.Popen([pmarket, "engine", "--redis-url", redis_url, "--prefix", prefix,
                             "--log-level", "warning"], stderr=subprocess.DEVNULL)
    bus = make_bus(redis_url, prefix=prefix, reply_block_ms=1_000)
    try:
        for cmd in setup_commands():
            await bus.request(encode_command(cmd), timeout=60)
        flow = [encode_command(c) for c in order_flow(int(rate * seconds), random.Random(seed))]
        for payload in flow[:200]:  # warm up the connections and the engine
            await bus.request(payload, timeout=10)
        latencies: list[float] = []
        timeouts = 0

        async def one(payload: bytes) -> None:
            nonlocal timeouts
            sent = time.perf_counter()
            try:
                await bus.request(payload, timeout=5)
            except BusError:  # timed out, or no connection free: a failed request
                timeouts += 1
                return
            latencies.append((time.perf_counter() - sent) * 1000)

        tasks = []
        began = time.perf_counter()
        for i, payload in enumerate(flow):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(payload)))
        await asyncio.gather(*tasks)
        return latencies, timeouts
    finally:
        await bus.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run(coro):
    """Run on uvloop when installed, as ``pmarket engine`` and the server (uvicorn) do."""
    try:
        import uvloop  # optional: installed with uvicorn[standard]
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def delete_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under ``<prefix>:`` on the Redis at ``redis_url``."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1_000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class ThrowawayDatabase:
    """A throwaway database: a new schema on PostgreSQL, a temporary file for SQLite."""

    def __init__(self, url: str | None) -> None:
        self.base = url
        self.schema: str | None = None
        self.tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> str:
        if self.base is None or sa.make_url(self.base).get_backend_name() == "sqlite":
            self.tmp = tempfile.TemporaryDirectory()
            return f"sqlite:///{self.tmp.name}/bench.db"
        self.schema = f"pmbench_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(self.base).begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {self.schema}"))
        return sa.make_url(self.base).update_query_dict(
            {"options": f"-csearch_path={self.schema}"}).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        if self.schema is not None:
            engine = sa.create_engine(self.base)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            engine.dispose()
        if self.tmp is not None:
            self.tmp.cleanup()


def run(redis_url: str, database_url: str | None, *, commands: int = 50_000,
        rate: int = 1_000, seconds: float = 10.0, seed: int = 1,
        progress: Callable[[str], None] = lambda name: None) -> ServicesResult:
    """Run the three measurements; see the module docstring."""
    result = ServicesResult(commands=commands)
    prefix = f"pmbench:{uuid.uuid4().hex[:12]}"
    try:
        progress("engine through Redis")
        per_s, _, total = _run(bench_engine(redis_url, prefix, commands, seed))
        result.commands, result.engine_commands_per_s = total, per_s
        progress("worker into the database")
        with ThrowawayDatabase(database_url) as url:
            result.database = sa.make_url(url).get_backend_name()
            per_s, events = _run(bench_worker(redis_url, prefix, url, total))
        result.worker_events_per_s, result.events = per_s, events
    finally:
        delete_keys(redis_url, prefix)
    progress(f"latency at {rate}/s")
    prefix = f"pmbench:{uuid.uuid4().hex[:12]}"
    try:
        latencies, timeouts = _run(bench_latency(redis_url, prefix, rate, seconds, seed))
    finally:
        delete_keys(redis_url, prefix)
    result.rate_per_s, result.requests, result.timeouts = rate, len(latencies), timeouts
    result.latency_p50_ms = _percentile(latencies, 0.50)
    result.latency_p99_ms = _percentile(latencies, 0.99)
    result.latency_max_ms = max(latencies) if latencies else None
    return result
