"""/health reports each component truthfully; /metrics speaks Prometheus."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


CHECKED = ("engine", "database", "bus", "projection", "worker")  # in the background


async def test_health_reports_every_component_ok(client, server):
    r = await client.http.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    for name in ("engine", "database", "bus", "marketdata", "worker", "projection",
                 "readmodel", "auth"):
        assert body["components"][name]["status"] == "ok", name
    if server.kind == "embedded":  # a child process by default (PMARKET_WORKER_PROCESS)
        assert body["components"]["worker"]["detail"].startswith(
            "embedded worker process (pid ")
    bounds = body["checks"]
    assert bounds == {"interval_s": 1.0, "timeout_s": 2.0, "max_age_s": 4.0}
    for name in CHECKED:  # each says how old its result is, within the bound
        component = body["components"][name]
        assert 0 <= component["age_ms"] <= bounds["max_age_s"] * 1000, name
        assert component["check_ms"] >= 0, name
    assert body["components"]["engine"]["round_trip_ms"] > 0
    assert r.headers["x-request-id"]


async def test_health_names_the_engine_build_that_runs(client):
    from pmarket.runtime import compiled

    engine = (await client.http.get("/health")).json()["components"]["engine"]
    assert engine["build"] == compiled.mode  # the engine runs in this process here
    assert engine["build"] in ("compiled", "pure")


async def test_health_answers_without_waiting_for_its_checks(client, server, monkeypatch):
    """While the database check hangs, /health answers at once from the latest results,
    each with its age; the hung check's age grows (and past ``max_age_s`` it would be
    reported stale, see test_health.py)."""
    runtime = server.runtime
    hanging = asyncio.Event()
    release = asyncio.Event()
    real = runtime.check_database

    async def hangs():
        hanging.set()
        await release.wait()
        return await real()

    monkeypatch.setattr(runtime, "check_database", hangs)
    try:
        await asyncio.wait_for(hanging.wait(), 10)
        first = (await client.http.get("/health")).json()["components"]["database"]
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        r = await client.http.get("/health")
        answered_s = time.perf_counter() - started
        database = r.json()["components"]["database"]
        # The attempt waits for ``release`` until its 2 s timeout: the answer did not.
        assert answered_s < 1.5, answered_s
        if database["status"] == "ok":  # the attempt has not timed out yet
            assert database["age_ms"] >= first["age_ms"] + 250
    finally:
        release.set()


async def test_metrics_count_requests_orders_and_trades(client):
    market = await client.market()
    a, _ = await client.user()
    b, _ = await client.user()
    await client.order(a, market, "yes", "buy", "0.5", 1)
    await client.order(b, market, "no", "buy", "0.5", 1)
    r = await client.http.get("/health")
    text = (await client.http.get("/metrics")).text
    assert 'pmarket_http_requests_total{method="POST",route="/orders",status="201"}' in text
    assert 'pmarket_orders_total{result="accepted"}' in text
    assert "pmarket_trades_total" in text and "pmarket_http_request_duration_seconds" in text
    assert r.status_code == 200


async def test_request_id_is_echoed(client):
    r = await client.http.get("/events", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
