"""Two ``pmarket engine`` processes on one shard, real Redis: one writes, one stands by.

The standby takes over when the writer is killed -9 (once the dead engine's lease ran
out), with every command the first engine answered still in effect.
"""

from __future__ import annotations

import uuid

from pmarket.bus.redis_streams import RedisStreamsBus
from pmarket.engine import Deposit
from tests.runtime.processes import Client, Process, wait_until
from tests.services import redis_url_or_skip


async def test_a_standby_engine_takes_over_when_the_writer_is_killed(tmp_path):
    redis_url = redis_url_or_skip()
    prefix = f"pmtest:{uuid.uuid4().hex}"
    common = ["engine", "--redis-url", redis_url, "--prefix", prefix, "--lease-ms", "1000",
              "--log-level", "info"]
    first = Process([*common, "--snapshot-dir", str(tmp_path / "a")], tmp_path / "a.log")
    second = Process([*common, "--snapshot-dir", str(tmp_path / "b")], tmp_path / "b.log")
    bus = RedisStreamsBus.from_url(redis_url, prefix=prefix, reply_block_ms=100)
    try:
        first.start()
        client = Client(bus, timeout=3.0)
        # The first reply waits for the engine process to start (slow on a busy box).
        assert await client.send("a", Deposit(user_id=1, amount=100), retry=False,
                                 timeout=60), first.log_tail()
        second.start()
        await wait_until(lambda: "standing by" in second.log_tail(), 60,
                         "the second engine to stand by")
        assert await client.send("b", Deposit(user_id=1, amount=20), retry=False)
        assert "recovered" not in second.log_tail()  # it has not touched the shard

        first.kill9()
        events = await client.send("c", Deposit(user_id=1, amount=3), retry=False,
                                   timeout=30)

        assert events, second.log_tail()
        assert events[-1] == ("balance", 1, 123, 0)  # both earlier deposits, once each
        assert "took over the shard" in second.log_tail()
        assert second.terminate() == 0
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()


async def test_an_engine_that_lost_its_lease_exits_with_status_3(tmp_path):
    redis_url = redis_url_or_skip()
    prefix = f"pmtest:{uuid.uuid4().hex}"
    engine = Process(["engine", "--redis-url", redis_url, "--prefix", prefix,
                      "--lease-ms", "1000"], tmp_path / "engine.log")
    bus = RedisStreamsBus.from_url(redis_url, prefix=prefix, reply_block_ms=100)
    try:
        engine.start()
        client = Client(bus, timeout=3.0)
        assert await client.send("a", Deposit(user_id=1, amount=100), retry=False,
                                 timeout=60), engine.log_tail()
        # As if it had stalled past its lease and another engine had taken the shard.
        await bus.redis.set(bus.keys.lease("main"), "engine-main@elsewhere", px=60_000)

        await wait_until(lambda: not engine.alive(), 30, "the engine to stop")

        assert engine.proc.returncode == 3
        assert "another engine took over this shard" in engine.log_tail()
        assert "engine-main@elsewhere" in engine.log_tail()
    finally:
        engine.ensure_stopped()
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()
