"""What only the Redis bus has: wire details, server errors, entries it did not write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pmarket.bus import BusUnavailable, Reply
from pmarket.bus.redis_streams import RedisStreamsBus
from pmarket.bus.redis_wire import HiredisPackingConnection


@pytest.fixture
async def rbus(redis_url: str) -> AsyncIterator[RedisStreamsBus]:
    prefix = f"pmtest:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(redis_url, prefix=prefix)
    yield bus
    keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await bus.redis.delete(*keys)
    await bus.close()


async def test_unreachable_server_raises_bus_unavailable():
    client = aioredis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    bus = RedisStreamsBus(client, owns_client=True)
    try:
        with pytest.raises(BusUnavailable):
            await bus.publish_events([b"x"])
        with pytest.raises(BusUnavailable):
            await bus.read_events("worker", "w1")
    finally:
        await bus.close()


def test_hiredis_packing_matches_redis_py():
    commands = [
        ("XGROUP CREATE", "s", "g", "$", "MKSTREAM"),
        ("EVALSHA", "ab" * 20, 2, "k1", "k2", 0, b"\x00\xffpayload", "h\u00e9", 10**15),
        ("XACK", b"s", "g", "1-1", "2-0"),
    ]
    fast, reference = HiredisPackingConnection(), Connection()
    for command in commands:
        assert b"".join(fast.pack_command(*command)) == b"".join(
            reference.pack_command(*command)
        )


@pytest.mark.redis
async def test_reply_streams_carry_a_ttl(rbus: RedisStreamsBus):
    await rbus.send_replies([Reply("srv-1", "c1", b"x")])

    ttl_ms = await rbus.redis.pttl(rbus.keys.replies("srv-1"))

    assert 0 < ttl_ms <= rbus.reply_ttl_ms


@pytest.mark.redis
async def test_entry_written_by_a_stranger_can_be_read_and_dead_lettered(rbus: RedisStreamsBus):
    stream = rbus.events_stream()
    await rbus.ensure_group(stream, "worker")
    await rbus.redis.xadd(stream, {"data": b"\xff\xfe", "kind": "raw"})

    (message,) = await rbus.read_events("worker", "w1")
    assert message.payload == b""
    assert message.headers == {"data": "\ufffd\ufffd", "kind": "raw"}

    await rbus.dead_letter(message, "worker", "no payload field")
    (letter,) = await rbus.dead_letters(stream, "worker")
    assert letter.error == "no payload field"
    assert await rbus.pending(stream, "worker") == []


@pytest.mark.redis
async def test_history_read_skips_entries_deleted_while_pending(rbus: RedisStreamsBus):
    stream = rbus.commands_stream()
    for payload in (b"a", b"b", b"c"):
        await rbus.send_command(payload)
    a, b, c = await rbus.read_commands("engine-1")
    await rbus.redis.xdel(stream, a.id, b.id)

    restarted = RedisStreamsBus(rbus.redis, prefix=rbus.keys.prefix)
    (again,) = await restarted.read_commands("engine-1")

    assert (again.id, again.deliveries) == (c.id, 2)
    assert [p.id for p in await rbus.pending(stream, "engine")] == [c.id]


@pytest.mark.parametrize("turns", range(12))
async def test_a_cancelled_blocking_read_stops(rbus: RedisStreamsBus, turns: int):
    # The cancellation lands after ``turns`` turns of the loop, i.e. at every point of
    # the write-then-read. redis-py's write under asyncio.wait_for lost cancellations
    # that came as the write completed (Python 3.11): the read went on, and a loop of
    # reads being stopped never stopped.
    await rbus.read_commands("engine-1", block_ms=10)  # the group exists
    for _ in range(5):
        task = asyncio.create_task(rbus.read_commands("engine-1", block_ms=20))
        for _ in range(turns):
            await asyncio.sleep(0)
        assert task.cancel()  # still reading
        done, _ = await asyncio.wait([task], timeout=2)
        assert done and task.cancelled(), "the read went on after it was cancelled"



@pytest.mark.parametrize("url, transport", [
    ("redis://127.0.0.1:6379", aioredis.Connection),
    ("rediss://127.0.0.1:6380", aioredis.SSLConnection),
    ("unix:///run/redis.sock", aioredis.UnixDomainSocketConnection),
])
async def test_every_transport_gets_the_bus_connection(url: str, transport: type):
    bus = RedisStreamsBus.from_url(url)
    try:
        connection_class = bus.redis.connection_pool.connection_class
        assert issubclass(connection_class, transport)
        assert connection_class.send_packed_command is \
            HiredisPackingConnection.send_packed_command
    finally:
        await bus.close()


async def test_groups_skips_a_group_deleted_between_its_two_reads(rbus, monkeypatch):
    """``groups`` lists the groups (XINFO GROUPS), then reads each one's pending summary
    (XPENDING): a group deleted in between (a reaped server's) is gone, not an error."""
    stream = rbus.events_stream()
    await rbus.ensure_group(stream, "alive")
    await rbus.ensure_group(stream, "reaped")
    listed = rbus.redis.xinfo_groups

    async def then_reaped(name):
        infos = await listed(name)
        await rbus.delete_group(stream, "reaped")  # the supervisor, between the reads
        return infos

    monkeypatch.setattr(rbus.redis, "xinfo_groups", then_reaped)
    assert [g.name for g in await rbus.groups(stream)] == ["alive"]
