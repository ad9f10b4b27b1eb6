"""MemoryBus fault injection: lost, doubled and late deliveries, failed writes."""

from __future__ import annotations

import asyncio

import pytest

from pmarket.bus import (
    ENGINE_GROUP,
    BusUnavailable,
    Faults,
    MemoryBus,
    Reply,
    RequestTimeout,
)


class FakeClock:
    """A settable Unix-ms clock, so pending entries age without sleeping."""

    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


async def test_failed_write_raises_and_changes_nothing():
    bus = MemoryBus(faults=Faults(fail_writes=1))

    with pytest.raises(BusUnavailable):
        await bus.publish_events([b"a", b"b"])
    assert await bus.length(bus.events_stream()) == 0

    await bus.publish_events([b"c"])
    assert [m.payload for m in await bus.read(bus.events_stream())] == [b"c"]
    assert bus.faults.failed == 1


async def test_failed_completion_leaves_commands_pending_and_publishes_nothing():
    engine = MemoryBus()
    server = engine.connect()
    await server.send_command(b"c1", reply_to=server.instance, correlation_id="k")
    commands = await engine.read_commands("engine-1")
    events_stream = engine.events_stream()
    engine.faults.fail_write_if = lambda appends: any(a.stream == events_stream for a in appends)

    with pytest.raises(BusUnavailable):
        await engine.complete(
            commands, events=[b"e1"], replies=[Reply.to(commands[0], b"ok")]
        )

    assert await engine.length(events_stream) == 0
    assert await engine.length(engine.keys.replies(server.instance)) == 0
    assert len(await engine.pending(engine.commands_stream(), ENGINE_GROUP)) == 1
    engine.faults.fail_write_if = None
    await engine.complete(commands, events=[b"e1"], replies=[Reply.to(commands[0], b"ok")])
    assert await engine.pending(engine.commands_stream(), ENGINE_GROUP) == []


async def test_dropped_delivery_stays_pending_until_reclaimed():
    clock = FakeClock()
    bus = MemoryBus(clock_ms=clock, faults=Faults(drop=1.0))
    stream = bus.events_stream()
    (event_id,) = await bus.publish_events([b"lost"])

    assert await bus.read_events("worker", "w1") == []
    assert bus.faults.dropped == 1
    (pending,) = await bus.pending(stream, "worker")
    assert (pending.id, pending.deliveries) == (event_id, 1)

    bus.faults.drop = 0.0
    clock.now_ms += 60_000
    (again,) = await bus.reclaim(stream, "worker", "w2", min_idle_ms=30_000)
    assert (again.payload, again.deliveries) == (b"lost", 2)


async def test_duplicated_delivery_reaches_the_consumer_twice():
    bus = MemoryBus(faults=Faults(duplicate=1.0))
    await bus.publish_events([b"a", b"b"])

    received = await bus.read_events("worker", "w1")

    assert [m.payload for m in received] == [b"a", b"a", b"b", b"b"]
    assert bus.faults.duplicated == 2
    await bus.ack_events("worker", [m.id for m in received])
    assert await bus.pending(bus.events_stream(), "worker") == []


async def test_delayed_replies_make_a_short_request_time_out():
    server = MemoryBus(reply_block_ms=20, faults=Faults(delay_ms=200))
    engine = server.connect()
    server.faults.match = lambda stream: ":replies:" in stream

    async def answer() -> None:
        commands = []
        while not commands:
            commands = await engine.read_commands("engine-1", block_ms=1_000)
        await engine.complete(commands, replies=[Reply.to(c, b"ok") for c in commands])

    task = asyncio.create_task(answer())
    with pytest.raises(RequestTimeout):
        await server.request(b"cmd", timeout=0.05)
    await task
    # the engine side was not slowed: only reply deliveries match the fault
    await engine.send_command(b"next")
    assert [m.payload for m in await engine.read_commands("engine-1")] == [b"next"]
    await server.close()


async def test_fault_choices_are_reproducible_from_the_seed():
    async def dropped_ids(seed: int) -> list[str]:
        bus = MemoryBus(faults=Faults(drop=0.5, seed=seed))
        ids = await bus.publish_events([b"%d" % i for i in range(40)])
        got = {m.id for m in await bus.read_events("worker", "w1", count=40)}
        return [ids.index(i) for i in ids if i not in got]

    first, again, other = await dropped_ids(7), await dropped_ids(7), await dropped_ids(8)

    assert first == again
    assert 0 < len(first) < 40
    assert first != other


async def test_idempotent_consumer_sees_every_event_despite_drops_and_duplicates():
    """At least once under faults: drops come back by reclaim, duplicates are harmless."""
    clock = FakeClock()
    bus = MemoryBus(clock_ms=clock, faults=Faults(drop=0.3, duplicate=0.3, seed=3))
    stream = bus.events_stream()
    sent = {bytes(f"e{i}", "ascii") for i in range(200)}
    await bus.publish_events(sorted(sent))
    applied: set[bytes] = set()
    applications = 0

    for _ in range(100):
        batch = await bus.read_events("worker", "w1", count=50)
        clock.now_ms += 1_000
        batch += await bus.reclaim(stream, "worker", "w1", min_idle_ms=500)
        for message in batch:
            applications += 1
            applied.add(message.payload)  # an idempotent upsert
        await bus.ack_events("worker", [m.id for m in batch])
        if applied == sent and not await bus.pending(stream, "worker"):
            break

    assert applied == sent
    assert bus.faults.dropped > 0
    assert bus.faults.duplicated > 0
    assert applications > len(sent)


async def test_a_read_whose_reply_was_lost_is_handed_over_by_the_next_read():
    """A group read that fails on the way back has delivered all the same: the entries
    are pending with the reader, and its next read returns them (no reclaim needed),
    then new entries — for events and for the engine's commands alike."""
    bus = MemoryBus(faults=Faults(lose_replies=1))
    await bus.publish_events([b"e1", b"e2"])
    with pytest.raises(BusUnavailable):
        await bus.read_events("worker", "w1")
    assert len(await bus.pending(bus.events_stream(), "worker")) == 2
    again = await bus.read_events("worker", "w1")
    assert [m.payload for m in again] == [b"e1", b"e2"]
    await bus.publish_events([b"e3"])
    await bus.ack_events("worker", [m.id for m in again])
    assert [m.payload for m in await bus.read_events("worker", "w1")] == [b"e3"]

    engine = MemoryBus(faults=Faults(lose_replies=1))
    server = engine.connect()
    await server.send_command(b"c1", reply_to=server.instance, correlation_id="k")
    with pytest.raises(BusUnavailable):
        await engine.read_commands("engine-1")
    (command,) = await engine.read_commands("engine-1")
    assert command.payload == b"c1"
