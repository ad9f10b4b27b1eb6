"""``/health`` answers from background checks: real faults show within the bound.

The bound (``server/health.py``): a dependency that dies or stalls is reported within
``health_interval_s + health_timeout_s``; a result older than that plus 1 s is reported
down as stale, never ok. Here the checks run every 0.5 s with a 1 s timeout (a bound of
1.5 s), and each fault is real: PostgreSQL cut off behind a ``TcpProxy`` (every
connection reset, new ones refused), a private Redis stopped with SIGSTOP (connections
open, nothing answered), a check stuck in a library that swallows its cancellation.
Each must be reported by its own check — its own error, not the stale fallback — within
the bound (plus ``SLACK_S`` for a test machine shared with other work), and heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import sqlalchemy as sa

from tests.bus.private_redis import PrivateRedis
from tests.server.faults import Services, TcpProxy
from tests.server.harness import Client, drop_schema, postgres_schema_url, start_server

INTERVAL_S = 0.5
TIMEOUT_S = 1.0
BOUND_S = INTERVAL_S + TIMEOUT_S
SLACK_S = 2.0  # scheduling on a loaded 2-core test machine, and the polling itself
FAST = {"health_interval_s": INTERVAL_S, "health_timeout_s": TIMEOUT_S}


async def _seen(client: Client, predicate, what: str) -> tuple[float, dict]:
    """Poll /health until ``predicate(status_code, body)``: the seconds it took and the
    body; fail past the bound."""
    started = time.monotonic()
    while True:
        r = await client.http.get("/health")
        elapsed = time.monotonic() - started
        if predicate(r.status_code, r.json()):
            return elapsed, r.json()
        assert elapsed < BOUND_S + SLACK_S, (
            f"{what}: not reported within {BOUND_S} s (+{SLACK_S} s slack): {r.text}")
        await asyncio.sleep(0.02)


def _statuses(body: dict, *names: str) -> tuple[str, ...]:
    return tuple(body["components"][n]["status"] for n in names)


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_database_cut_off_is_reported_within_the_bound_and_heals(tmp_path):
    base, schema = postgres_schema_url()
    url = sa.make_url(base)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    srv = await start_server("deployment", tmp_path, database_url=proxied,
                             auth_max_stale_s=120.0, **FAST)
    client = Client(srv)
    try:
        # Healthy first (a loaded machine can take one check past its 1 s timeout).
        _, body = await _seen(client, lambda code, b: code == 200, "healthy at start")
        assert body["checks"] == {"interval_s": INTERVAL_S, "timeout_s": TIMEOUT_S,
                                  "max_age_s": BOUND_S + 1.0}

        proxy.cut()
        took, body = await _seen(
            client, lambda code, b: code == 503 and _statuses(b, "database", "projection")
            == ("down", "down"), "the database cut off")
        database = body["components"]["database"]
        assert not database["detail"].startswith("stale"), database  # its own check saw it
        assert database["age_ms"] <= BOUND_S * 1000 + 1000, database
        assert body["components"]["projection"]["detail"].startswith(
            "cannot count parked events"), body["components"]["projection"]
        print(f"database cut off: reported after {took:.2f} s (bound {BOUND_S} s)")

        proxy.restore()
        await _seen(client, lambda code, b: code == 200 and _statuses(
            b, "database", "projection") == ("ok", "ok"), "the database back")
    finally:
        proxy.restore()
        await client.aclose()
        await srv.stop()
        proxy.close()
        drop_schema(schema)


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_stalled_redis_is_reported_within_the_bound_and_heals(tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    srv = await start_server("deployment", tmp_path, redis_url=redis.url, services=False,
                             **FAST)
    services = Services(srv.settings, tmp_path)
    client = Client(srv)
    try:
        await services.start_engine()
        await services.start_worker()
        await _seen(client, lambda code, b: code == 200, "healthy at first")

        redis.pause()  # SIGSTOP: open connections, no answers
        try:
            took, body = await _seen(
                client, lambda code, b: code == 503 and _statuses(b, "bus", "engine") ==
                ("down", "down"), "Redis stopped")
        finally:
            redis.resume()
        bus = body["components"]["bus"]
        assert bus["detail"] == f"no answer within {TIMEOUT_S:g} s", bus  # not stale
        assert not body["components"]["engine"]["detail"].startswith("stale")
        print(f"Redis stopped: reported after {took:.2f} s (bound {BOUND_S} s)")

        await _seen(client, lambda code, b: _statuses(b, "bus") == ("ok",),
                    "Redis answering again")
    finally:
        await client.aclose()
        await services.close()
        await srv.stop()
        redis.kill()


async def test_a_stuck_check_is_reported_stale_never_ok(tmp_path, monkeypatch):
    """The bus check stuck in a call that swallows its cancellation: its last result
    ages, and once older than ``max_age_s`` the bus is down (503) — /health never goes
    on saying ok from it."""
    srv = await start_server("embedded", tmp_path, **FAST)
    client = Client(srv)
    bus = srv.runtime.bus
    release = asyncio.Event()
    real = bus.last_id

    async def stuck(stream):
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return await real(stream)

    try:
        r = await client.http.get("/health")
        assert r.status_code == 200, r.text
        max_age_ms = r.json()["checks"]["max_age_s"] * 1000
        monkeypatch.setattr(bus, "last_id", stuck)
        ages = []

        def stale(code: int, body: dict) -> bool:
            component = body["components"]["bus"]
            if component["status"] == "ok":
                ages.append(component["age_ms"])
            return code == 503 and component["status"] == "down"
        started = time.monotonic()
        while True:  # past the bound, not within it: poll until stale
            r = await client.http.get("/health")
            if stale(r.status_code, r.json()):
                break
            assert time.monotonic() - started < max_age_ms / 1000 + SLACK_S, r.text
            await asyncio.sleep(0.02)
        component = r.json()["components"]["bus"]
        assert all(age <= max_age_ms for age in ages), ages  # ok only while fresh
        assert component["age_ms"] > max_age_ms
        assert component["detail"].startswith("stale: last checked "), component
        assert "an attempt has been running for" in component["detail"]
        assert "; it said ok: event stream at " in component["detail"]
        # The others go on being checked: fresh results (whatever a loaded machine made
        # of them within their own timeouts), never stale.
        database = r.json()["components"]["database"]
        assert database["age_ms"] <= max_age_ms, database
        assert not database["detail"].startswith("stale"), database

        release.set()
        await _seen(client, lambda code, b: code == 200, "a fresh bus result")
    finally:
        release.set()
        await client.aclose()
        await srv.stop()
