"""HTTP load generator: many users placing and cancelling orders against a live server.

``run(options)`` starts ``pmarket serve`` in a subprocess (embedded, or beside
``pmarket engine`` and ``pmarket worker`` on Redis + PostgreSQL), signs up ``users``
funded traders and one market, then for ``seconds`` each trader loops over its own
keep-alive HTTP/1.1 connection: place a limit order around 0.50 (buys of YES and of NO,
so about a third cross and trade), and every third step cancel its oldest open order. A
WebSocket subscriber on ``trades:{market}`` measures how long after the engine stamped
a trade it arrives. The client speaks raw HTTP/1.1 on asyncio streams so the generator
costs far less CPU than the server it measures (httpx would dominate a 2-core box).

Then, unless ``reads`` is off, the read mix (``reads``): balance, positions, open
orders, portfolio, events and an order book, each path in turn over 32 connections with
the users' tokens rotating, measured by wrk when it is installed. ``server_python``
runs the server from another interpreter (another checkout's ``.venv``), so one
benchmark measures two builds the same way.

Invariant: only 2xx/4xx-by-design answers count as orders; any other status aborts the
run, so a figure is never computed from failing requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import websockets

from . import abuse as abuse_mix
from . import reads as read_mix
from .rawhttp import RawHttp
from .services import ThrowawayDatabase, delete_keys

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench admin password"


@dataclass
class Options:
    """What to run: server kind, load shape and duration."""

    users: int = 64
    seconds: float = 15.0
    warmup_s: float = 2.0
    redis_url: str | None = None
    database_url: str | None = None
    seed: int = 1
    reads: bool = True
    read_seconds: float = 8.0
    read_connections: int = 32
    generator: str = "auto"
    server_python: str | None = None
    api_keys: bool = False  # users act with API keys (read and trade), not tokens
    abuse: list[str] = field(default_factory=list)
    """Abuse mixes to run after the read mix (``abuse.MIXES``); none: no abuse phase."""
    abuse_seconds: float = 8.0
    flood_clients: int = 20
    book_levels: int = 1000
    repeat: int = 100
    cancel_all_accounts: int = abuse_mix.CANCEL_ALL_ACCOUNTS
    cancel_all_orders: int = abuse_mix.CANCEL_ALL_ORDERS
    sweep_levels: int = abuse_mix.SWEEP_LEVELS
    """Levels the ``sweep`` abuse mix's maker fills and its taker takes with one order."""
    slow_connections: int = abuse_mix.SLOW_CONNECTIONS
    """Half-sent requests the ``slow`` abuse mixes keep open."""
    history_orders: int = 200_000
    """Closed orders of the account the ``history`` abuse mix pages."""
    bcrypt_rounds: int | None = None
    """The server's bcrypt cost; None: 4 (quick sign-ups), or its default with ``abuse``."""


@dataclass
class Result:
    """Figures of one run."""

    mode: str
    users: int
    seconds: float
    orders: int = 0
    placements: int = 0
    cancels: int = 0
    trades_seen: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ws_latencies_ms: list[float] = field(default_factory=list)
    reads: read_mix.ReadMix | None = None
    credentials: str = "tokens"
    abuse: abuse_mix.Abuse | None = None

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0

    def pct(self, values: list[float], q: float) -> float | None:
        return read_mix.percentile(sorted(values), q)

    def as_dict(self) -> dict:
        lat, ws = self.latencies_ms, self.ws_latencies_ms
        return {
            "mode": self.mode, "users": self.users, "seconds": round(self.seconds, 2),
            "credentials": self.credentials,
            "orders": self.orders, "placements": self.placements, "cancels": self.cancels,
            "orders_per_s": round(self.orders_per_s, 1),
            "p50_ms": self.pct(lat, 0.5), "p99_ms": self.pct(lat, 0.99),
            "max_ms": max(lat) if lat else None, "trades_seen": self.trades_seen,
            "ws_trade_p50_ms": self.pct(ws, 0.5), "ws_trade_p99_ms": self.pct(ws, 0.99),
            "reads": self.reads.as_dict() if self.reads is not None else None,
            "abuse": self.abuse.as_dict() if self.abuse is not None else None,
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-c", "from pmarket.cli import main; main()", *args]


def server_env(options: Options) -> dict[str, str]:
    """The server's environment: the per-user and public market-data limits lifted (the
    read mix's connections all come from one address); without abuse mixes the sign-up
    limits and bcrypt cost too (quick set-up), with them those stay at their defaults —
    the floods must meet what a real server has."""
    env = {**os.environ, "PMARKET_JWT_SECRET": secrets.token_urlsafe(48),
           "PMARKET_ADMIN_EMAIL": ADMIN_EMAIL, "PMARKET_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "PMARKET_RATE_LIMIT_PER_S": "1000000", "PMARKET_RATE_LIMIT_BURST": "1000000",
           "PMARKET_LOG_REQUESTS": "0",
           "PMARKET_PUBLIC_RATE_LIMIT_PER_S": "1000000",
           "PMARKET_PUBLIC_RATE_LIMIT_BURST": "1000000"}
    for name in ("AUTH_RATE_LIMIT_PER_S", "AUTH_RATE_LIMIT_BURST", "BCRYPT_ROUNDS",
                 "BCRYPT_THREADS", "BCRYPT_MAX_WAITING", "SIGNIN_FREE_FAILURES",
                 "SIGNIN_ADDRESS_FREE_FAILURES", "SIGNIN_LOCKOUT_S", "SIGNIN_LOCKOUT_MAX_S",
                 "WS_MAX_CHANNELS", "WS_MAX_CONNECTIONS_PER_IP", "WS_SUBSCRIBE_PER_S",
                 "WS_SUBSCRIBE_BURST"):
        env.pop(f"PMARKET_{name}", None)  # the defaults, not this shell's settings
    if not options.abuse:
        env |= {"PMARKET_AUTH_RATE_LIMIT_PER_S": "1000000",
                "PMARKET_AUTH_RATE_LIMIT_BURST": "1000000", "PMARKET_BCRYPT_ROUNDS": "4"}
    if options.bcrypt_rounds is not None:
        env["PMARKET_BCRYPT_ROUNDS"] = str(options.bcrypt_rounds)
    return env


def start_processes(options: Options, workdir: Path, port: int, database_url: str,
                    redis_prefix: str) -> list[subprocess.Popen]:
    """``pmarket serve`` (and, for a deployment, ``engine`` and ``worker``) on
    ``database_url`` and, for a deployment, the Redis keys under ``redis_prefix``."""
    env = server_env(options)
    env.pop("PMARKET_REDIS_URL", None)
    env["PMARKET_DATABASE_URL"] = database_url
    procs = []
    python = options.server_python
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": workdir}
    if options.redis_url:
        env["PMARKET_REDIS_URL"] = options.redis_url
        env["PMARKET_REDIS_PREFIX"] = redis_prefix
        from pmarket.db import upgrade
        upgrade(env["PMARKET_DATABASE_URL"])
        procs.append(subprocess.Popen(_cli("engine", "--snapshot-dir", str(workdir / "snap"),
                                           "--log-level", "warning", python=python),
                                      env=env, **quiet))
        procs.append(subprocess.Popen(_cli("worker", "--database-url",
                                           env["PMARKET_DATABASE_URL"], "--log-level",
                                           "warning", python=python), env=env, **quiet))
    procs.append(subprocess.Popen(_cli("serve", "--port", str(port), "--no-access-log",
                                       "--log-level", "warning", python=python),
                                  env=env, **quiet))
    return procs


async def _wait_ready(base: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base) as h:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await h.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.25)
    raise RuntimeError("the server did not become healthy")


async def _setup(base: str, users: int, api_keys: bool = False
                 ) -> tuple[int, list[str], list[str], str]:
    """The bench market and ``users`` funded traders (signed up from a few addresses,
    ``abuse.setup_address``, within the default per-address sign-up limit): the market,
    their credentials (tokens, or API keys with ``api_keys``) and e-mails, and the
    admin's token."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}

        def client(address: str | None = None) -> httpx.AsyncClient:
            if address not in clients:
                # Sign-ups at the real bcrypt cost leave connections idle for seconds:
                # drop them before the server's keep-alive timeout (5 s) closes them
                # under a request.
                transport = httpx.AsyncHTTPTransport(
                    local_address=address, limits=httpx.Limits(keepalive_expiry=1.0))
                clients[address] = httpx.AsyncClient(base_url=base, timeout=120,
                                                     transport=transport)
                stack.push_async_callback(clients[address].aclose)
            return clients[address]

        h = client()
        r = await h.post("/auth/admin/signin", json={"email": ADMIN_EMAIL,
                                                     "password": ADMIN_PASSWORD})
        admin_token = r.json()["token"]
        admin = {"Authorization": f"Bearer {admin_token}"}
        r = await h.post("/admin/events", json={"title": "Bench market"}, headers=admin)
        market = r.json()["outcomes"][0]["market_id"]
        emails = [f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(users)]

        hashing = asyncio.Semaphore(8)  # within the server's bcrypt queue (32 waiting)

        async def one(i: int) -> str:
            async with hashing:
                r = await client(abuse_mix.setup_address(i)).post("/auth/signup", json={
                    "email": emails[i], "name": f"b{i}", "password": "bench password"})
            r.raise_for_status()
            token = r.json()["token"]
            await h.post("/onramp", json={"amount": "1000000"},
                         headers={"Authorization": f"Bearer {token}"})
            if api_keys:  # from here on the user acts with a key
                r = await h.post("/api-keys", json={"name": "bench", "scopes": [
                    "read", "trade"]}, headers={"Authorization": f"Bearer {token}"})
                r.raise_for_status()
                return r.json()["key"]
            return token

        tokens = await asyncio.gather(*(one(i) for i in range(users)))
    return market, list(tokens), emails, admin_token


async def _trader(conn: RawHttp, market: int, rng: random.Random, result: Result,
                  measure: asyncio.Event, stop: asyncio.Event) -> None:
    open_ids: list[int] = []
    step = 0
    while not stop.is_set():
        step += 1
        start = time.perf_counter()
        if step % 3 == 0 and open_ids:
            oid = open_ids.pop(0)
            status, _ = await conn.request("DELETE", f"/orders/{oid}")
            kind = "cancel"
        else:
            outcome = "yes" if rng.random() < 0.5 else "no"
            price = f"0.{rng.randint(45, 52)}"
            body = orjson.dumps({"market_id": market, "outcome": outcome, "side": "buy",
                                 "price": price, "quantity": rng.randint(1, 5)})
            status, data = await conn.request("POST", "/orders", body)
            kind = "place"
            if status == 201:
                order = orjson.loads(data)["order"]
                if order["status"] in ("open", "partially_filled"):
                    open_ids.append(order["id"])
        elapsed_ms = (time.perf_counter() - start) * 1000
        if status >= 500 or status in (401, 403, 429):
            raise RuntimeError(f"{kind} answered {status}")
        if measure.is_set():
            result.latencies_ms.append(elapsed_ms)
            result.orders += 1
            if kind == "place":
                result.placements += 1
            else:
                result.cancels += 1


async def _watch_trades(ws_url: str, market: int, result: Result, measure: asyncio.Event,
                        stop: asyncio.Event) -> None:
    async with websockets.connect(ws_url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"trades:{market}"]}))
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now_ms = time.time() * 1000
            msg = orjson.loads(raw)
            if msg.get("type") != "trade" or not measure.is_set():
                continue
            executed = datetime.fromisoformat(msg["data"]["executed_at"].replace("Z", "+00:00"))
            result.ws_latencies_ms.append(now_ms - executed.timestamp() * 1000)
            result.trades_seen += 1


async def run_load(base: str, options: Options, mode: str) -> Result:
    """Drive an already running server at ``base`` and return the figures."""
    market, tokens, emails, admin_token = await _setup(base, options.users,
                                                        options.api_keys)
    deep = await abuse_mix.deep_book(base, admin_token, options.book_levels) \
        if options.abuse else None
    history = await abuse_mix.history_account(base, admin_token, options.history_orders) \
        if "history" in options.abuse else None
    if options.reads or options.abuse:  # while the exchange is quiet: the same state
        await read_mix.prepare(base, admin_token, tokens)  # for every build
    host, port = base.removeprefix("http://").split(":")
    conns = [RawHttp(host, int(port), t) for t in tokens]
    await asyncio.gather(*(c.connect() for c in conns))
    result = Result(mode, options.users, options.seconds,
                    credentials="api keys" if options.api_keys else "tokens")
    measure, stop = asyncio.Event(), asyncio.Event()
    rng = random.Random(options.seed)
    tasks = [asyncio.create_task(_trader(c, market, random.Random(rng.random()), result,
                                         measure, stop)) for c in conns]
    tasks.append(asyncio.create_task(_watch_trades(
        base.replace("http://", "ws://") + "/ws", market, result, measure, stop)))
    await asyncio.sleep(options.warmup_s)
    measure.set()
    started = time.perf_counter()
    done, _ = await asyncio.wait(tasks, timeout=options.seconds,
                                 return_when=asyncio.FIRST_EXCEPTION)
    result.seconds = time.perf_counter() - started
    measure.clear()
    stop.set()
    for task in done:
        task.result()  # re-raise a failed trader
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(c.close() for c in conns))
    if options.reads or options.abuse:
        await read_mix.settle(base, tokens[0])
    if options.reads:
        result.reads = await read_mix.run_reads(
            base, tokens, market, seconds=options.read_seconds,
            connections=options.read_connections, generator=options.generator,
            warmup_s=min(1.0, options.read_seconds))
    if options.abuse:
        result.abuse = await abuse_mix.run_abuse(
            base, tokens, emails, market, deep, await abuse_mix.book_markets(base),
            mixes=options.abuse, seconds=options.abuse_seconds,
            connections=options.read_connections, generator=options.generator,
            clients=options.flood_clients, repeat=options.repeat,
            book_levels=options.book_levels, warmup_s=min(1.0, options.abuse_seconds),
            admin_token=admin_token, cancel_all_accounts=options.cancel_all_accounts,
            cancel_all_orders=options.cancel_all_orders,
            sweep_levels=options.sweep_levels, slow_connections=options.slow_connections,
            history=history)
    return result


def run(options: Options) -> Result:
    """Start the server (and services), load it, stop everything; the figures."""
    mode = "deployment" if options.redis_url else "embedded"
    # Nothing of the run stays behind: a throwaway schema (PostgreSQL) or file (SQLite),
    # and the Redis keys under a prefix of its own, deleted at the end.
    redis_prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="pmarket-bench-") as tmp, \
            ThrowawayDatabase(options.database_url) as database_url:
        port = _free_port()
        procs = start_processes(options, Path(tmp), port, database_url, redis_prefix)
        base = f"http://127.0.0.1:{port}"
        try:
            async def main() -> Result:
                await _wait_ready(base)
                return await run_load(base, options, mode)
            try:
                import uvloop
                return uvloop.run(main())
            except ImportError:
                return asyncio.run(main())
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if options.redis_url:
                delete_keys(options.redis_url, redis_prefix)
