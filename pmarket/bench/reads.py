"""The read mix of ``pmarket bench http``: what a trader reads, across many users.

After the order load, ``run_reads`` measures one path at a time — balance, positions,
open orders, portfolio, the event list and an order book — for ``seconds`` each, over
``connections`` keep-alive connections, every request carrying the next user's token in
turn (the users of the order load: their balances, positions and open orders are real).
``prepare`` (before the order load) lists 20 events and gives every user a few more
positions; ``settle`` waits for the worker to project the order load first.

The load comes from wrk (a Lua script rotates the tokens and reports exact percentiles)
when it is installed. Without it a Python generator runs instead, loudly: on a 2-core
machine it takes CPU from the server it measures, so its figures are lower, and the
result says ``"generator": "python"``.

Invariant: a figure is only computed from successful answers; any error or non-2xx
answer fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import httpx
import orjson

from .rawhttp import RawHttp

log = logging.getLogger("pmarket.bench")

PATHS = (
    ("balance", "/balance"),
    ("positions", "/positions"),
    ("open orders", "/orders?status=open"),
    ("portfolio", "/portfolio"),
    ("events", "/events"),
    ("order book", "/markets/{market}/orderbook"),
)
EVENTS = 20
"""Events listed by ``GET /events`` during the mix (the default page holds 50)."""

_LUA = """
local tokens = {%(tokens)s}
local paths = {%(paths)s}
local n, m = #tokens, #paths
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% m) + 1],
                    {["Authorization"] = "Bearer " .. tokens[(i %% n) + 1]})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PMARKET {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"status":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass
class PathFigures:
    """One path's figures."""

    name: str
    path: str
    requests: int
    seconds: float
    p50_ms: float | None  # None: no answer at all (only a tolerant run allows that)
    p99_ms: float | None
    max_ms: float | None
    errors: int = 0
    """Failed requests (timeouts, errors, non-2xx); only a tolerant run has any."""

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"path": self.path, "requests": self.requests, "seconds": round(self.seconds, 2),
                "req_per_s": round(self.per_s, 1), "p50_ms": round_ms(self.p50_ms),
                "p99_ms": round_ms(self.p99_ms), "max_ms": round_ms(self.max_ms),
                "errors": self.errors}


def round_ms(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 2)


@dataclass
class ReadMix:
    """The read mix's figures."""

    generator: str
    connections: int
    users: int
    seconds: float
    paths: list[PathFigures] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"generator": self.generator, "connections": self.connections,
                "users": self.users, "seconds": self.seconds,
                "paths": {p.name: p.as_dict() for p in self.paths}}


def wrk_path() -> str | None:
    """The wrk executable, if installed."""
    return shutil.which("wrk")


async def prepare(base: str, admin_token: str, tokens: list[str]) -> None:
    """List ``EVENTS`` events, and give each user a position in a few of them."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as h:
        admin = {"Authorization": f"Bearer {admin_token}"}
        listed = (await h.get("/events", params={"limit": 1})).json()["total"]
        markets = []
        for k in range(max(0, EVENTS - listed)):
            outcomes = [] if k % 2 else ["Red", "Green", "Blue"]
            r = await h.post("/admin/events", headers=admin, json={
                "title": f"Bench event {k}", "category": "bench", "outcomes": outcomes})
            r.raise_for_status()
            markets += [o["market_id"] for o in r.json()["outcomes"]][:1]

        async def positions(token: str) -> None:
            for market in markets[:5]:
                r = await h.post(f"/markets/{market}/split", json={"quantity": 3},
                                 headers={"Authorization": f"Bearer {token}"})
                r.raise_for_status()

        for start in range(0, len(tokens), 16):
            await asyncio.gather(*(positions(t) for t in tokens[start:start + 16]))


async def settle(base: str, token: str, timeout_s: float = 180.0) -> float:
    """Wait until the database has projected the order load; seconds waited.

    ``GET /trades`` waits for the projection of this server's writes (or gives up after
    the server's consistency timeout), so once it answers quickly the worker is idle
    again and the read mix measures reads, not a worker catching up beside them.

    Raises:
        RuntimeError: ``/health`` reports the worker down, or the wait timed out.
    """
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as h:
        while time.perf_counter() - started < timeout_s:
            begin = time.perf_counter()
            r = await h.get("/trades", params={"limit": 1})
            if r.status_code == 200 and time.perf_counter() - begin < 0.5:
                return time.perf_counter() - started
            worker = (await h.get("/health")).json()["components"].get("worker", {})
            if worker.get("status") == "down":
                raise RuntimeError(f"the database worker is down ({worker.get('detail')}): "
                                   "the read mix needs the order load projected")
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the projection did not catch up within {timeout_s:g} s")


def generator_for(generator: str) -> str | None:
    """The wrk executable to use for ``generator`` ("wrk", "python" or "auto"), or None
    for the Python generator (said loudly: its figures are not comparable with wrk's).

    Raises:
        RuntimeError: "wrk" was asked for and is not installed.
    """
    wrk = wrk_path()
    if generator == "wrk" and wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    if wrk is not None and generator != "python":
        return wrk
    log.warning("bench http: %s — the read mix runs on the Python load generator, which "
                "takes CPU from the server on this machine: its figures are lower than "
                "wrk's and not comparable with them",
                "wrk is not installed" if wrk is None else "--generator python")
    return None


def mix_paths(market: int) -> list[str]:
    """Every path of ``PATHS``, for ``market``'s order book."""
    return [template.format(market=market) for _, template in PATHS]


async def run_reads(base: str, tokens: list[str], market: int, *, seconds: float,
                    connections: int = 32, generator: str = "auto",
                    warmup_s: float = 1.0) -> ReadMix:
    """Measure every path of ``PATHS`` in turn (see the module docstring).

    Args:
        base: the server's URL.
        tokens: the users' tokens, rotated request by request.
        market: the market whose order book is read.
        seconds: measured duration per path.
        connections: concurrent keep-alive connections.
        generator: "wrk", "python" or "auto" (wrk when installed).
        warmup_s: unmeasured load before each path.
    """
    wrk = generator_for(generator)
    mix = ReadMix("wrk" if wrk else "python", connections, len(tokens), seconds)
    for (name, _), path in zip(PATHS, mix_paths(market), strict=True):
        if warmup_s > 0:
            await measure(wrk, base, [path], tokens, warmup_s, connections)
        figures = await measure(wrk, base, [path], tokens, seconds, connections)
        figures.name = name
        mix.paths.append(figures)
    return mix


async def measure(wrk: str | None, base: str, paths: list[str], tokens: list[str],
                  seconds: float, connections: int, *, strict: bool = True) -> PathFigures:
    """GET ``paths`` in turn for ``seconds`` over ``connections`` keep-alive connections,
    each request with the next token; on wrk when given, else the Python generator.

    ``strict``: any failed request (timeout, error, non-2xx) raises; otherwise failures
    are counted in ``errors`` (a server under attack may drop or time out requests, and
    that is a figure, not a reason to stop).
    """
    if wrk is not None:
        return await _wrk(wrk, base, paths, tokens, seconds, connections, strict)
    return await _python(base, paths, tokens, seconds, connections, strict)


async def _wrk(wrk: str, base: str, paths: list[str], tokens: list[str], seconds: float,
               connections: int, strict: bool) -> PathFigures:
    """One wrk run (one thread: it needs far less than a core at these rates; whole
    seconds: wrk takes no fractions)."""
    script = _LUA % {"tokens": ", ".join(f'"{t}"' for t in tokens),
                     "paths": ", ".join(f'"{p}"' for p in paths)}
    name = " + ".join(paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="pmarket-bench-") as f:
        f.write(script)
        f.flush()
        proc = await asyncio.create_subprocess_exec(
            wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", f.name, base + paths[0], stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    line = next((x for x in out.decode().splitlines() if x.startswith("PMARKET ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {name} (exit {proc.returncode}): "
                           f"{(err or out).decode()[-500:]}")
    data = orjson.loads(line[len("PMARKET "):])
    failed = {k: data[k] for k in ("status", "connect", "read", "write", "timeout")
              if data[k]}
    if strict and (failed or not data["requests"]):
        raise RuntimeError(f"GET {name} failed under load: {failed or 'no answer'} "
                           f"of {data['requests']} requests")
    answered = data["requests"] > 0
    return PathFigures(name, name, data["requests"], data["duration_us"] / 1e6,
                       *((data[k] / 1000 if answered else None)
                         for k in ("p50_us", "p99_us", "max_us")),
                       sum(failed.values()))


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``ordered`` (nearest rank below), None if empty."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _python(base: str, paths: list[str], tokens: list[str], seconds: float,
                  connections: int, strict: bool) -> PathFigures:
    """The fallback generator: raw HTTP/1.1 over asyncio streams."""
    host, port = base.removeprefix("http://").split(":")
    conns = [RawHttp(host, int(port), tokens[i % len(tokens)]) for i in range(connections)]
    await asyncio.gather(*(c.connect() for c in conns))
    auths = [f"Authorization: Bearer {t}\r\n".encode() for t in tokens]
    latencies: list[float] = []
    counter = errors = 0
    stop = time.perf_counter() + seconds
    name = " + ".join(paths)

    async def loop(conn: RawHttp) -> None:
        nonlocal counter, errors
        while time.perf_counter() < stop:
            counter += 1
            conn.auth = auths[counter % len(auths)]
            path = paths[counter % len(paths)]
            start = time.perf_counter()
            try:
                status, body = await conn.request("GET", path)
            except (OSError, asyncio.IncompleteReadError):
                if strict:
                    raise
                errors += 1  # dropped by the server: count it, reconnect
                await conn.close()
                await conn.connect()
                continue
            if status != 200:
                if strict:
                    raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop(c) for c in conns))
    finally:
        elapsed = time.perf_counter() - started
        await asyncio.gather(*(c.close() for c in conns))
    latencies.sort()
    if strict and not latencies:
        raise RuntimeError(f"GET {name}: no answer")
    return PathFigures(name, name, len(latencies), elapsed, percentile(latencies, 0.5),
                       percentile(latencies, 0.99), latencies[-1] if latencies else None,
                       errors)


__all__ = ["PATHS", "PathFigures", "ReadMix", "generator_for", "measure", "mix_paths",
           "percentile", "prepare", "round_ms", "run_reads", "settle", "wrk_path"]
