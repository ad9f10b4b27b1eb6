"""The embedded engine dies of an exception and comes back (``runtime.supervised``).

An outside probe left the embedded engine task dead for good (then through a snapshot
the file system refused, since fixed): the server went on answering every order with a
timeout. Now the task that runs the engine recovers a new engine from the snapshot and
the log, as a process restart would, and takes over the commands in flight. These tests
make the real engine service raise in the middle of a batch, on a real server, and then
check that every acknowledged order is there, that the order in flight is applied once,
and that a command that crashes the engine every time ends dead-lettered and answered.
"""

from __future__ import annotations

import asyncio

from pmarket.runtime.service import EngineService

from .harness import Client, start_server


class Crash(RuntimeError):
    """The injected failure (a broken invariant, as far as the service knows)."""


def crash_when(monkeypatch, predicate):
    """Make ``EngineService._apply`` raise ``Crash`` for a batch ``predicate(messages,
    service)`` picks; the calls it let through and the crashes, counted."""
    original = EngineService._apply
    seen = {"crashes": 0}

    async def _apply(self, messages, read_next=False):
        if predicate(messages, self):
            seen["crashes"] += 1
            raise Crash(f"injected crash {seen['crashes']}")
        return await original(self, messages, read_next)

    monkeypatch.setattr(EngineService, "_apply", _apply)
    return seen


async def open_orders(client: Client, token: str) -> list[dict]:
    r = await client.http.get("/orders", params={"status": "open", "limit": 500},
                              headers=client.auth(token))
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_a_crashed_engine_is_recovered_and_the_order_in_flight_applied_once(
        tmp_path, monkeypatch):
    server = await start_server("embedded", tmp_path)
    client = Client(server)
    try:
        token, _ = await client.user(cash="1000")
        market = await client.market()
        placed = [await client.order(token, market, "yes", "buy", f"0.{10 + k}", 10)
                  for k in range(5)]
        first = server.runtime.service
        armed = {"on": True}

        def once(messages, service):
            if armed["on"] and any(b"crash-me" in m.payload for m in messages):
                armed["on"] = False
                return True
            return False

        seen = crash_when(monkeypatch, once)
        in_flight = await client.order(token, market, "yes", "buy", "0.30", 10,
                                       client_order_id="crash-me")
        assert seen["crashes"] == 1
        engine = server.runtime.engine
        assert engine.restarts == 1 and server.runtime.service is not first
        assert "injected crash 1" in engine.last_error
        ids = {o["id"] for o in await open_orders(client, token)}
        assert ids == {p["order"]["id"] for p in [*placed, in_flight]}  # once, and all
        balance = (await client.http.get("/balance", headers=client.auth(token))).json()
        locked = sum(int(f"{10 + k}") for k in range(5)) * 10 + 300  # cents of 0.xx * 10
        assert balance["available"] == f"{1000 - locked / 100:.4f}", balance
        r = await client.http.get("/health")
        health = r.json()["components"]["engine"]
        assert health["status"] == "degraded" and health["restarts"] == 1, health
        assert "injected crash 1" in health["detail"]
        after = await client.order(token, market, "no", "buy", "0.50", 1)
        assert after["order"]["status"] == "open"
    finally:
        await client.aclose()
        await server.stop()


async def test_a_command_that_crashes_every_engine_is_dead_lettered_and_answered(
        tmp_path, monkeypatch):
    server = await start_server("embedded", tmp_path)
    client = Client(server)
    try:
        engine = server.runtime.engine
        engine.backoff_s = engine.max_backoff_s = 0.01  # ten restarts in moments
        token, _ = await client.user(cash="1000")
        market = await client.market()
        before = await client.order(token, market, "yes", "buy", "0.20", 10)

        def poison(messages, service):  # until the service gives up on it
            return any(b"poison" in m.payload and m.deliveries <= service.max_deliveries
                       for m in messages)

        seen = crash_when(monkeypatch, poison)
        engine.service.batch_size = 1_000  # so that the poison and the others share one

        async def innocent(k: int) -> dict:
            await asyncio.sleep(0)  # behind the poison
            return await client.order(token, market, "no", "buy", f"0.{30 + k}", 1)

        r, *others = await asyncio.gather(
            client.http.post("/orders", headers=client.auth(token), json={
                "market_id": market, "outcome": "yes", "side": "buy", "price": "0.25",
                "quantity": 10, "client_order_id": "poison"}),
            *(innocent(k) for k in range(3)))
        assert r.status_code not in (201, 500, 504), r.text
        # Redelivered commands are applied one a batch: the others were not taken down.
        assert all(o["order"]["status"] == "open" for o in others)
        # Each recovery takes it over and reads it again (two deliveries a restart): it
        # is dead-lettered once delivered more than max_deliveries (10) times.
        assert seen["crashes"] == engine.restarts == 5
        assert server.runtime.service.stats.dead_letters == 1
        await asyncio.sleep(0)
        after = await client.order(token, market, "yes", "buy", "0.21", 10)
        ids = {o["id"] for o in await open_orders(client, token)}
        assert ids == {before["order"]["id"], after["order"]["id"],
                       *(o["order"]["id"] for o in others)}
    finally:
        await client.aclose()
        await server.stop()


def test_restarts_back_off_for_quick_deaths_and_reset_after_a_stable_run(caplog):
    """Each quick death doubles the delay; an engine that served ``stable_s`` resets it."""
    from pmarket.runtime.supervised import RestartingEngine

    lifetimes = iter([0.0, 0.0, 0.0, 0.12, 0.0])
    stop = asyncio.Event()

    class Dies:
        def __init__(self):
            self.ready = asyncio.Event()
            self.lifetime = next(lifetimes, None)
            self.engine = type("Engine", (), {"last_seq": 0})()

        async def run(self, stop_):
            if self.lifetime is None:
                stop.set()
                return
            self.ready.set()
            await asyncio.sleep(self.lifetime)
            raise Crash("boom")

        async def abandon(self):
            pass

    engine = RestartingEngine(Dies, backoff_s=0.01, max_backoff_s=0.03, stable_s=0.1)
    with caplog.at_level("ERROR", "pmarket.runtime.supervised"):
        asyncio.run(engine.run(stop))
    delays = [r.getMessage().split(" in ")[1].split("s ")[0] for r in caplog.records
              if r.name == "pmarket.runtime.supervised"]
    assert delays == ["0.01", "0.02", "0.03", "0.01", "0.02"]
    assert engine.restarts == 5 and "Crash: boom" in engine.last_error
