"""Fixtures of the bus tests: every contract test runs on the memory and the Redis bus.

Each test gets its own key prefix (``pmtest:<uuid>``) and its Redis keys are deleted
afterwards, so tests can run in parallel against one Redis server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from pmarket.bus import Bus, MemoryBus
from pmarket.bus.redis_streams import RedisStreamsBus
from tests.services import redis_url_or_skip

ConnectBus = Callable[..., Bus]
"""Opens another connection (another "process") to the streams of the test's bus."""


@pytest.fixture
def redis_url() -> str:
    """URL of the test Redis; skips (or fails, see tests/services.py) when it is down."""
    return redis_url_or_skip()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[ConnectBus]:
    """A factory of bus connections sharing one fresh key prefix, closed after the test."""
    prefix = f"pmtest:{uuid.uuid4().hex}"
    opened: list[Bus] = []
    url = redis_url_or_skip() if request.param == "redis" else None
    root = MemoryBus(prefix=prefix, reply_block_ms=50)

    def open_bus(**options: object) -> Bus:
        options.setdefault("reply_block_ms", 50)
        if url is None:
            bus: Bus = root.connect(**options)  # type: ignore[arg-type]
        else:
            bus = RedisStreamsBus.from_url(url, prefix=prefix, **options)
        opened.append(bus)
        return bus

    yield open_bus
    for bus in opened:
        await bus.close()
    if url is not None:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def bus(connect: ConnectBus) -> Bus:
    """The test's main bus connection (memory or Redis)."""
    return connect()
