"""Supervision of a deployment: dead servers' groups are reaped, a live one never; a
server whose group was taken resynchronises without losing an update; a stalled worker
shows in ``/health`` and makes reads after writes fail fast instead of serving stale data.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import websockets

from pmarket.bus import make_bus
from tests.server.faults import Services, recv, until
from tests.server.harness import Client, start_server

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


async def _group_names(bus) -> set[str]:
    return {g.name for g in await bus.groups(bus.events_stream())}


async def test_a_crashed_servers_group_is_reaped_and_trimming_proceeds(tmp_path):
    srv = await start_server("deployment", tmp_path, reap_groups_after_s=0.5)
    client = Client(srv)
    crashed = make_bus(srv.settings.redis_url, prefix=srv.settings.bus_prefix,
                       instance="crashed")
    try:
        stream = crashed.events_stream()
        # A server that read part of the stream, then died without deleting its group.
        await crashed.keep_alive(60_000)
        await crashed.ensure_group(stream, crashed.server_group(), "0")
        market = await client.market()
        token, _ = await client.user()
        for price in ("0.31", "0.32", "0.33"):
            await client.order(token, market, "yes", "buy", price, 1)
        held = await crashed.read_events(crashed.server_group(), "crashed", count=1)
        assert len(held) == 1
        assert await client.http.get("/orders", headers=client.auth(token))  # projected
        await crashed.keep_alive(1)  # its mark expires now: the process is gone

        async def reaped() -> bool:
            return "server-crashed" not in await _group_names(crashed)
        await until(reaped, what="the crashed server's group was reaped")
        assert srv.runtime.supervisor.reaped == ["server-crashed"]

        # What the engine does after a snapshot: park its group at the head, then trim.
        head = await crashed.last_id(stream)
        await crashed.set_group_position(stream, "engine-snapshot", head)
        length = await crashed.length(stream)

        async def trimmed() -> bool:
            await crashed.trim(stream, approximate=False)
            return await crashed.length(stream) < length
        await until(trimmed, what="trimming past the crashed server's position")
        # The live server, idle for longer than the threshold, keeps its group.
        assert srv.runtime.group in await _group_names(crashed)
        assert (await client.http.get("/health")).status_code == 200
    finally:
        await crashed.close()
        await client.aclose()
        await srv.stop()


async def test_a_live_idle_server_keeps_its_group_across_many_reaping_rounds(tmp_path):
    srv = await start_server("deployment", tmp_path, reap_groups_after_s=1.5)
    other = await start_server("deployment", tmp_path / "other", reap_groups_after_s=1.5,
                               bus_prefix=srv.settings.bus_prefix, services=False,
                               database_url=srv.settings.database_url)
    watcher = make_bus(srv.settings.redis_url, prefix=srv.settings.bus_prefix)
    try:
        groups = {srv.runtime.group, other.runtime.group}
        deadline = time.monotonic() + 3.5  # several reaping rounds of each server
        while time.monotonic() < deadline:
            assert groups <= await _group_names(watcher)
            await asyncio.sleep(0.05)
        assert srv.runtime.supervisor.reaped == other.runtime.supervisor.reaped == []
    finally:
        await watcher.close()
        await other.stop()
        await srv.stop()


async def test_a_server_whose_group_was_taken_resyncs_without_losing_updates(tmp_path):
    srv = await start_server("deployment", tmp_path)
    client = Client(srv)
    bus = make_bus(srv.settings.redis_url, prefix=srv.settings.bus_prefix)
    try:
        market = await client.market()
        maker, _ = await client.user()
        await client.order(maker, market, "yes", "buy", "0.40", 3)
        async with websockets.connect(srv.ws_url()) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"book:{market}"]}))
            snapshot = await recv(ws)
            # As if this server had stalled past its mark and another one reaped it.
            assert await bus.delete_group(bus.events_stream(), srv.runtime.group)
            await client.order(maker, market, "yes", "buy", "0.41", 2)
            bids = {x["price"]: x["quantity"] for x in snapshot["data"]["bids"]}
            sequence, kinds = snapshot["sequence"], []
            while bids != {"0.40": 3, "0.41": 2}:
                msg = await recv(ws)
                assert msg["sequence"] == sequence + 1, msg
                sequence = msg["sequence"]
                kinds.append(msg["type"])
                if msg["type"] == "snapshot":
                    bids = {x["price"]: x["quantity"] for x in msg["data"]["bids"]}
                else:
                    for change in msg["data"]["changes"]:
                        bids[change["price"]] = change["quantity"]
            assert "snapshot" in kinds
        assert srv.runtime.replica.resyncs == 1
        assert srv.runtime.group in await _group_names(bus)
        book = (await client.http.get(f"/markets/{market}/orderbook")).json()
        assert book["bids"] == [{"price": "0.41", "quantity": 2},
                                {"price": "0.40", "quantity": 3}]
    finally:
        await bus.close()
        await client.aclose()
        await srv.stop()


async def test_a_stalled_worker_is_named_in_health_and_reads_fail_fast(tmp_path):
    # A read that waited for the projection would take consistency_timeout_s (30 s).
    srv = await start_server("deployment", tmp_path, services=False, worker_stall_s=1.0,
                             consistency_timeout_s=30.0)
    services = Services(srv.settings, tmp_path)
    client = Client(srv)
    try:
        await services.start_engine()
        await services.start_worker()
        market = await client.market()
        token, _ = await client.user()
        auth = client.auth(token)
        first = (await client.order(token, market, "yes", "buy", "0.40", 1))["order"]["id"]
        assert (await client.http.get("/orders", headers=auth)).status_code == 200

        await services.stop("worker")
        second = (await client.order(token, market, "yes", "buy", "0.41", 1))["order"]["id"]

        async def worker_stalled() -> bool:
            r = await client.http.get("/health")
            worker = r.json()["components"]["worker"]
            # degraded, not down: every server shares the worker (the answer stays 200)
            return r.status_code == 200 and r.json()["status"] == "degraded" \
                and worker["status"] == "degraded" and "no progress" in worker["detail"]
        await until(worker_stalled, what="/health names the stalled worker")
        r = await client.http.get(f"/orders/{second}", headers=auth)  # open: read model
        assert r.status_code == 200 and r.json()["id"] == second, r.text
        started = time.monotonic()
        r = await client.http.get("/orders", headers=auth)  # history: never a stale list
        assert time.monotonic() - started < 15, "a known stall must not be waited for"
        assert r.status_code == 503 and r.json()["error"]["code"] == "projection_stalled"
        assert int(r.headers["retry-after"]) >= 1

        await services.start_worker()

        async def readable() -> bool:
            r = await client.http.get("/orders", headers=auth)
            return r.status_code == 200 and {o["id"] for o in r.json()["items"]} == {
                first, second}
        await until(readable, what="the orders are readable again")
        assert (await client.http.get("/health")).status_code == 200
    finally:
        await client.aclose()
        await services.close()
        await srv.stop()
