"""The pieces of healing on their own: the replica's gap detection and resync, the
projection watch's verdict, the 503 mapping of outage errors."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pmarket.bus import BusError, BusUnavailable, MemoryBus
from pmarket.engine.events import BookLevel
from pmarket.runtime.eventlog import Delivery, encode_delivery
from pmarket.server.consistency import ProjectionWatch, ReadBarrier
from pmarket.server.errors import ApiError, outage_error
from pmarket.server.marketdata import MarketState, Replica, Seed
from pmarket.server.websocket import Connection, Hub
from tests.server.faults import until


def _replica(hub: Hub | None = None) -> Replica:
    replica = Replica(MemoryBus(), None, group="server-t", hub=hub)  # type: ignore[arg-type]
    replica._install(Seed({1: MarketState(1, 1, "m", 100, "active")}, {1: [1]}, 10, "5-0"))
    return replica


def _book(first: int, last: int, price: int, qty: int) -> Delivery:
    return Delivery(first, last, events=[BookLevel(1, "bid", price, qty)])


def test_deliveries_apply_in_order_and_duplicates_are_skipped():
    replica = _replica()
    assert replica.apply(_book(11, 12, 4000, 3))
    assert replica.apply(_book(5, 12, 4000, 99))  # covered already: a duplicate
    assert replica.markets[1].bids == {4000: 3}
    assert replica.apply(_book(13, 13, 4100, 1))
    assert replica.last_seq == 13 and replica.markets[1].bids == {4000: 3, 4100: 1}


@given(st.integers(min_value=2, max_value=1_000))
def test_a_delivery_past_the_next_seq_is_a_gap_and_changes_nothing(skip: int):
    replica = _replica()
    sequence = replica.markets[1].sequence
    assert replica.apply(_book(10 + skip, 10 + skip, 4000, 3)) is False
    assert replica.last_seq == 10
    assert replica.markets[1].bids == {} and replica.markets[1].sequence == sequence


def _messages(conn: Connection) -> list[dict]:
    out = []
    while not conn.queue.empty():
        out.append(orjson.loads(conn.queue.get_nowait()))
    return out


async def test_a_resync_sends_book_subscribers_a_snapshot_at_the_next_sequence():
    hub = Hub()
    replica = _replica(hub)
    watcher, gone_watcher = Connection(None), Connection(None)  # type: ignore[arg-type]
    replica._install(Seed({1: MarketState(1, 1, "m", 100, "active"),
                           2: MarketState(2, 2, "n", 100, "active")}, {1: [1], 2: [2]},
                          10, "5-0"))
    for key, conn in (("book:1", watcher), ("trades:1", watcher), ("book:2", gone_watcher)):
        hub.add(key, conn)
        conn.channels.add(key)
    replica.apply(_book(11, 11, 4000, 3))
    delta = _messages(watcher)[-1]
    assert delta["type"] == "delta"
    trades_before = replica.markets[1].trade_sequence

    fresh = MarketState(1, 1, "m", 100, "active", bids={4000: 3, 4200: 1})
    replica._install(Seed({1: fresh}, {1: [1]}, 14, "9-0"), resync=True)

    [snapshot] = _messages(watcher)
    assert (snapshot["type"], snapshot["sequence"]) == ("snapshot", delta["sequence"] + 1)
    assert snapshot["data"]["bids"] == [{"price": "0.42", "quantity": 1},
                                        {"price": "0.40", "quantity": 3}]
    assert replica.markets[1].trade_sequence == trades_before + 1  # a gap: trades missed
    assert replica.last_seq == 14 and replica.last_id == (9, 0)
    [dropped] = _messages(gone_watcher)  # its market vanished while the replica was away
    assert dropped["type"] == "error" and dropped["data"]["code"] == "unknown_channel"
    assert "book:2" not in gone_watcher.channels and not hub.wants("book:2")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_tells_a_stalled_projection_from_a_slow_one():
    clock = _Clock()
    watch = ProjectionWatch(None, None, stall_after_s=10, clock=clock)  # type: ignore[arg-type]
    watch.observe(5, 5)
    clock.now += 60
    watch.observe(5, 5)
    assert watch.stalled() is None  # caught up: idle is fine however long
    watch.observe(5, 9)  # work arrived: the clock starts now, not at the last move
    clock.now += 9
    watch.observe(5, 9)
    assert watch.stalled() is None and "catching up" in watch.describe()
    clock.now += 1
    assert watch.stalled() == 10
    assert "no progress for 10 s" in watch.describe()
    watch.observe(6, 9)  # it moved: slow, not stalled
    assert watch.stalled() is None
    clock.now += 30
    watch.observe(9, 12)
    assert watch.stalled() is None


@pytest.mark.parametrize("exc, code", [
    (OperationalError("SELECT 1", {}, Exception("connection refused")), "database_unavailable"),
    (InterfaceError("SELECT 1", {}, Exception("closed")), "database_unavailable"),
    (DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
     "database_unavailable"),
    (PoolTimeout("QueuePool limit reached"), "database_unavailable"),
    (BusUnavailable("redis unavailable"), "unavailable"),
])
def test_outages_map_to_503_with_retry_after(exc, code):
    error = outage_error(exc)
    assert error is not None and (error.status, error.code) == (503, code)
    assert int(error.headers["Retry-After"]) >= 1


def test_a_wrapped_outage_is_recognised_and_bugs_are_not():
    try:
        try:
            raise BusUnavailable("down")
        except BusUnavailable as inner:
            raise RuntimeError("while doing something") from inner
    except RuntimeError as outer:
        assert outage_error(outer).code == "unavailable"
    assert outage_error(IntegrityError("INSERT", {}, Exception("dup"))) is None
    assert outage_error(BusError("NOGROUP")) is None
    assert outage_error(ValueError("bad")) is None


async def test_a_gap_in_the_stream_makes_the_running_replica_resync():
    """Deliveries 12 lost (trimmed while this server was away): the replica notices at
    13, seeds again (from a database that has projected up to 13) and goes on at 14."""
    hub = Hub()
    bus = MemoryBus()
    replica = _replica(hub)
    replica.bus, replica.stream = bus, bus.events_stream()
    replica._start_id = "0"
    watcher = Connection(None)  # type: ignore[arg-type]
    hub.add("book:1", watcher)
    watcher.channels.add("book:1")
    stream = replica.stream
    append = bus.append

    [_, gap_id] = [*(await append(stream, [encode_delivery(_book(11, 11, 4000, 3))])),
                   *(await append(stream, [encode_delivery(_book(13, 13, 4200, 1))]))]
    seeds = []

    def read_seed() -> Seed:
        seeds.append(1)
        market = MarketState(1, 1, "m", 100, "active", bids={4000: 3, 4200: 1})
        return Seed({1: market}, {1: [1]}, 13, gap_id)

    replica.read_seed = read_seed  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(replica.run(stop, consumer="t"))
    try:
        async def resynced() -> bool:
            return replica.resyncs == 1 and replica.running
        await until(resynced, 5, "the replica resynchronised")
        await append(stream, [encode_delivery(_book(14, 14, 4300, 2))])

        async def applied() -> bool:
            return replica.last_seq == 14
        await until(applied, 5, "the replica went on after the resync")
    finally:
        stop.set()
        await task
    kinds = [(m["type"], m["sequence"]) for m in _messages(watcher)]
    assert kinds == [("delta", 1), ("snapshot", 2), ("delta", 3)]
    assert replica.markets[1].bids == {4000: 3, 4200: 1, 4300: 2}
    assert len(seeds) == 1
    groups = {g.name: g for g in await bus.groups(stream)}
    assert groups["server-t"].pending == 0  # nothing left to hold trimming back


def test_outage_answers_are_logged_once_per_interval_with_a_count(caplog, monkeypatch):
    from pmarket.server import errors

    monkeypatch.setattr(errors, "_outage_logged", {})
    exc = BusUnavailable("redis unavailable: connection refused")
    with caplog.at_level("WARNING", logger="pmarket.server"):
        for _ in range(50):
            errors.log_outage("unavailable", "POST /orders", exc)
        assert len(caplog.records) == 1
        monkeypatch.setattr(errors, "OUTAGE_LOG_EVERY_S", 0.0)
        errors.log_outage("unavailable", "POST /orders", exc)
    assert len(caplog.records) == 2
    assert "49 more answered so" in caplog.records[1].getMessage()


class _StuckProgress:
    """A database projection that never advances."""

    known = 0

    async def wait_for(self, seq: int, timeout_s: float) -> bool:
        await asyncio.sleep(timeout_s)
        return False


async def _barrier(watch: ProjectionWatch | None = None) -> ReadBarrier:
    replica = _replica()
    replica.running = True
    barrier = ReadBarrier(MemoryBus(), replica, _StuckProgress(), 0.05, watch)  # type: ignore[arg-type]
    barrier.note_write()
    return barrier


async def test_a_read_after_a_write_is_refused_never_served_stale():
    barrier = await _barrier()
    with pytest.raises(ApiError) as caught:
        await barrier.for_database()
    assert (caught.value.status, caught.value.code) == (503, "projection_behind")
    assert caught.value.headers["Retry-After"] == "1"


async def test_a_known_stall_is_refused_without_waiting():
    clock = _Clock()
    watch = ProjectionWatch(None, None, stall_after_s=1, clock=clock)  # type: ignore[arg-type]
    watch.observe(0, 10)
    clock.now += 5
    barrier = await _barrier(watch)
    barrier.timeout_s = 3600.0  # waiting would hang the test
    with pytest.raises(ApiError) as caught:
        await barrier.for_database()
    assert (caught.value.status, caught.value.code) == (503, "projection_stalled")
    assert int(caught.value.headers["Retry-After"]) >= 1


async def test_reads_wait_for_nothing_while_market_data_is_down():
    barrier = await _barrier()
    barrier.replica._lost("event stream unavailable (BusUnavailable: down)")
    for read, code in ((barrier.for_replica, "marketdata_unavailable"),
                       (barrier.for_database, "unavailable")):
        with pytest.raises(ApiError) as caught:
            await read()
        assert (caught.value.status, caught.value.code) == (503, code)
        assert "Retry-After" in caught.value.headers

