"""The abuse mixes of ``pmarket bench http``: what other users see while someone attacks.

Each phase runs the read mix — every path of ``reads.PATHS`` in turn, the users' tokens
rotating, over the read mix's connections (wrk when installed) — and probes ``GET
/health`` 20 times a second, while a flood runs in a child process of its own (so its CPU
is not the prober's). The ``quiet`` phase has no flood: the baseline. The floods:

- ``signin``: ``clients`` keep-alive connections from one address send wrong-password
  sign-ins back to back, to existing accounts and to unknown e-mails in turn;
  ``signin-spread``: the same from ``clients`` addresses (one each).
- ``ws``: ``clients`` WebSocket connections from one address each send, as fast as the
  server answers, a frame subscribing the deep book (named ``repeat`` times, as the
  issue's attack did) and every other book, one unsubscribing them, and a marker frame
  (an unknown op) whose error answer ends the round; ``ws-spread``: from ``clients``
  addresses. A refused or closed connection is opened again.
- ``cancel-all``: ``cancel_all_accounts`` traders each fill their book with batches of
  bids up to ``cancel_all_orders`` open orders, cancel them all with one ``DELETE
  /orders`` and fill it again, back to back (``CancelAllTrader``); the first cancel-alls
  spread over the measured seconds. Its figures add the cancel-alls' latency.
- ``sweep``: a market maker fills a market of its own (tick 0.0001) with ``sweep_levels``
  one-share bids of NO, one a price level (asks of YES from 0.9999 down), and a taker
  takes them all with one ioc buy of YES at 0.9999: one order that trades
  ``sweep_levels`` times, its delivery tens of thousands of events. The maker fills the
  book again, the taker sweeps it again, back to back (``SweepTrader``). Its figures add
  the sweeps' latency and the shares swept.
- ``history``: ``clients`` keep-alive connections from one address page one account's
  long history (``history_account``: ``--history-orders`` orders, about half of them
  traded) at random deep offsets, 500 items a page, back to back: ``GET
  /orders?status=all``, ``GET /trades`` and its market's ``GET /markets/{id}/trades`` in
  turn. Its figures add the history's size (``history``: orders, trades) and the flood's
  own latency (``latency_ms``: what one deep page took, waiting included).
- ``slow``: ``slow_connections`` connections from one address each send the start of a
  request head and then one more header line a second, never finishing it (a
  slowloris); a connection the server closes is opened again. ``slow-spread``: the same
  connections spread over ``clients`` addresses, so that each address stays within its
  connection limit and the server holds them all until its read deadline. Its answers
  count the server's 408s and 503s, and connections reset or closed without one.

Addresses: every 127.x.y.z address is this machine (Linux), so one host plays clients
at many addresses. The setup's sign-ups come from 127.0.1.* (``SETUP_ADDRESSES``), the
floods from 127.0.2.*, the legitimate readers from 127.0.0.1.

The server runs with its real defaults for everything the floods meet (bcrypt cost and
pool, sign-in lockouts, the per-address auth limit, the WebSocket limits); only the
per-user and public market-data limits are lifted, as for the read mix, because its 32
connections come from one address where real readers come from many (``http.server_env``).

Invariant: a flood stops by itself (``MAX_FLOOD_S``) even if the benchmark dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson
import websockets

from . import reads as read_mix
from .rawhttp import RawHttp

MIXES = ("signin", "signin-spread", "ws", "ws-spread", "cancel-all", "history", "sweep",
         "slow", "slow-spread")
HEALTH_INTERVAL_S = 0.05
MAX_FLOOD_S = 600.0
"""A flood stops by itself after this long, whatever the benchmark does."""
MAKER_ADDRESS = "127.0.3.1"
HISTORY_ADDRESS = "127.0.3.2"
HISTORY_BATCHES = 4
"""Concurrent order batches while the history account's orders are placed."""
SETUP_USERS_PER_ADDRESS = 16
"""Sign-ups per setup address (within the default per-address auth burst of 20)."""
CANCEL_ALL_ADDRESS = "127.0.4.1"
CANCEL_ALL_ACCOUNTS = 3
CANCEL_ALL_ORDERS = 10_000
"""Open orders each cancel-all account keeps placing and cancelling (the server's
default open-order limit)."""
SWEEP_ADDRESS = "127.0.4.2"
SWEEP_LEVELS = 9_000
"""Price levels the sweep flood's maker fills and its taker takes with one order (at
tick 0.0001 a book has 9,999 levels a side; the server's default open-order limit is
10,000)."""
SLOW_CONNECTIONS = 2_000
"""Half-sent requests the ``slow`` floods keep open (the probe that found the hole used
20,000 from one address; the server refuses all but 256 of those at once)."""
BATCH = 20
"""Orders per ``POST /orders/batch`` (the API's most)."""
FILLERS = 4
"""Batches a cancel-all trader keeps in flight while it fills its book."""
FLOOD_START_S = 300.0
"""How long a flood may take to start (the cancel-all accounts fill their books first)."""
UNKNOWN_EMAILS = 8
KNOWN_EMAILS = 8
RECOVERY_S = 120.0
"""How long a phase waits for the server to answer /health quickly again after a flood."""


def setup_address(i: int) -> str:
    """The address the ``i``-th setup sign-up comes from."""
    return f"127.0.1.{1 + i // SETUP_USERS_PER_ADDRESS}"


def flood_addresses(mix: str, clients: int) -> list[str]:
    """One address for a mix, or one per client for a ``-spread`` mix."""
    if mix.endswith("-spread"):
        return [f"127.0.2.{1 + i}" for i in range(clients)]
    return ["127.0.2.1"]


def parse_mixes(text: str) -> list[str]:
    """``signin,ws`` -> the mixes, in the order given; ``all``: every mix.

    Raises:
        ValueError: an unknown mix name.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(MIXES)
    unknown = [n for n in names if n not in MIXES]
    if unknown:
        raise ValueError(f"unknown abuse mix {', '.join(unknown)}: choose from "
                         f"{', '.join(MIXES)} or all")
    return list(dict.fromkeys(names))


@dataclass
class Phase:
    """One phase's figures: the read mix and /health while the flood (if any) ran."""

    name: str
    reads: read_mix.PathFigures
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    flood: dict | None = None
    recovery_s: float = 0.0

    def as_dict(self) -> dict:
        h = sorted(self.health_ms)
        return {"reads": self.reads.as_dict() | {"path": "read mix"},
                "health": {"probes": len(h), "failures": self.health_failures,
                           "p50_ms": read_mix.round_ms(read_mix.percentile(h, 0.5)),
                           "p99_ms": read_mix.round_ms(read_mix.percentile(h, 0.99)),
                           "max_ms": read_mix.round_ms(h[-1] if h else None)},
                "flood": self.flood, "recovery_s": round(self.recovery_s, 2)}


@dataclass
class Abuse:
    """Every phase of the abuse mixes."""

    generator: str
    connections: int
    seconds: float
    clients: int
    book_levels: int
    repeat: int
    phases: list[Phase] = field(default_factory=list)
    cancel_all_accounts: int = CANCEL_ALL_ACCOUNTS
    cancel_all_orders: int = CANCEL_ALL_ORDERS
    sweep_levels: int = SWEEP_LEVELS
    slow_connections: int = SLOW_CONNECTIONS

    def as_dict(self) -> dict:
        return {"generator": self.generator, "connections": self.connections,
                "seconds": self.seconds, "clients": self.clients,
                "book_levels": self.book_levels, "repeat": self.repeat,
                "cancel_all_accounts": self.cancel_all_accounts,
                "cancel_all_orders": self.cancel_all_orders,
                "sweep_levels": self.sweep_levels,
                "slow_connections": self.slow_connections,
                "phases": {p.name: p.as_dict() for p in self.phases}}


async def deep_book(base: str, admin_token: str, levels: int) -> int:
    """A market at tick 0.0001 with ``levels`` bids (0.0001, 0.0002, ...) and ``levels``
    asks (0.9999, 0.9998, ...), one share each, from a market maker of its own; its id."""
    if not 1 <= levels <= 4999:
        raise ValueError("book levels must be 1..4999 (tick 0.0001, bids below 0.50)")
    async with httpx.AsyncClient(base_url=base, timeout=60, transport=httpx.AsyncHTTPTransport(
            local_address=MAKER_ADDRESS)) as h:
        r = await h.post("/admin/events", headers={"Authorization": f"Bearer {admin_token}"},
                         json={"title": "Bench deep book", "tick_size": "0.0001"})
        r.raise_for_status()
        market = r.json()["outcomes"][0]["market_id"]
        r = await h.post("/auth/signup", json={"email": "bench-maker@example.com",
                                               "name": "maker", "password": "bench password"})
        r.raise_for_status()
        h.headers["Authorization"] = f"Bearer {r.json()['token']}"
        (await h.post("/onramp", json={"amount": str(levels)})).raise_for_status()
        orders = [{"market_id": market, "outcome": outcome, "side": "buy",
                   "price": f"{k / 10_000:.4f}", "quantity": 1}
                  for k in range(1, levels + 1) for outcome in ("yes", "no")]
        for start in range(0, len(orders), 20):
            r = await h.post("/orders/batch", json={"orders": orders[start:start + 20]})
            r.raise_for_status()
            failed = [x["error"] for x in r.json()["results"] if "error" in x]
            if failed:
                raise RuntimeError(f"the deep book's orders were refused: {failed[0]}")
    return market


async def flood_market(base: str, admin_token: str, title: str, tick: str = "0.01") -> int:
    """A market of its own for a flood's orders (the read mix's books stay as they
    were)."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as h:
        r = await h.post("/admin/events", headers={"Authorization": f"Bearer {admin_token}"},
                         json={"title": title, "tick_size": tick})
        r.raise_for_status()
        return r.json()["outcomes"][0]["market_id"]


@dataclass
class History:
    """The account whose history the ``history`` flood pages."""

    token: str
    market: int
    orders: int
    trades: int


async def history_account(base: str, admin_token: str, orders: int) -> History:
    """An account with ``orders`` closed orders in a market of its own, about half of
    them traded: batches of 20 ioc buys of YES at 0.50, crossing a maker's 20 buys of
    NO at 0.50, alternate with batches of 20 ioc buys at 0.01 that cancel at once."""
    async with httpx.AsyncClient(base_url=base, timeout=120, transport=httpx.AsyncHTTPTransport(
            local_address=HISTORY_ADDRESS)) as h:
        r = await h.post("/admin/events", headers={"Authorization": f"Bearer {admin_token}"},
                         json={"title": "Bench history"})
        r.raise_for_status()
        market = r.json()["outcomes"][0]["market_id"]
        tokens = []
        for who in ("history", "history-maker"):
            r = await h.post("/auth/signup", json={"email": f"bench-{who}@example.com",
                                                   "name": who, "password": "bench password"})
            r.raise_for_status()
            tokens.append({"Authorization": f"Bearer {r.json()['token']}"})
            (await h.post("/onramp", json={"amount": str(orders + 100)},
                          headers=tokens[-1])).raise_for_status()
        trader, maker = tokens

        def batch(outcome: str, price: str, tif: str) -> dict:
            return {"orders": [{"market_id": market, "outcome": outcome, "side": "buy",
                                "price": price, "quantity": 1, "time_in_force": tif}] * 20}

        async def place(headers: dict, body: dict) -> None:
            r = await h.post("/orders/batch", json=body, headers=headers)
            r.raise_for_status()
            failed = [x["error"] for x in r.json()["results"] if "error" in x]
            if failed:
                raise RuntimeError(f"the history's orders were refused: {failed[0]}")

        async def loop(rounds: int) -> None:
            for _ in range(rounds):
                await place(maker, batch("no", "0.50", "gtc"))
                await place(trader, batch("yes", "0.50", "ioc"))
                await place(trader, batch("yes", "0.01", "ioc"))

        rounds = max(1, orders // 40)
        await asyncio.gather(*(loop(rounds // HISTORY_BATCHES + (k < rounds % HISTORY_BATCHES))
                               for k in range(HISTORY_BATCHES)))
        placed = (await h.get("/orders", params={"limit": 1}, headers=trader)).json()["total"]
        traded = (await h.get("/trades", params={"limit": 1}, headers=trader)).json()["total"]
    return History(trader["Authorization"].removeprefix("Bearer "), market, placed, traded)


async def book_markets(base: str) -> list[int]:
    """Every listed market (the WebSocket flood subscribes to all their books)."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as h:
        r = await h.get("/events", params={"limit": 500})
        r.raise_for_status()
        return [o["market_id"] for e in r.json()["items"] for o in e["outcomes"]]


async def run_abuse(base: str, tokens: list[str], emails: list[str], market: int,
                    deep_market: int, channels: list[int], *, mixes: list[str],
                    seconds: float, connections: int, generator: str, clients: int,
                    repeat: int, book_levels: int, warmup_s: float = 1.0,
                    admin_token: str | None = None,
                    cancel_all_accounts: int = CANCEL_ALL_ACCOUNTS,
                    cancel_all_orders: int = CANCEL_ALL_ORDERS,
                    sweep_levels: int = SWEEP_LEVELS,
                    slow_connections: int = SLOW_CONNECTIONS,
                    history: History | None = None) -> Abuse:
    """The quiet phase, then each of ``mixes`` (see the module docstring).

    Args:
        base: the server's URL.
        tokens: the legitimate readers' tokens.
        emails: existing accounts' e-mails (sign-in flood targets).
        market: the market whose order book the read mix reads.
        deep_market: the deep book the WebSocket flood subscribes to.
        channels: every market whose book the WebSocket flood subscribes to besides.
        seconds: measured duration of each phase.
        connections: the read mix's connections.
        generator: "wrk", "python" or "auto".
        clients: flooding clients.
        repeat: how many times a WebSocket flood frame names the deep book.
        book_levels: the deep book's levels per side (reported).
        warmup_s: flood before the measurement starts.
        admin_token: an admin's token (the cancel-all and sweep floods' markets).
        cancel_all_accounts: traders of the cancel-all flood.
        cancel_all_orders: open orders each of them places and cancels.
        sweep_levels: levels the sweep flood's maker fills and its taker sweeps.
        slow_connections: half-sent requests the slow floods keep open.
        history: the account the ``history`` flood pages (``history_account``).
    """
    if "history" in mixes and history is None:
        raise ValueError("the history mix needs the account it pages (history_account)")
    wrk = read_mix.generator_for(generator)
    result = Abuse("wrk" if wrk else "python", connections, seconds, clients, book_levels,
                   repeat, cancel_all_accounts=cancel_all_accounts,
                   cancel_all_orders=cancel_all_orders, sweep_levels=sweep_levels,
                   slow_connections=slow_connections)
    paths = read_mix.mix_paths(market)
    targets = emails[:KNOWN_EMAILS] + [f"nobody-{k}@example.com"
                                       for k in range(UNKNOWN_EMAILS)]
    books = [deep_market] * repeat + [m for m in channels if m != deep_market]
    markets: dict[str, int] = {}
    for mix, title, tick in (("cancel-all", "Bench cancel-all", "0.01"),
                             ("sweep", "Bench sweep", "0.0001")):
        if mix in mixes:
            if admin_token is None:
                raise ValueError(f"the {mix} mix needs an admin token (its market)")
            markets[mix] = await flood_market(base, admin_token, title, tick)
    for name in ["quiet", *mixes]:
        config = None if name == "quiet" else {
            "mix": name, "base": base, "clients": clients,
            "addresses": flood_addresses(name, clients), "emails": targets,
            "channels": [f"book:{m}" for m in books]}
        if name == "cancel-all":
            # The accounts' first cancel-alls spread over the measured seconds.
            config |= {"clients": cancel_all_accounts, "addresses": [CANCEL_ALL_ADDRESS],
                       "market": markets[name], "orders": cancel_all_orders,
                       "first_s": [warmup_s + (i + 0.5) * seconds / cancel_all_accounts
                                   for i in range(cancel_all_accounts)]}
        if name == "sweep":  # the first sweep once the phase is measured
            config |= {"clients": 1, "addresses": [SWEEP_ADDRESS], "market": markets[name],
                       "orders": sweep_levels, "first_s": [warmup_s]}
        if name.startswith("slow"):  # many connections over the flood's addresses
            config |= {"clients": slow_connections}
        if name == "history" and history is not None:
            config |= {"token": history.token, "market": history.market,
                       "orders": history.orders, "trades": history.trades}
        result.phases.append(await _phase(name, config, base, wrk, paths, tokens, seconds,
                                          connections, warmup_s))
    return result


async def _phase(name: str, config: dict | None, base: str, wrk: str | None,
                 paths: list[str], tokens: list[str], seconds: float, connections: int,
                 warmup_s: float) -> Phase:
    """One phase: start the flood, read and probe while it runs, stop it, wait until
    the server is quick again."""
    flood = await _start_flood(config) if config else None
    try:
        await asyncio.sleep(warmup_s if flood else 0)
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe_health(base, stop))
        try:
            figures = await read_mix.measure(wrk, base, paths, tokens, seconds, connections,
                                             strict=flood is None)
        finally:
            stop.set()
            health_ms, failures = await probe
        phase = Phase(name, figures, health_ms, failures)
        if flood is not None:
            phase.flood = await _stop_flood(flood)
            flood = None
    finally:
        if flood is not None:
            with contextlib.suppress(ProcessLookupError):
                flood.kill()
            await flood.wait()
    phase.recovery_s = await _recover(base)
    return phase


async def _probe_health(base: str, stop: asyncio.Event) -> tuple[list[float], int]:
    """GET /health every ``HEALTH_INTERVAL_S`` (or right after the last answer, if it
    took longer) until ``stop``: the latencies of 200 answers, and the failures."""
    host, port = base.removeprefix("http://").split(":")
    conn = RawHttp(host, int(port), None)
    latencies: list[float] = []
    failures = 0
    await conn.connect()
    try:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                status, _ = await conn.request("GET", "/health")
            except (OSError, asyncio.IncompleteReadError):
                status = 0
                await conn.close()
                await conn.connect()
            elapsed = time.perf_counter() - start
            if status == 200:
                latencies.append(elapsed * 1000)
            else:
                failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, HEALTH_INTERVAL_S - elapsed))
    finally:
        await conn.close()
    return latencies, failures


async def _recover(base: str) -> float:
    """Seconds until /health answers within 100 ms twice in a row (a flood's backlog
    must not leak into the next phase).

    Raises:
        RuntimeError: it did not within ``RECOVERY_S``.
    """
    started = time.perf_counter()
    quick = 0
    async with httpx.AsyncClient(base_url=base, timeout=RECOVERY_S) as h:
        while time.perf_counter() - started < RECOVERY_S:
            begin = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                ok = (await h.get("/health")).status_code == 200
                quick = quick + 1 if ok and time.perf_counter() - begin < 0.1 else 0
            if quick >= 2:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not recover within {RECOVERY_S:g} s of a flood")


async def _start_flood(config: dict) -> asyncio.subprocess.Process:
    """The flood in a child process; it floods until told to stop (a line on stdin)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from pmarket.bench.abuse import flood_main; flood_main()",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    proc.stdin.write(orjson.dumps(config) + b"\n")
    await proc.stdin.drain()
    # "flooding": it started (the cancel-all flood fills its books first)
    line = await asyncio.wait_for(proc.stdout.readline(), FLOOD_START_S)
    if not line.startswith(b"flooding"):
        raise RuntimeError(f"the {config['mix']} flood did not start: {line!r}")
    return proc


async def _stop_flood(proc: asyncio.subprocess.Process) -> dict:
    """Tell the flood to stop; its counts."""
    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"the flood failed (exit {proc.returncode})")
    return orjson.loads(out.splitlines()[-1])


# The child process ---------------------------------------------------------------------


def flood_main() -> None:
    """Entry point of the flood's process: a JSON config line on stdin, ``flooding``
    on stdout once running, its counts as one JSON line on stdout after ``stop``."""
    config = orjson.loads(sys.stdin.readline())
    try:
        import uvloop
        counts = uvloop.run(_flood(config))
    except ImportError:
        counts = asyncio.run(_flood(config))
    sys.stdout.write(orjson.dumps(counts).decode() + "\n")
    sys.stdout.flush()


async def _flood(config: dict) -> dict:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_stop() -> None:  # a daemon thread: never keeps the process alive
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    loop.call_later(MAX_FLOOD_S, stop.set)
    counts: Counter[str] = Counter()
    extra: dict = {}
    latencies: list[float] = []
    if config["mix"] in ("cancel-all", "sweep"):
        kind = CancelAllTrader if config["mix"] == "cancel-all" else SweepTrader
        traders = [kind(i, config) for i in range(config["clients"])]
        await asyncio.gather(*(t.start() for t in traders))  # books full, then flood
        tasks = [asyncio.create_task(t.run(counts, stop)) for t in traders]
    else:
        traders = []
        client = _signin_client if config["mix"].startswith("signin") else (
            functools.partial(_history_client, latencies=latencies)
            if config["mix"] == "history" else
            _slow_client if config["mix"].startswith("slow") else _ws_client)
        tasks = [asyncio.create_task(client(i, config, counts, stop))
                 for i in range(config["clients"])]
    started = time.perf_counter()
    sys.stdout.write("flooding\n")
    sys.stdout.flush()
    await stop.wait()
    elapsed = time.perf_counter() - started
    # A cancel-all or sweep trader finishes its request (a refill may take a while).
    _, pending = await asyncio.wait(tasks, timeout=30.0 if traders else 1.0)
    for task in pending:  # stuck on a stalled server: its count stays as it was
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a client that failed fails the flood
    if traders:
        extra = {f"{config['mix'].replace('-', '_')}_ms":
                 _latencies([ms for t in traders for ms in t.clear_ms])}
        await asyncio.gather(*(t.finish() for t in traders))  # leave no order behind
    sent = counts.pop("sent", 0)
    figures = {"mix": config["mix"], "clients": config["clients"],
               "addresses": len(config["addresses"]), "seconds": round(elapsed, 2),
               "sent": sent, "sent_per_s": round(sent / elapsed, 1) if elapsed else 0.0,
               "answers": dict(sorted(counts.items()))} | extra
    if config["mix"] == "history":
        figures["history"] = {"orders": config["orders"], "trades": config["trades"]}
    if latencies:
        latencies.sort()
        figures["latency_ms"] = {
            "p50": read_mix.round_ms(read_mix.percentile(latencies, 0.5)),
            "p99": read_mix.round_ms(read_mix.percentile(latencies, 0.99)),
            "max": read_mix.round_ms(latencies[-1])}
    return figures


async def _slow_client(i: int, config: dict, counts: Counter[str],
                       stop: asyncio.Event) -> None:
    """One of the ``slow`` flood's connections: the start of a request head, then a
    header line a second, never the end; opened again once the server closes it. Counts
    ``sent`` (connections opened) and the server's answers by status, ``reset`` and
    ``closed`` (ended without an answer), ``refused`` (could not connect)."""
    host, port = config["base"].removeprefix("http://").split(":")
    address = config["addresses"][i % len(config["addresses"])]
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, int(port),
                                                           local_addr=(address, 0))
        except OSError:
            counts["refused"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            continue
        counts["sent"] += 1
        try:
            writer.write(b"POST /orders HTTP/1.1\r\nHost: bench\r\n")
            while not stop.is_set():
                try:
                    head = await asyncio.wait_for(reader.read(64), 1.0)
                except TimeoutError:
                    if writer.is_closing():  # reset meanwhile (uvloop: no read error)
                        counts["reset"] += 1
                        break
                    writer.write(b"X-Slow: 1\r\n")  # one more line of a head that never ends
                    continue
                counts[head.split(b" ", 2)[1].decode() if head else "closed"] += 1
                break
        except OSError:  # reset: answered while our bytes were unread, or dropped
            counts["reset"] += 1
        finally:
            writer.close()


def _latencies(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"count": len(ms), "p50_ms": read_mix.round_ms(read_mix.percentile(ms, 0.5)),
            "max_ms": read_mix.round_ms(ms[-1] if ms else None)}


def _address(i: int, config: dict) -> str:
    addresses = config["addresses"]
    return addresses[i % len(addresses)]


async def _signin_client(i: int, config: dict, counts: Counter, stop: asyncio.Event) -> None:
    """Wrong-password sign-ins back to back on one keep-alive connection (reopened when
    the server closes it); counts answers by status."""
    host, port = config["base"].removeprefix("http://").split(":")
    emails = config["emails"]
    conn = RawHttp(host, int(port), None, _address(i, config))
    n = i
    while not stop.is_set():
        if conn.writer is None:
            await conn.connect()
        body = orjson.dumps({"email": emails[n % len(emails)],
                             "password": f"wrong password {n}"})
        n += config["clients"]
        counts["sent"] += 1
        try:
            status, _ = await conn.request("POST", "/auth/signin", body)
        except (OSError, asyncio.IncompleteReadError):
            counts["dropped"] += 1
            await conn.close()
            conn.writer = None
            continue
        counts[str(status)] += 1
    await conn.close()


class CancelAllTrader:
    """One account of the cancel-all flood: fills its book with batches of bids up to
    ``orders`` open orders (or the server's open-order limit; ``FILLERS`` connections
    sending batches at once), cancels them all, again.

    Counts requests (``sent``), answers by status, orders placed (``placed``),
    cancel-alls and the orders they cancelled; ``clear_ms`` the cancel-alls' latencies.
    """

    def __init__(self, i: int, config: dict):
        self.i = i
        self.config = config
        self.market = config["market"]
        self.orders = config["orders"]
        self.open = 0
        self.batches = 0
        self.clear_ms: list[float] = []
        self.conn: RawHttp | None = None
        self.fillers: list[RawHttp] = []  # batches in flight at once: a fast refill
        self.sending = 0  # orders in batches sent but not answered yet
        self.full = False  # the server's open-order limit refused an order

    async def start(self) -> None:
        """Sign up and fund the account, then fill its book (not counted)."""
        self.conn, token = await self._account(self.role)
        address = _address(self.i, self.config)
        self.fillers = [RawHttp(self.conn.host, self.conn.port, token, address)
                        for _ in range(FILLERS)]
        await asyncio.gather(*(c.connect() for c in self.fillers))
        await self.fill(Counter(), None)

    role = "cancel-all"
    """The account's name in its e-mail address and messages."""

    async def _account(self, role: str) -> tuple[RawHttp, str]:
        """A new funded account's connection (from this trader's address) and token."""
        host, port = self.config["base"].removeprefix("http://").split(":")
        address = _address(self.i, self.config)
        signup = RawHttp(host, int(port), None, address)
        await signup.connect()
        try:
            email = f"bench-{self.config['mix']}-{role}-{self.i}-{time.time_ns()}@example.com"
            status, data = await signup.request("POST", "/auth/signup", orjson.dumps(
                {"email": email, "name": f"{role} {self.i}", "password": "bench password"}))
            if status != 201:
                raise RuntimeError(f"{role} sign-up answered {status}: {data[:200]!r}")
            token = orjson.loads(data)["token"]
        finally:
            await signup.close()
        conn = RawHttp(host, int(port), token, address)
        await conn.connect()
        status, data = await conn.request("POST", "/onramp",
                                          orjson.dumps({"amount": "1000000"}))
        if status != 200:
            raise RuntimeError(f"{role} deposit answered {status}: {data[:200]!r}")
        return conn, token

    def order(self, n: int) -> dict:
        """The ``n``-th order of the fills: a one-share bid, on 40 levels."""
        return {"market_id": self.market, "outcome": "yes", "side": "buy",
                "price": f"0.{1 + n % 40:02d}", "quantity": 1}

    async def fill(self, counts: Counter, stop: asyncio.Event | None) -> None:
        """Place batches of bids, ``FILLERS`` at a time, until ``orders`` are open (or
        the server's limit says no)."""
        self.full = False
        await asyncio.gather(*(self._filler(conn, counts, stop) for conn in self.fillers))

    async def _filler(self, conn: RawHttp, counts: Counter, stop: asyncio.Event | None
                      ) -> None:
        while (not self.full and self.open + self.sending < self.orders
               and (stop is None or not stop.is_set())):
            n = min(BATCH, self.orders - self.open - self.sending)
            self.batches += 1
            body = orjson.dumps({"orders": [self.order(self.batches * BATCH + k)
                                            for k in range(n)]})
            self.sending += n
            try:
                status, data = await self._request(counts, "POST", "/orders/batch", body,
                                                   conn)
            finally:
                self.sending -= n
            counts["sent"] += 1
            counts[str(status)] += 1
            if status != 200:
                raise RuntimeError(f"a {self.role} flood batch answered {status}: "
                                   f"{data[:200]!r}")
            results = orjson.loads(data)["results"]
            placed = sum(1 for r in results if "order" in r)
            self.open += placed
            counts["placed"] += placed
            errors = {r["error"]["code"] for r in results if "error" in r}
            if errors - {"open_order_limit"}:
                raise RuntimeError(f"{self.role} flood orders refused: {sorted(errors)}")
            if errors:
                self.full = True  # the server's limit is below ``orders``

    async def clear(self, counts: Counter) -> None:
        """Empty the book: cancel every open order with one request."""
        started = time.perf_counter()
        status, data = await self._request(counts, "DELETE", "/orders")
        elapsed_ms = (time.perf_counter() - started) * 1000
        counts["sent"] += 1
        counts[str(status)] += 1
        if status != 200:
            raise RuntimeError(f"a cancel-all answered {status}: {data[:200]!r}")
        cancelled = len(orjson.loads(data)["cancelled"])
        self.open -= cancelled
        counts["cancel-all"] += 1
        counts["cancelled"] += cancelled
        self.clear_ms.append(elapsed_ms)

    async def _request(self, counts: Counter, method: str, path: str,
                       body: bytes | None = None, conn: RawHttp | None = None
                       ) -> tuple[int, bytes]:
        """A request; once more on a new connection if the server had closed this one
        (an idle keep-alive connection is closed after 5 s)."""
        conn = conn or self.conn
        try:
            return await conn.request(method, path, body)
        except (OSError, asyncio.IncompleteReadError):
            counts["reconnects"] += 1
            await conn.close()
            await conn.connect()
            return await conn.request(method, path, body)

    async def run(self, counts: Counter, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):  # staggered: cancel-alls all along
            await asyncio.wait_for(stop.wait(), self.config["first_s"][self.i])
        while not stop.is_set():
            await self.clear(counts)
            await self.fill(counts, stop)

    async def finish(self) -> None:
        """Cancel what is left and close the connections."""
        if self.conn is None:
            return
        try:
            await self._request(Counter(), "DELETE", "/orders")
        finally:
            for conn in self.connections():
                await conn.close()

    def connections(self) -> list[RawHttp]:
        return [c for c in [self.conn, *self.fillers] if c is not None]


class SweepTrader(CancelAllTrader):
    """The sweep flood (module docstring): a maker fills the book with one-share bids of
    NO, one on each of ``orders`` price levels (batches, as the cancel-all flood fills
    its book); a taker of its own takes every one of them with one ioc buy of YES at
    0.9999, again and again.

    Counts as ``CancelAllTrader`` does, with ``sweeps`` and the shares ``swept`` instead of
    cancel-alls; ``clear_ms`` the sweeps' latencies.
    """

    role = "maker"

    def __init__(self, i: int, config: dict):
        super().__init__(i, config)
        if not 1 <= self.orders <= 9_999:
            raise ValueError("a sweep takes 1..9,999 levels (tick 0.0001)")
        self.taker: RawHttp | None = None

    async def start(self) -> None:
        self.taker, _ = await self._account("taker")
        await super().start()

    def order(self, n: int) -> dict:
        """A one-share bid of NO at 0.0001, 0.0002, ...: an ask of YES on each level."""
        return {"market_id": self.market, "outcome": "no", "side": "buy",
                "price": f"0.{1 + n % self.orders:04d}", "quantity": 1}

    async def clear(self, counts: Counter) -> None:
        """Take the whole book with one order."""
        body = orjson.dumps({"market_id": self.market, "outcome": "yes", "side": "buy",
                             "price": "0.9999", "quantity": self.open,
                             "time_in_force": "ioc"})
        started = time.perf_counter()
        status, data = await self._request(counts, "POST", "/orders", body, self.taker)
        elapsed_ms = (time.perf_counter() - started) * 1000
        counts["sent"] += 1
        counts[str(status)] += 1
        if status not in (200, 201):
            raise RuntimeError(f"a sweep answered {status}: {data[:200]!r}")
        swept = orjson.loads(data)["order"]["filled_quantity"]
        if swept != self.open:
            raise RuntimeError(f"a sweep took {swept} of the {self.open} levels")
        self.open = 0
        counts["sweeps"] += 1
        counts["swept"] += swept
        self.clear_ms.append(elapsed_ms)

    def connections(self) -> list[RawHttp]:
        return [*super().connections(), *([self.taker] if self.taker else [])]


async def _history_client(i: int, config: dict, counts: Counter, stop: asyncio.Event, *,
                          latencies: list[float]) -> None:
    """Deep pages of one account's history back to back on one keep-alive connection
    (module docstring); counts answers by status, keeps each request's latency."""
    host, port = config["base"].removeprefix("http://").split(":")
    conn = RawHttp(host, int(port), config["token"], _address(i, config))
    rng = random.Random(i)
    n = i
    while not stop.is_set():
        if conn.writer is None:
            await conn.connect()
        kind = n % 3
        n += 1
        deep = rng.randint(0, max(0, (config["orders"] if kind == 0 else config["trades"])))
        path = (f"/orders?status=all&limit=500&offset={deep}", f"/trades?limit=500&offset={deep}",
                f"/markets/{config['market']}/trades?limit=500&offset={deep}")[kind]
        counts["sent"] += 1
        start = time.perf_counter()
        try:
            status, _ = await conn.request("GET", path)
        except (OSError, asyncio.IncompleteReadError):
            counts["dropped"] += 1
            await conn.close()
            conn.writer = None
            continue
        latencies.append((time.perf_counter() - start) * 1000)
        counts[str(status)] += 1
    await conn.close()


async def _ws_client(i: int, config: dict, counts: Counter, stop: asyncio.Event) -> None:
    """Subscribe/unsubscribe rounds as fast as the server answers (module docstring);
    counts rounds, snapshots, errors by code, refused and closed connections."""
    url = config["base"].replace("http://", "ws://") + "/ws"
    channels = config["channels"]
    frames = [orjson.dumps({"op": "subscribe", "channels": channels}),
              orjson.dumps({"op": "unsubscribe", "channels": list(dict.fromkeys(channels))}),
              b'{"op":"marker"}']
    while not stop.is_set():
        try:
            async with websockets.connect(url, local_addr=(_address(i, config), 0),
                                          max_size=None, compression=None,
                                          open_timeout=30, ping_interval=None) as ws:
                counts["connections"] += 1
                while not stop.is_set():
                    counts["sent"] += 1
                    for frame in frames:
                        await ws.send(frame)
                    await _ws_round(ws, counts)
        except websockets.InvalidStatus as exc:
            counts[f"refused {exc.response.status_code}"] += 1
            await asyncio.sleep(0.05)
        except (websockets.ConnectionClosed, OSError, TimeoutError):
            counts["closed"] += 1
            await asyncio.sleep(0.05)


async def _ws_round(ws, counts: Counter) -> None:
    """Read one round's answers: snapshots and errors up to the marker's ``invalid_op``."""
    while True:
        raw = await ws.recv()
        head = raw[:80]
        if '"type":"snapshot"' in head:
            counts["snapshot"] += 1
            continue
        if '"type":"error"' not in head:
            continue  # a delta of a book still subscribed
        code = orjson.loads(raw)["data"]["code"]
        if code == "invalid_op":
            return
        counts[code] += 1


__all__ = ["MIXES", "Abuse", "CancelAllTrader", "History", "Phase", "SweepTrader",
           "deep_book", "flood_addresses", "flood_main", "flood_market", "history_account",
           "parse_mixes", "run_abuse", "setup_address"]
