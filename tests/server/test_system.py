"""/health reports each component truthfully; /metrics speaks Prometheus."""

from __future__ import annotations

import asyncio

import pytest

from pmarket.server.routes import system

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_health_reports_every_component_ok(client, server):
    r = await client.http.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    for name in ("engine", "database", "bus", "marketdata", "worker"):
        assert body["components"][name]["status"] == "ok"
    if server.kind == "embedded":  # a child process by default (PMARKET_WORKER_PROCESS)
        assert body["components"]["worker"]["detail"].startswith(
            "embedded worker process (pid ")
    assert r.headers["x-request-id"]


async def test_health_names_the_engine_build_that_runs(client):
    from pmarket.runtime import compiled

    engine = (await client.http.get("/health")).json()["components"]["engine"]
    assert engine["build"] == compiled.mode  # the engine runs in this process here
    assert engine["build"] in ("compiled", "pure")


async def test_health_runs_its_checks_concurrently(client, server, monkeypatch):
    """On a busy server each check waits for a thread or the event loop's next turn:
    run one after another they added up to 50-100 ms. Here the database check finishes
    only once the projection check has started, and the engine's only once the
    database's has: run in sequence, /health would wait for its checks' timeouts."""
    runtime = server.runtime
    started = {name: asyncio.Event() for name in ("database", "projection", "engine")}

    def after(name, first, real):
        async def check(*args, **kwargs):
            started[name].set()
            await asyncio.wait_for(started[first].wait(), 5)
            return await real(*args, **kwargs)
        return check

    monkeypatch.setattr(runtime, "check_database",
                        after("database", "projection", runtime.check_database))
    monkeypatch.setattr(system, "projection_health",
                        after("projection", "engine", system.projection_health))
    monkeypatch.setattr(system, "_engine", after("engine", "database", system._engine))
    r = await client.http.get("/health")
    assert r.status_code == 200, r.text
    assert all(e.is_set() for e in started.values())
    assert {c["status"] for c in r.json()["components"].values()} == {"ok"}


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
