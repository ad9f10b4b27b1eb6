"""The worker's bus loop: everything published ends in the database once, or is parked."""

from __future__ import annotations

import random
import uuid

import pytest
import redis
import sqlalchemy as sa

from pmarket.bus import MemoryBus
from pmarket.bus.memory import Faults
from pmarket.db import SkippedDelivery
from pmarket.db.models import ParkedEvent
from pmarket.db.reconcile import reconcile
from pmarket.runtime.eventlog import DeliveryError, encode_delivery
from pmarket.worker.loop import WORKER_GROUP, Worker
from tests.dbfixtures import Database
from tests.services import redis_url_or_skip

from .helpers import rows
from .scenario import full_session


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def session():
    return full_session()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request):
    prefix = f"pmtest:{uuid.uuid4().hex}"
    if request.param == "memory":
        bus = MemoryBus(prefix=prefix)
    else:
        from pmarket.bus.redis_streams import RedisStreamsBus

        url = redis_url_or_skip()
        bus = RedisStreamsBus.from_url(url, prefix=prefix)
    yield bus
    await bus.close()
    if request.param == "redis":
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


async def _publish(bus, deliveries) -> None:
    await bus.publish_events([encode_delivery(d) for d in deliveries])


async def _run_until(worker: Worker, seq: int, steps: int = 200) -> None:
    for _ in range(steps):
        await worker.step()
        if worker.projector.position(worker.db) >= seq and not len(worker.buffer):
            return
    raise AssertionError(f"position {worker.projector.position(worker.db)} never reached {seq}")


def _clean(database: Database, session) -> list:
    with database.engine.connect() as conn:
        return reconcile(session.engine, conn)


async def _pending(bus) -> int:
    infos = await bus.groups(bus.events_stream())
    return sum(i.pending for i in infos if i.name == WORKER_GROUP)


async def test_worker_projects_a_published_session_and_acks_it(bus, database, session):
    await _publish(bus, session.deliveries)
    worker = Worker(bus, database.engine, batch_size=16, block_ms=10)
    await _run_until(worker, session.seq)
    assert _clean(database, session) == []
    assert await _pending(bus) == 0
    assert worker.stats.applied == len(session.deliveries)


async def test_worker_applies_shuffled_publication_in_order(bus, database, session):
    shuffled = list(session.deliveries)
    random.Random(2).shuffle(shuffled)
    await _publish(bus, shuffled)
    worker = Worker(bus, database.engine, batch_size=5, block_ms=10)
    await _run_until(worker, session.seq)
    assert _clean(database, session) == []
    assert await _pending(bus) == 0


async def test_worker_shrugs_off_duplicated_and_dropped_deliveries(database, session):
    faults = Faults(duplicate=0.3, drop=0.2, seed=4)
    bus = MemoryBus(prefix="pmtest:faults", faults=faults)
    await _publish(bus, session.deliveries)
    worker = Worker(bus, database.engine, batch_size=8, block_ms=10, reclaim_idle_ms=0)
    await _run_until(worker, session.seq)
    assert faults.dropped and faults.duplicated
    assert _clean(database, session) == []
    await bus.close()


async def test_an_undecodable_message_is_parked_whole_and_the_rest_flows(bus, database,
                                                                         session):
    await _publish(bus, session.deliveries[:5])
    await bus.publish_events([b"{not a delivery"])
    await _publish(bus, session.deliveries[5:])
    worker = Worker(bus, database.engine, batch_size=10, block_ms=10)
    await _run_until(worker, session.seq)
    (row,) = rows(database, sa.select(ParkedEvent))
    assert (row.kind, row.idx, row.first_seq, row.payload) == (
        "delivery", None, None, b"{not a delivery")
    assert "undecodable" in row.error and row.message_id
    assert await bus.dead_letters(bus.events_stream(), WORKER_GROUP) == []
    assert await _pending(bus) == 0
    # It covered no command (the engine wrote no such entry): all else matches the engine.
    assert [d.what for d in _clean(database, session)] == ["parked"]
    assert worker.stats.parked_deliveries == 1


async def test_a_delivery_the_decoder_refused_is_parked_skipped_and_replayed_late(
        bus, database, session, monkeypatch):
    from pmarket.worker import loop, parked

    poison_seq = 20
    real_decode = loop.decode_delivery

    def buggy_decode(payload, message_id=None):  # an old decoder with a bug
        delivery = real_decode(payload, message_id)
        if delivery.first_seq == poison_seq:
            raise DeliveryError("cannot read command 20")
        return delivery

    monkeypatch.setattr(loop, "decode_delivery", buggy_decode)
    await _publish(bus, session.deliveries)
    worker = Worker(bus, database.engine, batch_size=50, block_ms=10, backoff_s=0.001)
    await _run_until(worker, session.seq)  # no gap timeout: the legible seq is skipped
    (row,) = rows(database, sa.select(ParkedEvent))
    assert (row.kind, row.first_seq, row.last_seq) == ("delivery", poison_seq, poison_seq)
    assert rows(database, sa.select(SkippedDelivery.first_seq)) == [(poison_seq,)]
    assert {d.what for d in _clean(database, session)} >= {"skipped"}
    assert not parked.summary(database.engine).clean

    (outcome,) = parked.replay(database.engine)  # today's decoder reads it
    assert outcome.status == "stored"
    assert rows(database, sa.select(SkippedDelivery)) == []
    assert rows(database, sa.select(ParkedEvent)) == []
    assert _clean(database, session) == []
    assert await _pending(bus) == 0


async def test_a_hole_that_never_fills_is_skipped_after_the_timeout(database, session):
    bus = MemoryBus(prefix="pmtest:hole")
    clock = FakeClock()
    missing = 7
    await _publish(bus, [d for d in session.deliveries if d.first_seq != missing])
    worker = Worker(bus, database.engine, block_ms=10, gap_timeout_s=5, clock=clock)
    await worker.step()
    assert worker.projector.position(database.engine) == missing - 1
    assert len(worker.buffer) == session.seq - missing
    clock.now += 6
    await worker.step()
    assert worker.projector.position(database.engine) == session.seq
    (hole,) = rows(database, sa.select(SkippedDelivery.first_seq, SkippedDelivery.last_seq,
                                       SkippedDelivery.error))
    assert hole[:2] == (missing, missing) and "never arrived" in hole[2]
    assert worker.stats.skipped_holes == 1
    await bus.close()


async def test_a_database_outage_is_retried_and_parks_nothing(database, session,
                                                                    monkeypatch):
    bus = MemoryBus(prefix="pmtest:outage")
    await _publish(bus, session.deliveries)
    worker = Worker(bus, database.engine, block_ms=10, backoff_s=0.001, max_attempts=1)
    real_apply = worker.projector.apply
    failures = iter(range(3))

    def flaky_apply(engine, deliveries):
        if next(failures, None) is not None:
            raise sa.exc.OperationalError("INSERT", {}, Exception("server closed"))
        return real_apply(engine, deliveries)

    monkeypatch.setattr(worker.projector, "apply", flaky_apply)
    await _run_until(worker, session.seq)
    assert worker.stats.retries == 3 and worker.stats.parked == 0
    assert rows(database, sa.select(ParkedEvent)) == []
    assert _clean(database, session) == []
    await bus.close()


async def test_entries_delivered_too_often_are_parked_whole_and_replay_in_order(database,
                                                                                session):
    from pmarket.worker import parked

    bus = MemoryBus(prefix="pmtest:crashloop")
    await _publish(bus, session.deliveries[:6])
    # max_deliveries=0: as if the worker had died on every entry before.
    worker = Worker(bus, database.engine, block_ms=10, max_deliveries=0)
    await worker.step()
    parked_rows = rows(database, sa.select(ParkedEvent).order_by(ParkedEvent.id))
    assert [(p.kind, p.first_seq) for p in parked_rows] == [("delivery", s)
                                                             for s in range(1, 7)]
    assert "without an ack" in parked_rows[0].error
    assert worker.projector.position(database.engine) == 6  # skipped, not stuck
    assert await _pending(bus) == 0
    assert [o.status for o in parked.replay(database.engine)] == ["stored"] * 6
    assert rows(database, sa.select(SkippedDelivery)) == []
    await _publish(bus, session.deliveries[6:])
    worker.max_deliveries = 50
    await _run_until(worker, session.seq)
    assert _clean(database, session) == []
    await bus.close()


@pytest.mark.parametrize("sole", [True, False])
async def test_a_sole_worker_takes_over_a_dead_workers_deliveries_at_once(bus, database,
                                                                         session, sole):
    """A worker read deliveries and died before storing them: they stay pending under
    its name. The shard's only worker (it holds the lock) takes them over at its first
    step, so nothing is stepped over; a worker that is not alone waits for the reclaim
    idle time, longer than the gap timeout, and skips them as a hole."""
    await _publish(bus, session.deliveries[:3])
    dead = await bus.read_events(WORKER_GROUP, "worker-dead", count=3)
    assert len(dead) == 3
    await _publish(bus, session.deliveries[3:])
    clock = FakeClock()
    worker = Worker(bus, database.engine, consumer="worker-new", block_ms=10,
                    gap_timeout_s=30, reclaim_idle_ms=60_000, sole=sole, clock=clock)
    for _ in range(20):
        await worker.step()
    if sole:
        assert worker.projector.position(database.engine) == session.seq
        assert _clean(database, session) == []
        assert await _pending(bus) == 0
    else:
        assert worker.projector.position(database.engine) == 0  # held behind the hole
        clock.now += 31
        await worker.step()
        assert worker.stats.skipped_holes == 1
