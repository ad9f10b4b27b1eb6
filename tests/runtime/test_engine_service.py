"""The engine service on the memory bus: replies, the log, dead letters, expiry, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import pytest

from pmarket.bus import LeaseLost, MemoryBus, RequestTimeout, decode_events, encode_command
from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    Outcome,
    PlaceOrder,
    Side,
    TimeInForce,
)
from pmarket.engine.events import BalanceState
from pmarket.runtime import service as service_module
from pmarket.runtime.eventlog import decode_delivery, decode_logged_delivery
from pmarket.runtime.recovery import (
    read_snapshot,
    snapshot_path,
)
from pmarket.runtime.service import SNAPSHOT_GROUP, EngineService

USERS = range(1, 9)


def flow(n: int, market_id: int = 1) -> list:
    """A deterministic mix: deposits first, then crossing orders from several users."""
    cmds: list = [Deposit(user_id=u, amount=10_000_000) for u in USERS]
    for i in range(n):
        side = Side.BUY if i % 2 else Side.SELL
        outcome = Outcome.YES if i % 3 else Outcome.NO
        price = 3000 + (i * 700) % 4000 // 100 * 100
        cmds.append(PlaceOrder(user_id=USERS[i % len(USERS)], market_id=market_id,
                               outcome=outcome, side=Side.BUY if outcome is Outcome.NO
                               else side, quantity=1 + i % 5, price=price,
                               client_order_id=f"c{i}"))
    return cmds


class Harness:
    """A memory bus shared by a client connection and successive engine services."""

    def __init__(self, snapshot_dir=None, **options) -> None:
        self.root = MemoryBus(prefix="t", reply_block_ms=20)
        self.client = self.root.connect(reply_block_ms=20)
        self.snapshot_dir = snapshot_dir
        # A short lease: a restart after crash() waits for the dead engine's lease.
        self.options = {"block_ms": 20, "lease_ms": 150, **options}
        self.service: EngineService | None = None
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def start(self) -> EngineService:
        self._stop = asyncio.Event()
        self.service = EngineService(self.root.connect(), snapshot_dir=self.snapshot_dir,
                                     **self.options)
        self._task = asyncio.create_task(self.service.run(self._stop))
        await asyncio.wait_for(self.service.ready.wait(), 5)
        return self.service

    async def stop(self) -> None:
        """A clean stop: the service finishes its batch and snapshots."""
        self._stop.set()
        await asyncio.wait_for(self._task, 5)

    async def crash(self) -> None:
        """The process dies wherever it is: nothing after this point happens."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def request(self, cmd) -> list[tuple]:
        return decode_events(await self.client.request(encode_command(cmd), timeout=5))

    async def log(self) -> list:
        bus = self.client
        return await bus.read(bus.events_stream(), "0-0", count=1_000_000)


async def test_each_requester_gets_its_own_commands_events_as_the_reply():
    h = Harness()
    await h.start()
    created = await h.request(CreateEvent(title="Rain?"))
    deposited = await h.request(Deposit(user_id=7, amount=500))
    await h.stop()
    assert created[0].kind == "event"
    assert deposited[-1] == BalanceState(7, 500, 0)


async def test_deliveries_cover_contiguous_seqs_and_carry_the_stamped_commands():
    h = Harness(batch_size=7)
    await h.start()
    await h.request(CreateEvent(title="x"))
    await asyncio.gather(*(h.request(c) for c in flow(60)))
    await h.stop()
    covered, stamps = [], []
    for entry in await h.log():
        delivery = decode_delivery(entry.payload)  # the worker ignores the extra key
        batch = decode_logged_delivery(entry.id, entry.payload)
        covered.extend(range(delivery.first_seq, delivery.last_seq + 1))
        stamps.extend((cmd.seq, cmd.ts_ms) for _, cmd in batch.commands)
        assert delivery.ts_ms == batch.ts_ms
    assert covered == list(range(1, 70))
    assert [seq for seq, _ in stamps] == covered
    times = [ts for _, ts in stamps]
    assert times == sorted(times) and times[0] > 0


async def test_replaying_the_log_onto_a_fresh_engine_gives_the_live_engines_state():
    h = Harness()
    service = await h.start()
    await h.request(CreateEvent(title="x"))
    await asyncio.gather(*(h.request(c) for c in flow(200)))
    await h.stop()
    replica = Engine()
    for entry in await h.log():
        for _, cmd in decode_logged_delivery(entry.id, entry.payload).commands:
            replica.apply(cmd)
    assert replica.digest() == service.engine.digest()


async def test_an_undecodable_command_is_dead_lettered_and_answered_with_a_rejection():
    h = Harness()
    service = await h.start()
    reply = decode_events(await h.client.request(b'{"type": "Nonsense"}', timeout=5))
    after = await h.request(Deposit(user_id=1, amount=5))
    await h.stop()
    assert reply[0].kind == "rejected" and reply[0].reason == "malformed_command"
    assert after[-1] == BalanceState(1, 5, 0)
    letters = await h.client.dead_letters(h.client.commands_stream(), "engine")
    assert [letter.payload for letter in letters] == [b'{"type": "Nonsense"}']
    assert "unknown command type" in letters[0].error
    assert service.engine.last_seq == 1  # the bad command took no seq


async def test_a_due_gtd_order_expires_without_any_other_traffic():
    h = Harness(expire_every_s=0.01)
    service = await h.start()
    await h.request(CreateEvent(title="x"))
    await h.request(Deposit(user_id=1, amount=100_000))
    expires = service.clock() + 50
    placed = await h.request(PlaceOrder(
        user_id=1, market_id=1, outcome=Outcome.YES, side=Side.BUY, quantity=1,
        price=5000, tif=TimeInForce.GTD, expires_at_ms=expires))
    order_id = placed[0].order_id
    for _ in range(200):
        if order_id not in service.engine.orders:
            break
        await asyncio.sleep(0.01)
    await h.stop()
    assert order_id not in service.engine.orders
    assert service.stats.expiry_ticks >= 1
    kinds = [decode_logged_delivery(e.id, e.payload).commands[0][1] for e in await h.log()]
    assert type(kinds[-1]).__name__ == "Expire"  # logged, so a replay expires it too


async def test_restart_from_snapshot_and_log_rebuilds_the_identical_engine(tmp_path):
    h = Harness(tmp_path, snapshot_every=50)
    await h.start()
    await h.request(CreateEvent(title="x"))
    await asyncio.gather(*(h.request(c) for c in flow(130)))
    await asyncio.sleep(0.05)  # the service's next round snapshots
    await h.request(Deposit(user_id=1, amount=1))
    before = h.service.engine.digest()
    await h.crash()
    assert read_snapshot(snapshot_path(tmp_path, "main")).engine.last_seq == 139
    service = await h.start()
    assert service.engine.digest() == before
    assert service.stats.replayed == 1  # the snapshot covered the rest
    await h.stop()


async def test_a_clean_stop_snapshots_everything_so_a_restart_replays_nothing(tmp_path):
    h = Harness(tmp_path)
    await h.start()
    await h.request(CreateEvent(title="x"))
    await h.request(Deposit(user_id=3, amount=77))
    await h.stop()
    service = await h.start()
    assert service.stats.replayed == 0
    assert service.engine.balance(3) == (77, 0)
    await h.stop()


@pytest.mark.parametrize("crash_after_batches", [1, 2, 3, 5])
async def test_a_crash_at_any_point_never_applies_a_command_twice(tmp_path,
                                                                   crash_after_batches):
    h = Harness(tmp_path, batch_size=10, snapshot_every=25)
    bus = h.client
    await bus.send_command(encode_command(CreateEvent(title="x")))
    cmds = flow(90)
    for cmd in cmds:
        await bus.send_command(encode_command(cmd))
    service = await h.start()
    while service.stats.batches < crash_after_batches:
        await asyncio.sleep(0)
    await h.crash()
    service = await h.start()
    for _ in range(500):
        if service.engine.last_seq == len(cmds) + 1:
            break
        await asyncio.sleep(0.01)
    await h.stop()
    reference = Engine()
    for i, cmd in enumerate([CreateEvent(title="x"), *flow(90)], start=1):
        cmd.seq = i
        reference.apply(cmd)
    assert service.engine.last_seq == reference.last_seq
    assert service.engine.accounts.keys() == reference.accounts.keys()
    for user in reference.accounts:
        assert service.engine.balance(user) == reference.balance(user)
        assert service.engine.positions(user) == reference.positions(user)
    assert service.engine.audit().ok
    ids = [mid for e in await h.log()
           for mid, _ in decode_logged_delivery(e.id, e.payload).commands]
    assert len(ids) == len(set(ids)) == len(cmds) + 1


async def test_a_command_already_in_the_log_but_still_pending_is_acked_not_reapplied():
    h = Harness(batch_size=100)
    bus = h.client
    await bus.send_command(encode_command(Deposit(user_id=1, amount=10)))
    service = await h.start()
    while service.engine.last_seq < 1:
        await asyncio.sleep(0)
    await h.crash()
    # Put the command back as pending, as if its ack had been lost after the log append.
    entry = (await bus.read(bus.commands_stream(), "0-0"))[0]
    await bus.set_group_position(bus.commands_stream(), "engine", "0-0")
    service = await h.start()
    while service.stats.acked_already_applied < 1:
        await asyncio.sleep(0.01)
    await h.stop()
    assert service.engine.balance(1) == (10, 0)
    assert entry.id not in service._covered


async def test_the_snapshot_group_keeps_the_log_a_restart_needs_from_being_trimmed(tmp_path):
    h = Harness(tmp_path, snapshot_every=20, keep_groups=())
    await h.start()
    await h.request(CreateEvent(title="x"))
    for cmd in flow(60):
        await h.request(cmd)
    await h.crash()
    groups = {g.name: g for g in await h.client.groups(h.client.events_stream())}
    snap = read_snapshot(snapshot_path(tmp_path, "main"))
    assert groups[SNAPSHOT_GROUP].last_delivered_id == snap.last_event_id
    remaining = await h.log()
    assert remaining and all(parse(e.id) > parse(snap.last_event_id) or
                             e.id == snap.last_event_id for e in remaining)
    service = await h.start()
    assert service.engine.last_seq == 69
    await h.stop()


def parse(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


def test_a_logged_delivery_still_decodes_as_a_plain_delivery_for_the_worker():
    from pmarket.runtime.eventlog import encode_logged_delivery

    payload = encode_logged_delivery(4, 5, 123, b'[["balance",1,2,3]]',
                                     [("1-0", b'{"type":"Expire"}'),
                                      ("2-0", b'{"type":"Deposit","user_id":1,"amount":2}')])
    delivery = decode_delivery(payload)
    assert (delivery.first_seq, delivery.last_seq, delivery.ts_ms) == (4, 5, 123)
    assert list(delivery.events) == [BalanceState(1, 2, 3)]
    assert orjson.loads(payload)["commands"][0] == ["1-0", {"type": "Expire"}]


async def test_a_second_engine_of_a_shard_stands_by_until_the_first_stops():
    h = Harness()
    await h.start()
    standby = EngineService(h.root.connect(), block_ms=20, lease_ms=150)
    stop_standby = asyncio.Event()
    task = asyncio.create_task(standby.run(stop_standby))
    await asyncio.sleep(0.4)  # well past the lease: the first engine keeps renewing it

    assert not standby.ready.is_set()
    await h.request(Deposit(user_id=1, amount=100))
    await h.stop()  # a clean stop releases the lease
    await asyncio.wait_for(standby.ready.wait(), 5)
    await h.request(Deposit(user_id=1, amount=50))
    stop_standby.set()
    await asyncio.wait_for(task, 5)

    assert standby.engine.balance(1) == (150, 0)
    assert standby.engine.last_seq == 2


async def test_an_engine_whose_lease_was_taken_stops_without_writing():
    h = Harness()
    service = await h.start()
    await h.request(Deposit(user_id=1, amount=100))
    entries = len(await h.log())
    # It stalled past its lease and another engine took the shard over.
    key, token, _ = service.fence
    await h.root.release_lease(key, token)
    assert await h.root.hold_lease(key, "engine-main@elsewhere", 60_000) is None

    with pytest.raises(RequestTimeout):
        await h.client.request(encode_command(Deposit(user_id=1, amount=1)), timeout=0.5)
    with pytest.raises(LeaseLost, match="elsewhere"):
        await asyncio.wait_for(h._task, 5)
    assert len(await h.log()) == entries


async def test_a_long_recovery_keeps_the_lease(tmp_path, monkeypatch):
    h = Harness(snapshot_dir=tmp_path)
    await h.start()
    await h.request(Deposit(user_id=1, amount=100))
    await h.stop()
    slow = service_module.read_snapshot

    def slow_read(path):
        time.sleep(0.6)  # four lease lifetimes (150 ms) in a thread: the loop is free
        return slow(path)

    monkeypatch.setattr(service_module, "read_snapshot", slow_read)
    starting = asyncio.create_task(h.start())
    await asyncio.sleep(0.05)
    key = h.client.keys.lease("main")
    holders = set()
    while not starting.done():
        holders.add(await h.client.hold_lease(key, "intruder", 150))
        await asyncio.sleep(0.05)
    service = await starting
    await h.stop()

    assert holders == {service.fence.token}
    assert service.engine.balance(1) == (100, 0)


async def test_a_snapshot_after_the_event_stream_vanished_creates_its_group_again(tmp_path):
    """Redis restarted without its data takes the snapshot group with it; the next
    snapshot parks a new group at its entry instead of failing (and keeps failing)."""
    h = Harness(tmp_path)
    service = await h.start()
    await h.request(CreateEvent(title="x"))
    await h.client.delete_streams(h.client.events_stream())
    await h.request(Deposit(user_id=1, amount=10))
    await service.snapshot()
    groups = {g.name: g for g in await h.client.groups(h.client.events_stream())}
    snap = read_snapshot(snapshot_path(tmp_path, "main"))
    assert groups[SNAPSHOT_GROUP].last_delivered_id == snap.last_event_id
    await h.stop()


async def test_a_snapshot_the_file_system_refuses_is_loud_not_fatal(tmp_path, monkeypatch,
                                                                     caplog):
    """Every file descriptor taken (a flood of half-sent requests), a full disk: the
    periodic snapshot fails, the engine goes on answering, nothing is trimmed (the log
    keeps every command), and the next snapshot that succeeds clears the problem; a
    restart rebuilds the same engine."""
    h = Harness(tmp_path, snapshot_every=20)
    refused = True
    original = service_module.write_snapshot

    def write(*args, **kwargs):
        if refused:
            raise OSError(24, "Too many open files")
        return original(*args, **kwargs)

    monkeypatch.setattr(service_module, "write_snapshot", write)
    service = await h.start()
    await h.request(CreateEvent(title="x"))
    with caplog.at_level("ERROR", logger="pmarket"):
        await asyncio.gather(*(h.request(c) for c in flow(40)))
        await asyncio.sleep(0.05)  # the service's next round tries to snapshot
        assert (await h.request(Deposit(user_id=1, amount=1)))[-1].kind == "balance"
    assert service.stats.snapshot_failures >= 1 and service.stats.snapshots == 0
    assert "Too many open files" in service.snapshot_problem
    assert any("snapshot failed" in r.getMessage() for r in caplog.records)
    assert len(await h.log()) > 1 and not snapshot_path(tmp_path, "main").exists()
    refused = False
    await service._periodic_snapshot()
    assert service.snapshot_problem is None and service.stats.snapshots == 1
    before = service.engine.digest()
    await h.crash()
    assert (await h.start()).engine.digest() == before
    await h.stop()


async def test_a_command_that_crashes_the_engine_takes_no_other_down_with_it(monkeypatch):
    """Four commands are read in one batch, one of which crashes every engine. The
    engines restarted on the same bus (the embedded exchange's ``RestartingEngine``)
    apply what was delivered before one command a batch: the crashing one is
    dead-lettered once delivered more than ``max_deliveries`` times, and the three
    others are applied once each — not dead-lettered with it."""
    from pmarket.runtime.supervised import RestartingEngine

    h = Harness(batch_size=100, max_deliveries=4)
    for cmd in (Deposit(user_id=1, amount=10), Deposit(user_id=2, amount=666),
                Deposit(user_id=3, amount=30), Deposit(user_id=4, amount=40)):
        await h.client.send_command(encode_command(cmd))
    original = EngineService._apply

    async def _apply(self, messages, read_next=False):
        if any(b"666" in m.payload and m.deliveries <= self.max_deliveries
               for m in messages):
            raise RuntimeError("a broken invariant")
        return await original(self, messages, read_next)

    monkeypatch.setattr(EngineService, "_apply", _apply)
    bus = h.root.connect()  # one bus for every engine, as in the embedded exchange
    engine = RestartingEngine(lambda: EngineService(bus, **h.options), backoff_s=0.01,
                              max_backoff_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    for _ in range(500):
        if engine.service.stats.dead_letters and engine.service.engine.last_seq == 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    final = engine.service.engine
    assert [final.balance(u) for u in (1, 2, 3, 4)] == [(10, 0), (0, 0), (30, 0), (40, 0)]
    assert engine.restarts >= 2 and engine.service.stats.dead_letters == 1
