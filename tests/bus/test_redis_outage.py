"""The Redis bus across a real Redis outage: a private redis-server, killed with SIGKILL.

While Redis is down a request fails fast with ``BusUnavailable`` (never a long wait for
its timeout), and once Redis is back the same bus object works again: its reply listener
and pool reconnect by themselves, whether the listener started before the outage or
while Redis was still down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from pmarket.bus import Bus, BusUnavailable, Reply, UnknownGroup
from pmarket.bus.redis_streams import RedisStreamsBus
from tests.bus.private_redis import PrivateRedis

pytestmark = pytest.mark.redis


@pytest.fixture
def private_redis(tmp_path) -> PrivateRedis:
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.kill()


@contextlib.asynccontextmanager
async def _engine(url: str) -> AsyncIterator[None]:
    """A minimal engine on its own bus: answers ``ok:<payload>``; survives outages."""
    bus = RedisStreamsBus.from_url(url, prefix="pmt-outage")

    async def serve() -> None:
        while True:
            try:
                commands = await bus.read_commands("engine-1", block_ms=50)
                if commands:
                    await bus.complete(commands, replies=[Reply.to(c, b"ok:" + c.payload)
                                                          for c in commands])
            except BusUnavailable:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(serve())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.close()


async def _request_fails_fast(bus: Bus) -> None:
    start = time.monotonic()
    with pytest.raises(BusUnavailable):  # not RequestTimeout after 30 s
        await bus.request(b"x", timeout=30.0)
    assert time.monotonic() - start < 15.0


async def _eventually_answers(bus: Bus, payload: bytes, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assert await bus.request(payload, timeout=2.0) == b"ok:" + payload
            return
        except BusUnavailable:
            assert time.monotonic() < deadline, "the bus never recovered"
            await asyncio.sleep(0.05)


async def test_a_bus_opened_while_redis_is_down_fails_fast_then_heals(
        private_redis: PrivateRedis):
    bus = RedisStreamsBus.from_url(private_redis.url, prefix="pmt-outage",
                                   reply_block_ms=50)
    try:
        await _request_fails_fast(bus)
        await _request_fails_fast(bus)  # the listener keeps trying; requests still fail fast
        private_redis.start()
        async with _engine(private_redis.url):
            await _eventually_answers(bus, b"first")
    finally:
        await bus.close()


@pytest.mark.parametrize("appendonly", [False, True], ids=["empty-restart", "aof"])
async def test_a_kill_9_of_redis_is_survived_by_the_same_bus(tmp_path, appendonly: bool):
    server = PrivateRedis(tmp_path / "redis", appendonly=appendonly)
    server.start()
    bus = RedisStreamsBus.from_url(server.url, prefix="pmt-outage", reply_block_ms=50)
    try:
        async with _engine(server.url):
            await _eventually_answers(bus, b"before")
            server.kill()
            await _request_fails_fast(bus)
            server.start()
            await _eventually_answers(bus, b"after")
    finally:
        await bus.close()
        server.kill()


async def test_a_group_lost_with_redis_data_is_reported_to_a_reader_that_asks(
        private_redis: PrivateRedis):
    """A Redis restarted without persistence forgets every group: a reader that must
    resynchronise (``start_id=None``) learns it, instead of a silently new group."""
    private_redis.start()
    bus = RedisStreamsBus.from_url(private_redis.url, prefix="pmt-outage")
    try:
        stream = bus.events_stream()
        await bus.ensure_group(stream, "server-x", "0")
        await bus.append(stream, [b"e"])
        assert len(await bus.ack_and_read_events("server-x", "x", [], start_id=None)) == 1
        private_redis.kill()
        with pytest.raises(BusUnavailable):
            await bus.ack_and_read_events("server-x", "x", [], start_id=None)
        private_redis.start()
        with pytest.raises(UnknownGroup):
            await bus.ack_and_read_events("server-x", "x", [], start_id=None)
    finally:
        await bus.close()
