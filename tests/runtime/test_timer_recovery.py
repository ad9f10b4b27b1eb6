"""Timers that fall due while the exchange is down, killed for real (kill -9).

An event's close time and a user's dead-man deadline pass while the process is dead;
at the next start the recovered engine ticks on its own and both fire — before any
request, so it is the runtime's clock at recovery and not some later command that does
it. Once with the embedded server (``pmarket serve``: SQLite, journal), once with the
deployment's engine process (``pmarket engine`` on Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from pmarket.bus.redis_streams import RedisStreamsBus
from pmarket.engine import CreateEvent, Deposit, Heartbeat, Outcome, PlaceOrder, Side
from pmarket.engine.events import Reason, as_dict
from pmarket.runtime.eventlog import decode_delivery
from pmarket.runtime.runner import now_ms
from tests.server.harness import Client, ServeProcess
from tests.services import redis_url_or_skip

from .processes import Client as BusClient
from .processes import Process, wait_until

pytestmark = pytest.mark.slow

TIMEOUT_S = 5  # the shortest dead-man timeout the API allows


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def sleep_until(ms: int) -> None:
    await asyncio.sleep(max(0.0, (ms - now_ms()) / 1000))


async def test_a_killed_embedded_server_fires_what_fell_due_when_it_comes_back(tmp_path):
    server = ServeProcess(tmp_path)
    c = Client(server)  # type: ignore[arg-type]
    try:
        await server.start()
        staying = await c.market()
        token, _ = await c.user("maker")
        closing = await c.market(close_time=iso(now_ms() + 4_000))  # a 409 below if late
        doomed = [(await c.order(token, m, "yes", "buy", "0.40", 5))["order"]["id"]
                  for m in (closing, staying)]
        r = await c.http.post("/heartbeat", json={"timeout_s": TIMEOUT_S},
                              headers=c.auth(token))
        assert r.status_code == 200, r.text
        expires_at = datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00"))
        server.kill()

        await sleep_until(int(expires_at.timestamp() * 1000) + 200)
        await server.start()

        async def cancelled() -> bool:  # reads only: no command that could fire it
            for oid in doomed:
                r = await c.http.get(f"/orders/{oid}", headers=c.auth(token))
                if r.json()["status"] != "cancelled":
                    return False
            return True

        await wait_until(cancelled, 30, "both orders cancelled at recovery")
        market = (await c.http.get(f"/markets/{closing}")).json()
        assert market["status"] == "closed"
        assert (await c.http.get(f"/markets/{staying}")).json()["status"] == "active"
        r = await c.http.post("/heartbeat", json={"timeout_s": TIMEOUT_S},
                              headers=c.auth(token))
        fired_at = datetime.fromisoformat(r.json()["fired_at"].replace("Z", "+00:00"))
        assert fired_at >= expires_at
        r = await c.http.get("/admin/audit", headers=c.auth(await c.admin()))
        assert r.json()["ok"] is True
    finally:
        await c.aclose()
        server.kill()


async def test_a_killed_engine_process_fires_what_fell_due_when_it_comes_back(tmp_path):
    redis_url = redis_url_or_skip()
    prefix = f"pmtest:{uuid.uuid4().hex}"
    engine = Process(["engine", "--redis-url", redis_url, "--prefix", prefix, "--lease-ms",
                      "1000", "--snapshot-dir", str(tmp_path / "snapshots")],
                     tmp_path / "engine.log")
    bus = RedisStreamsBus.from_url(redis_url, prefix=prefix, reply_block_ms=100)
    try:
        engine.start()
        client = BusClient(bus, timeout=3.0)
        # The first reply waits for the engine process to start (slow on a busy box).
        assert await client.send("d", Deposit(user_id=1, amount=100_000), retry=False,
                                 timeout=60), engine.log_tail()
        markets = []
        for key, close_ms in (("closing", now_ms() + 3_000), ("staying", None)):
            created = await client.send(key, CreateEvent(title=key, close_time_ms=close_ms),
                                        retry=False)
            markets.append(as_dict(created[0])["markets"][0][0])
        closing_event = created[0][1] - 1
        orders = []
        for market_id in markets:
            placed = await client.send(f"o{market_id}", PlaceOrder(
                user_id=1, market_id=market_id, outcome=Outcome.YES, side=Side.BUY,
                quantity=1, price=5000, client_order_id=f"o{market_id}"), retry=True)
            assert placed[0][0] == "order" and placed[0][11] == "open", placed
            orders.append(placed[0][1])
        beat = await client.send("h", Heartbeat(user_id=1, timeout_ms=TIMEOUT_S * 1000),
                                 retry=False)
        deadline = beat[0][2]
        engine.kill9()

        await sleep_until(deadline + 200)
        seen = len(await bus.read(bus.events_stream(), "0-0", count=100_000))
        engine.start()

        async def since_restart() -> list[tuple]:  # the log only: nothing is sent
            entries = await bus.read(bus.events_stream(), "0-0", count=100_000)
            return [e for entry in entries[seen:] for e in decode_delivery(entry.payload).events]

        async def fired() -> bool:
            return any(e[0] == "dead_man" and e[2] is None for e in await since_restart())

        await wait_until(fired, 60, "the timers to fire at recovery")
        events = await since_restart()
        tick = next(e for e in events if e[0] == "clock")[1]
        assert tick >= deadline
        assert ("dead_man", 1, None, TIMEOUT_S * 1000, tick) in events
        reasons = {e[1]: e[18] for e in events if e[0] == "order"}
        assert reasons == {orders[0]: Reason.EVENT_CLOSED, orders[1]: Reason.DEAD_MAN_SWITCH}
        assert [e[2] for e in events if e[0] == "event"] == ["closed"]
        assert [e[1] for e in events if e[0] == "event"] == [closing_event]
        assert engine.terminate() == 0
    finally:
        engine.ensure_stopped()
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await bus.redis.delete(*keys)
        await bus.close()
