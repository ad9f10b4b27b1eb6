"""A real pmarket server on a free loopback port, embedded or over Redis + PostgreSQL.

``start_server(kind, tmp)`` runs uvicorn in the test's event loop: ``embedded`` is the
zero-configuration exchange (SQLite file, in-process bus, engine and worker inside the
server); ``deployment`` runs the engine service and the worker as separate tasks with
their own bus connections, and the server with ``redis_url`` — the multi-process layout in
one loop — on a unique Redis key prefix and a PostgreSQL schema of its own.
``Client`` wraps httpx with the few helpers every test needs (sign up, fund, create an
event).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from pmarket.bus import make_bus
from pmarket.db import make_engine, upgrade
from pmarket.runtime.runner import now_ms
from pmarket.server import Settings, create_app
from pmarket.server.connections import server_options
from tests.services import postgres_url_or_skip, redis_url_or_skip

SECRET = "test-secret-" + "x9Qz3kLm" * 5
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "harness operator key"


class Clock:
    """The engine service's wall clock plus an offset a test pushes forward."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return now_ms() + self.offset


def pushed_clock(service) -> Clock:
    """Give an engine service a ``Clock`` tests move forward, ticking soon after a jump
    (the default checks every 1 s)."""
    clock = Clock()
    service.clock = clock
    service.expire_every_s = 0.02
    return clock


def iso(at_ms: int) -> str:
    """Unix milliseconds as the API's ISO 8601 text."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the server process ``proc`` on ``port`` answers ``/health`` 200
    (fails at once if the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not become healthy")


def postgres_schema_url() -> tuple[str, str]:
    """A fresh PostgreSQL schema and a URL whose search_path selects it."""
    base = postgres_url_or_skip()
    schema = f"pmt_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    finally:
        admin.dispose()
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    admin = sa.create_engine(postgres_url_or_skip())
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        admin.dispose()


@dataclass
class Server:
    """A running server and what it runs on."""

    kind: str
    url: str
    settings: Settings
    app: Any
    uvicorn: uvicorn.Server
    task: asyncio.Task
    extra_tasks: list[asyncio.Task] = field(default_factory=list)
    stop_services: asyncio.Event = field(default_factory=asyncio.Event)
    cleanup: list[Any] = field(default_factory=list)
    deployment_engine: Any = None  # the deployment's engine service (run by the harness)

    @property
    def runtime(self):
        return self.app.state.runtime

    @property
    def engine_service(self):
        """The engine service of either kind (its ``clock`` may be replaced in tests)."""
        return self.deployment_engine or self.runtime.service

    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    async def stop(self) -> None:
        self.uvicorn.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 15)
        self.stop_services.set()
        for task in self.extra_tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        for fn in self.cleanup:
            result = fn()
            if asyncio.iscoroutine(result):
                await result


async def start_server(kind: str, directory: Path, **overrides: Any) -> Server:
    """Start a server of ``kind`` ("embedded" or "deployment") and wait until it serves."""
    base = dict(jwt_secret=SECRET, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
                bcrypt_rounds=4, log_requests=False, rate_limit_per_s=10_000.0,
                rate_limit_burst=10_000, public_rate_limit_per_s=10_000.0,
                public_rate_limit_burst=10_000, auth_rate_limit_per_s=10_000.0,
                auth_rate_limit_burst=10_000, ws_subscribe_per_s=10_000.0,
                ws_subscribe_burst=10_000, ws_max_connections_per_address=10_000,
                ws_messages_per_s=10_000.0, ws_messages_burst=10_000,
                snapshot_dir=str(directory / "snapshots"))
    base.update(overrides)
    extra: list[asyncio.Task] = []
    cleanup: list[Any] = []
    services: list[Any] = []
    stop_services = asyncio.Event()
    if kind == "embedded":
        base.setdefault("database_url", f"sqlite:///{directory / 'pmarket.db'}")
        settings = Settings(**base).with_secret()
    else:
        # ``redis_url`` (a private Redis) and ``services=False`` (the test runs the
        # engine and the worker itself, see tests/server/faults.py) serve fault tests.
        redis_url = base.pop("redis_url", None) or redis_url_or_skip()
        with_services = base.pop("services", True)
        if "database_url" not in base:
            db_url, schema = postgres_schema_url()
            base["database_url"] = db_url
            cleanup.append(lambda: drop_schema(schema))
        base.setdefault("bus_prefix", f"pmt-{uuid.uuid4().hex[:10]}")
        settings = Settings(redis_url=redis_url, **base).with_secret()
        if with_services:
            extra += await start_services(settings, directory, stop_services, cleanup,
                                          services)
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            loop="none", lifespan="on", **server_options(app))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    else:
        raise RuntimeError("server did not start")
    return Server(kind, f"http://127.0.0.1:{port}", settings, app, server, task, extra,
                  stop_services, cleanup, services[0] if services else None)


async def start_services(settings: Settings, directory: Path, stop: asyncio.Event,
                         cleanup: list[Any], services: list[Any] | None = None
                         ) -> list[asyncio.Task]:
    """The engine service and the worker of a deployment, each on its own bus client
    (the engine service is appended to ``services``)."""
    from pmarket.runtime.service import EngineService
    from pmarket.worker import Worker

    await asyncio.to_thread(upgrade, settings.database_url)
    engine_bus = make_bus(settings.redis_url, prefix=settings.bus_prefix)
    worker_bus = make_bus(settings.redis_url, prefix=settings.bus_prefix)
    db = make_engine(settings.database_url)
    service = EngineService(engine_bus, snapshot_dir=directory / "engine-snapshots")
    worker = Worker(worker_bus, db, block_ms=50)
    tasks = [asyncio.create_task(service.run(stop)), asyncio.create_task(worker.run(stop))]
    await service.ready.wait()
    if services is not None:
        services.append(service)

    async def close() -> None:
        await engine_bus.delete_streams(engine_bus.commands_stream(),
                                        engine_bus.events_stream())
        await engine_bus.close()
        await worker_bus.close()
        db.dispose()

    cleanup.append(close)
    return tasks


class Client:
    """httpx against a test server, with helpers for the usual set-up steps."""

    def __init__(self, server: Server):
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=30)
        self._admin: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def user(self, name: str = "trader", cash: str | None = "1000") -> tuple[str, int]:
        """Sign up a new user (unique email), fund them; their token and id."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        r = await self.http.post("/auth/signup", json={"email": email, "name": name,
                                                       "password": "harness trader key"})
        assert r.status_code == 201, r.text
        token, uid = r.json()["token"], r.json()["user"]["id"]
        if cash is not None:
            r = await self.http.post("/onramp", json={"amount": cash},
                                     headers=self.auth(token))
            assert r.status_code == 200, r.text
        return token, uid

    async def admin(self) -> str:
        if self._admin is None:
            r = await self.http.post("/auth/admin/signin", json={
                "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert r.status_code == 200, r.text
            self._admin = r.json()["token"]
        return self._admin

    async def event(self, outcomes: list[str] | None = None, **fields: Any) -> dict:
        """Create an event as admin; its JSON."""
        body = {"title": fields.pop("title", f"Event {uuid.uuid4().hex[:6]}"), **fields}
        if outcomes is not None:
            body["outcomes"] = outcomes
        r = await self.http.post("/admin/events", json=body,
                                 headers=self.auth(await self.admin()))
        assert r.status_code == 201, r.text
        return r.json()

    async def market(self, **fields: Any) -> int:
        """A fresh single-outcome market's id."""
        return (await self.event(**fields))["outcomes"][0]["market_id"]

    async def order(self, token: str, market_id: int, outcome: str, side: str, price: str,
                    quantity: int, expect: int = 201, **fields: Any) -> dict:
        body = {"market_id": market_id, "outcome": outcome, "side": side, "price": price,
                "quantity": quantity, **fields}
        r = await self.http.post("/orders", json=body, headers=self.auth(token))
        assert r.status_code == expect, r.text
        return r.json()


class ServeProcess:
    """``pmarket serve`` as a real process (embedded: SQLite in ``cwd``), to kill -9 and
    start again; ``url`` makes it a target for ``Client``."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "PMARKET_JWT_SECRET": SECRET,
                    "PMARKET_ADMIN_EMAIL": ADMIN_EMAIL, "PMARKET_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "PMARKET_BCRYPT_ROUNDS": "4", "PMARKET_LOG_REQUESTS": "0"}
        self.env.pop("PMARKET_REDIS_URL", None)
        self.env.pop("PMARKET_DATABASE_URL", None)
        self.cmd = [sys.executable, "-c", "from pmarket.cli import main; main()", "serve",
                    "--port", str(port), "--log-level", "warning"]
        self.proc: subprocess.Popen | None = None

    async def start(self, timeout_s: float = 60) -> None:
        """Start the process and wait until ``/health`` answers 200."""
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with httpx.AsyncClient() as h:
                    if (await h.get(f"{self.url}/health")).status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("server did not come up")

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
