"""Crash tests: real ``pmarket engine`` and ``pmarket worker`` processes, real Redis and
PostgreSQL, kill -9 at random points while 10,000 commands stream through.

Afterwards every command that got a reply took effect exactly once, none took effect
twice, the database matches the engine (``pmarket db reconcile``), and the money
invariant holds.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from pmarket.bus.codec import encode_command
from pmarket.bus.redis_streams import RedisStreamsBus
from pmarket.db import ConsumerPosition, LedgerEntry, Order, make_engine
from pmarket.engine import (
    CancelOrder,
    CreateEvent,
    Deposit,
    Expire,
    Outcome,
    PlaceOrder,
    Side,
    Split,
    TimeInForce,
)
from pmarket.engine.events import LedgerEntry as LedgerEvent
from pmarket.runtime.recovery import read_snapshot, snapshot_path
from tests.services import postgres_url_or_skip, redis_url_or_skip

from .processes import (
    PMARKET,
    Client,
    Process,
    delete_keys,
    fresh_schema,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

USERS = range(1, 41)
COMMANDS = 10_000
CONCURRENCY = 64


def make_command(i: int, rng: random.Random, markets: list[int], orders: list[tuple]
                 ) -> tuple[str, object, bool]:
    """Command ``i`` of the stream: (key, command, may the client retry it)."""
    user = rng.choice(USERS)
    roll = rng.random()
    if roll < 0.08:
        return f"d{i}", Deposit(user_id=user, amount=10_000_000 + i), False
    if roll < 0.13:
        return f"s{i}", Split(user_id=user, market_id=rng.choice(markets),
                              quantity=rng.randint(1, 5)), False
    if roll < 0.20 and orders:
        owner, order_id = rng.choice(orders)
        return f"c{i}", CancelOrder(user_id=owner, order_id=order_id), True
    outcome = rng.choice((Outcome.YES, Outcome.NO))
    side = Side.SELL if rng.random() < 0.2 else Side.BUY
    return f"o{i}", PlaceOrder(
        user_id=user, market_id=rng.choice(markets), outcome=outcome, side=side,
        quantity=rng.randint(1, 10), price=rng.randint(30, 70) * 100,
        tif=TimeInForce.IOC if rng.random() < 0.1 else TimeInForce.GTC,
        client_order_id=f"o{i}"), True


async def chaos(rng: random.Random, progress, engine: Process, worker: Process) -> None:
    """Kill -9 the engine four times and the worker three, at random points of the stream,
    restarting each after a random pause."""
    plan = sorted([(rng.uniform(0.08, 0.85), engine) for _ in range(4)]
                  + [(rng.uniform(0.08, 0.85), worker) for _ in range(3)],
                  key=lambda p: p[0])
    for at, proc in plan:
        while progress() < at:
            await asyncio.sleep(0.01)
        if not proc.alive():  # still restarting from the previous kill
            await asyncio.sleep(0.5)
        await asyncio.sleep(rng.uniform(0, 0.05))  # not exactly at a batch boundary
        proc.kill9()
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        proc.start()


async def test_kill_9_of_engine_and_worker_loses_and_duplicates_no_acknowledged_command(
        tmp_path):
    redis_url = redis_url_or_skip()
    pg_url = postgres_url_or_skip()
    prefix = f"pmtest:{uuid.uuid4().hex}"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    snapshots = tmp_path / "snapshots"
    with fresh_schema(pg_url) as db_url:
        common = ["--redis-url", redis_url, "--prefix", prefix, "--log-level", "warning"]
        # A restarted engine waits for its killed predecessor's lease to expire.
        engine = Process(["engine", *common, "--snapshot-dir", str(snapshots),
                          "--snapshot-every", "1500", "--lease-ms", "1000"],
                         tmp_path / "engine.log")
        worker = Process(["worker", *common, "--database-url", db_url],
                         tmp_path / "worker.log")
        bus = RedisStreamsBus.from_url(redis_url, prefix=prefix, reply_block_ms=100)
        try:
            engine.start()
            worker.start()
            client = Client(bus, timeout=3.0)
            # The first reply waits for the engine process to start (slow on a busy box).
            created = await client.send("event", CreateEvent(
                title="Who wins?", outcomes=("A", "B", "C")), retry=False, timeout=60)
            single = await client.send("single", CreateEvent(title="Rain?"), retry=False)
            assert created and single, engine.log_tail()
            markets = [m for ev in (created, single) for e in ev if e.kind == "event"
                       for m, _ in e.markets]
            await asyncio.gather(*(client.send(f"init{u}", Deposit(
                user_id=u, amount=1_000_000_000 + u), retry=False) for u in USERS))

            sent = 0
            orders: list[tuple] = []
            owners: dict[str, int] = {}

            async def sender() -> None:
                nonlocal sent
                while sent < COMMANDS:
                    i, sent = sent, sent + 1
                    key, cmd, retry = make_command(i, rng, markets, orders)
                    owners[key] = cmd.user_id
                    events = await client.send(key, cmd, retry=retry)
                    placed = [e for e in events or () if e.kind == "order"]
                    if key.startswith("o") and placed:
                        orders.append((cmd.user_id, placed[0].order_id))

            chaos_task = asyncio.create_task(
                chaos(rng, lambda: sent / COMMANDS, engine, worker))
            await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
            await chaos_task
            # The last restart may still be starting up: one round trip proves the engine
            # is serving (so its SIGTERM handler is installed) before the clean stop.
            await bus.request(encode_command(Expire()), timeout=60)

            assert engine.terminate() == 0, engine.log_tail()
            snap_file = snapshot_path(snapshots, "main")
            final = read_snapshot(snap_file).engine
            db = make_engine(db_url)
            try:
                def worker_position() -> int:
                    # A worker killed during its first migration of this fresh schema
                    # left no tables: its restart is still creating them (seq 0).
                    try:
                        with db.connect() as conn:
                            return conn.execute(sa.select(sa.func.max(
                                ConsumerPosition.last_seq))).scalar() or 0
                    except sa.exc.ProgrammingError:
                        return 0

                await wait_until(lambda: worker_position() >= final.last_seq, 90,
                                 f"the worker to reach seq {final.last_seq}")
                assert worker.terminate() == 0, worker.log_tail()
                with db.connect() as conn:
                    doubled = conn.execute(
                        sa.select(Order.client_order_id).where(
                            Order.client_order_id.is_not(None))
                        .group_by(Order.client_order_id)
                        .having(sa.func.count() > 1)).all()
                    deposits = [a for (a,) in conn.execute(sa.select(LedgerEntry.amount)
                                .where(LedgerEntry.kind == "deposit"))]
                    splits = conn.execute(sa.select(sa.func.count()).select_from(
                        LedgerEntry).where(LedgerEntry.kind == "split")).scalar()
            finally:
                db.dispose()
        finally:
            await bus.close()
            engine.ensure_stopped()
            worker.ensure_stopped()
            delete_keys(redis_url, prefix)

        context = (f"seed {seed}; engine started {engine.starts}x, worker "
                   f"{worker.starts}x; {client.ledger.retries} retries")
        assert engine.kills == 4 and worker.kills == 3, context
        replied, unanswered = client.ledger.replied, client.ledger.unanswered
        assert len(replied) + len(unanswered) == COMMANDS + 2 + len(USERS), context

        # Every answered order exists once (the client retried unanswered ones).
        for key, events in replied.items():
            if key.startswith("o") and any(e.kind == "order" for e in events):
                assert (owners[key], key) in final.client_orders, (key, events, context)
        assert doubled == [], context

        # Deposits have unique amounts: each answered one is booked exactly once,
        # none twice, and the engine's total is exactly what was booked.
        booked = Counter(deposits)
        assert max(booked.values()) == 1, context
        answered = {10_000_000 + int(k[1:]) for k in replied if k.startswith("d")}
        answered |= {1_000_000_000 + u for u in USERS}
        assert answered <= booked.keys(), context
        maybe = sum(1 for k in unanswered if k[0] in "d")
        assert len(booked) <= len(answered) + maybe, context
        assert sum(deposits) == final.treasury.deposits, context
        split_answers = sum(1 for k, ev in replied.items()
                            if k[0] == "s" and any(
                                isinstance(e, LedgerEvent) and e.entry_kind == "split"
                                for e in ev))
        assert split_answers <= splits <= split_answers + sum(
            1 for k in unanswered if k[0] == "s"), context

        report = final.audit()
        assert report.ok, (report.problems, context)
        reconciled = subprocess.run(
            [PMARKET, "db", "reconcile", "--snapshot", str(snap_file), "--database-url",
             db_url], capture_output=True, text=True, timeout=60)
        assert reconciled.returncode == 0, (reconciled.stdout, reconciled.stderr, context)
