"""Liveness marks and the reaping of dead servers' groups: the contract, on both buses.

A server that dies without deleting its group (``server-<instance>`` on the event
stream) would hold trimming back forever; ``Bus.reap_dead_groups`` removes such a group
once the instance's liveness mark expired and its consumers are idle, and never the
group of a server that keeps its mark.
"""

from __future__ import annotations

import asyncio

import pytest

from pmarket.bus import Bus, UnknownGroup
from tests.bus.conftest import ConnectBus


async def _until(predicate, timeout_s: float = 5.0) -> None:
    """Poll an async predicate until it holds (fail after ``timeout_s``)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def _expired(bus: Bus, instance: str) -> None:
    async def gone() -> bool:
        return await bus.lease_holder(bus.keys.alive(instance)) is None
    await _until(gone)


async def test_consumers_lists_each_with_its_pending_count(bus: Bus):
    stream = bus.events_stream()
    await bus.ensure_group(stream, "g")
    await bus.append(stream, [b"a", b"b", b"c"])
    await bus.read_group(stream, "g", "c1", count=2)
    await bus.read_group(stream, "g", "c2", count=5)

    consumers = {c.name: c for c in await bus.consumers(stream, "g")}

    assert {name: c.pending for name, c in consumers.items()} == {"c1": 2, "c2": 1}
    assert all(0 <= c.idle_ms < 5_000 for c in consumers.values())
    with pytest.raises(UnknownGroup):
        await bus.consumers(stream, "nope")
    with pytest.raises(UnknownGroup):
        await bus.consumers(bus.keys.events("no-such-shard"), "g")


async def test_idle_time_grows_while_a_consumer_does_not_read(bus: Bus):
    stream = bus.events_stream()
    await bus.ensure_group(stream, "g")
    await bus.append(stream, [b"a"])
    await bus.read_group(stream, "g", "c1")

    async def idle() -> bool:
        return (await bus.consumers(stream, "g"))[0].idle_ms >= 60
    await _until(idle)


async def test_lease_holder_names_the_holder_until_the_lease_expires(bus: Bus):
    key = bus.keys.lease("main")
    assert await bus.lease_holder(key) is None
    assert await bus.hold_lease(key, "engine-a", 60_000) is None

    assert await bus.lease_holder(key) == "engine-a"
    assert await bus.hold_lease(key, "engine-a", 100) is None  # now expiring soon
    await _until(lambda: _is_none(bus.lease_holder(key)))


async def _is_none(value) -> bool:
    return await value is None


async def test_keep_alive_says_whether_the_mark_had_lapsed(connect: ConnectBus):
    bus = connect(instance="srv-a")

    assert await bus.keep_alive(60_000) is False  # the first mark
    assert await bus.lease_holder(bus.keys.alive("srv-a")) == "srv-a"
    assert await bus.keep_alive(100) is True  # still there; now it lives 100 ms
    await _expired(bus, "srv-a")
    assert await bus.keep_alive(100) is False  # it had expired


async def test_a_dead_servers_group_is_reaped_and_trimming_proceeds(connect: ConnectBus):
    live, dead = connect(instance="live"), connect(instance="dead")
    stream = live.events_stream()
    await live.keep_alive(60_000)
    await dead.keep_alive(100)
    for bus in (live, dead):
        await bus.ensure_group(stream, bus.server_group(), "0")
    await live.append(stream, [b"e%d" % i for i in range(5)])
    await dead.read_group(stream, dead.server_group(), "dead", count=2)  # then it "dies"
    live_batch = await live.read_group(stream, live.server_group(), "live", count=10)
    await live.ack(stream, live.server_group(), [m.id for m in live_batch])
    assert await live.trim(stream, approximate=False) == 0  # the dead group holds it back
    await _expired(live, "dead")

    async def reaped() -> bool:
        return await live.reap_dead_groups(stream, idle_ms=50) == ["server-dead"]
    await _until(reaped)

    assert [g.name for g in await live.groups(stream)] == ["server-live"]
    assert await live.trim(stream, approximate=False) == 5


async def test_a_live_servers_group_is_never_reaped_however_idle(connect: ConnectBus):
    reaper, idle = connect(instance="reaper"), connect(instance="idle")
    stream = reaper.events_stream()
    await idle.keep_alive(60_000)
    await idle.ensure_group(stream, idle.server_group(), "0")
    await idle.append(stream, [b"e"])
    await idle.read_group(stream, idle.server_group(), "idle")
    await asyncio.sleep(0.1)  # its consumer is idle longer than the threshold below

    assert await reaper.reap_dead_groups(stream, idle_ms=10) == []
    assert [g.name for g in await reaper.groups(stream)] == ["server-idle"]


async def test_a_consumer_that_read_recently_keeps_its_group(connect: ConnectBus):
    """A server whose mark lapsed (it stalled) but that read within the threshold."""
    reaper, stalled = connect(instance="reaper"), connect(instance="stalled")
    stream = reaper.events_stream()
    await stalled.ensure_group(stream, stalled.server_group(), "0")
    await stalled.append(stream, [b"e"])
    await stalled.read_group(stream, stalled.server_group(), "stalled")

    assert await reaper.reap_dead_groups(stream, idle_ms=60_000) == []
    assert [g.name for g in await reaper.groups(stream)] == ["server-stalled"]


async def test_only_other_servers_groups_are_reaped(connect: ConnectBus):
    bus = connect(instance="me")
    stream = bus.events_stream()
    for group in ("worker", "engine-snapshot", "server-me", "server-gone"):
        await bus.ensure_group(stream, group, "0")

    assert await bus.reap_dead_groups(stream, idle_ms=0) == ["server-gone"]
    assert sorted(g.name for g in await bus.groups(stream)) == [
        "engine-snapshot", "server-me", "worker"]
    assert await bus.reap_dead_groups(bus.keys.events("no-such-shard"), idle_ms=0) == []


async def test_a_reaped_group_is_not_recreated_behind_the_readers_back(connect: ConnectBus):
    """A reader that must resynchronise after losing its group asks not to have it
    re-created silently (``start_id=None``) and sees ``UnknownGroup`` instead."""
    bus = connect(instance="me")
    stream = bus.events_stream()
    await bus.ensure_group(stream, bus.server_group(), "0")
    await bus.append(stream, [b"e"])
    first = await bus.ack_and_read_events(bus.server_group(), "me", [], start_id=None)
    assert [m.payload for m in first] == [b"e"]
    await bus.delete_group(stream, bus.server_group())
    await bus.append(stream, [b"f"])

    with pytest.raises(UnknownGroup):
        await bus.ack_and_read_events(bus.server_group(), "me", [first[0].id],
                                      start_id=None)
    assert [g.name for g in await bus.groups(stream)] == []
    # The default still re-creates it (from the stream's start), as before.
    again = await bus.read_events(bus.server_group(), "me")
    assert [m.payload for m in again] == [b"e", b"f"]
