"""``pmarket bench engine``: the Rust engine's published workloads, run on ours.

Every figure is the whole engine — validation, reservation, settlement, ledger and the
events it returns — never a bare book. Commands are built before the clock starts (as a
client would have built them); setup (events, deposits, splits) is excluded.

Workloads: matching-heavy (half asks then half bids at 0.50), book-building (bids
0.40-0.50, asks 0.51-0.61), concurrent users through the asyncio single-writer runner
beside its ceiling (the same clients and hand-off with a no-op engine), single-order
latency (matching and resting), cancel latency, queries (a user's open orders both
unchanged and right after a change), and the memory held by one million resting orders
over a thousand markets.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pmarket.engine import (
    CancelOrder,
    CreateEvent,
    Deposit,
    Engine,
    Outcome,
    PlaceOrder,
    Side,
    Split,
)
from pmarket.engine.events import EventState, first_order
from pmarket.runtime import compiled
from pmarket.runtime.runner import LocalRunner, tune_gc

USERS = 100
RICH = 10**13  # units of cash per benchmark user: never the limiting factor
SHARES = 10**7  # YES+NO pairs each user splits so that sells are always covered

TARGETS = {
    # name: (metric, comparison, value)
    "matching_heavy": ("orders_per_s", ">=", 250_000),
    "book_building": ("orders_per_s", ">=", 400_000),
    "concurrent": ("orders_per_s", ">=", 600_000),
    "single_order_matching": ("p50_us", "<=", 10),
    "single_order_resting": ("p50_us", "<=", 10),
    "cancel": ("p50_us", "<=", 5),
    "best_bid": ("p50_us", "<=", 1),
    "best_ask": ("p50_us", "<=", 1),
    "open_orders": ("p50_us", "<=", 2.5),
    "open_orders_changed": ("p50_us", "<=", 2.5),
    "memory_1m_orders": ("mib", "<=", 1024),
}
P99_TARGETS = {"single_order_matching": 50, "single_order_resting": 50}
CEILING_SHARE = 1.2
"""``concurrent`` also passes within this factor of ``concurrent_ceiling`` (the same
clients and hand-off with a no-op engine): when one await per order caps throughput
below the target, the hand-off, not the engine, is what the target would measure."""

# What the Rust engine publishes for the same workloads (orders/s, or µs per call).
RUST = {
    "matching_heavy": "57-62k/s",
    "book_building": "66-77k/s",
    "concurrent": "~200k ops/s",
    "single_order_matching": "200 µs",
    "single_order_resting": "201 µs",
    "cancel": "212 µs",
    "best_bid": "7.4 µs",
    "best_ask": "7.4 µs",
    "full_book": "8.6 µs",
    "open_orders": "14.4 µs",
}


@dataclass
class Result:
    """One row of the report."""

    name: str
    size: int
    orders_per_s: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    mib: float | None = None
    extra: dict = field(default_factory=dict)

    def verdict(self) -> str | None:
        """"pass"/"fail" against the issue's target, or None if it has none."""
        if self.name not in TARGETS:
            return None
        metric, op, target = TARGETS[self.name]
        value = getattr(self, metric)
        ok = value >= target if op == ">=" else value <= target
        ceiling = self.extra.get("ceiling_orders_per_s")
        if ceiling is not None:
            ok = ok or value * CEILING_SHARE >= ceiling
        if self.name in P99_TARGETS and self.p99_us is not None:
            ok = ok and self.p99_us <= P99_TARGETS[self.name]
        return "pass" if ok else "fail"

    def as_dict(self) -> dict:
        return {
            "name": self.name, "size": self.size, "orders_per_s": self.orders_per_s,
            "p50_us": self.p50_us, "p99_us": self.p99_us, "mib": self.mib,
            "target": _target_text(self.name), "verdict": self.verdict(),
            "rust": RUST.get(self.name), "engine": engine_build(), **self.extra,
        }


def engine_build() -> str:
    """Which engine the figures are of: compiled with mypyc, or pure Python (and why)."""
    if compiled.mode == "compiled":
        return "compiled (mypyc)"
    return f"pure Python: {compiled.reason}"


def _target_text(name: str) -> str | None:
    if name not in TARGETS:
        return None
    metric, op, value = TARGETS[name]
    text = f"{metric} {op} {value:,}"
    if name in P99_TARGETS:
        text += f", p99_us <= {P99_TARGETS[name]}"
    if name == "concurrent":
        text += f", or within {CEILING_SHARE}x of concurrent_ceiling"
    return text


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000


# --- setup -------------------------------------------------------------------------


def _exchange(markets: int = 1, users: int = USERS,
              shares: int = SHARES) -> tuple[Engine, list[int]]:
    """An engine with ``markets`` single-outcome events and funded users holding shares."""
    eng = Engine()
    mids = []
    for k in range(markets):
        (created,) = eng.apply(CreateEvent(title=f"Bench event {k}"))
        assert isinstance(created, EventState)
        (mid, _name), = created.markets
        mids.append(mid)
    for u in range(1, users + 1):
        eng.apply(Deposit(user_id=u, amount=RICH))
        if shares:
            for mid in mids:
                eng.apply(Split(user_id=u, market_id=mid, quantity=shares))
    return eng, mids


_ASKS = ((Side.SELL, Outcome.YES), (Side.BUY, Outcome.NO))
_BIDS = ((Side.BUY, Outcome.YES), (Side.SELL, Outcome.NO))


def _order(user: int, mid: int, yes_price: int, qty: int, bid: bool, k: int) -> PlaceOrder:
    """An order resting at ``yes_price`` on the YES book, alternating the two ways a
    trader can be on each side, so every settlement kind occurs."""
    side, outcome = (_BIDS if bid else _ASKS)[k % 2]
    price = yes_price if outcome is Outcome.YES else 10_000 - yes_price
    return PlaceOrder(user_id=user, market_id=mid, outcome=outcome, side=side,
                      price=price, quantity=qty)


def _matching_cmds(n: int, mid: int, rng: random.Random) -> list[PlaceOrder]:
    half = n // 2
    asks = [_order(rng.randint(1, USERS), mid, 5000, rng.randint(10, 200), False, k)
            for k in range(half)]
    bids = [_order(rng.randint(1, USERS), mid, 5000, rng.randint(10, 200), True, k)
            for k in range(n - half)]
    return asks + bids


def _building_cmds(n: int, mid: int, rng: random.Random) -> list[PlaceOrder]:
    cmds = []
    for k in range(n):
        bid = k % 2 == 0
        price = rng.randint(40, 50) * 100 if bid else rng.randint(51, 61) * 100
        cmds.append(_order(rng.randint(1, USERS), mid, price, rng.randint(10, 200), bid, k // 2))
    return cmds


def _throughput(name: str, n: int, make: Callable, seed: int) -> Result:
    eng, (mid,) = _exchange()
    cmds = make(n, mid, random.Random(seed))
    apply = eng.apply
    gc.collect()
    gc.disable()
    t0 = time.perf_counter_ns()
    for cmd in cmds:
        apply(cmd)
    elapsed = time.perf_counter_ns() - t0
    gc.enable()
    if not eng.audit().ok:
        raise AssertionError(f"{name}: audit failed: {eng.audit().problems[:3]}")
    return Result(name, n, orders_per_s=n / elapsed * 1e9, p50_us=None,
                  extra={"mean_us": elapsed / n / 1000})


# --- latency -------------------------------------------------------------------------


def _latency(name: str, n: int, seed: int, matching: bool) -> Result:
    """Per-order latency against a book already holding 10,000 resting orders."""
    rng = random.Random(seed)
    eng, (mid,) = _exchange()
    for cmd in _building_cmds(10_000, mid, rng):
        eng.apply(cmd)
    if matching:  # each order crosses the best level of the other side
        cmds = [_order(rng.randint(1, USERS), mid, 6100 if k % 2 else 4000,
                       rng.randint(10, 200), k % 2 == 1, k // 2) for k in range(n)]
        refill = _building_cmds(n, mid, rng)
    else:
        cmds, refill = _building_cmds(n, mid, rng), None
    samples = []
    apply = eng.apply
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    for k, cmd in enumerate(cmds):
        t0 = clock()
        apply(cmd)
        samples.append(clock() - t0)
        if refill is not None:
            apply(refill[k])  # keep the book deep, untimed
    gc.enable()
    p50, p99 = _percentiles(samples)
    return Result(name, n, orders_per_s=1e6 / (sum(samples) / len(samples) / 1000),
                  p50_us=p50, p99_us=p99)


def _cancel_latency(n: int, seed: int) -> Result:
    rng = random.Random(seed)
    eng, (mid,) = _exchange()
    ids = []
    for cmd in _building_cmds(n, mid, rng):
        placed = first_order(eng.apply(cmd))
        assert placed is not None
        ids.append((cmd.user_id, placed.order_id))
    rng.shuffle(ids)
    cmds = [CancelOrder(user_id=u, order_id=o) for u, o in ids]
    samples = []
    apply = eng.apply
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    for cmd in cmds:
        t0 = clock()
        apply(cmd)
        samples.append(clock() - t0)
    gc.enable()
    p50, p99 = _percentiles(samples)
    return Result("cancel", n, orders_per_s=1e6 / (sum(samples) / len(samples) / 1000),
                  p50_us=p50, p99_us=p99)


def _queries(n: int, seed: int) -> list[Result]:
    rng = random.Random(seed)
    eng, (mid,) = _exchange()
    for cmd in _building_cmds(10_000, mid, rng):
        eng.apply(cmd)
    user = 1
    calls = {
        "best_bid": lambda: eng.best_bid(mid),
        "best_ask": lambda: eng.best_ask(mid),
        "full_book": lambda: eng.book(mid),
        "open_orders": lambda: eng.open_orders(user),
    }
    out = []
    clock = time.perf_counter_ns
    for name, call in calls.items():
        samples = []
        for _ in range(n):
            t0 = clock()
            call()
            samples.append(clock() - t0)
        p50, p99 = _percentiles(samples)
        out.append(Result(name, n, p50_us=p50, p99_us=p99,
                          extra={"open_orders_of_user": len(eng.open_orders(user))}
                          if name == "open_orders" else {}))
    out.append(_open_orders_changed(eng, mid, user, n))
    return out


def _open_orders_changed(eng: Engine, mid: int, user: int, n: int) -> Result:
    """A user's open orders read right after each of their own commands changed them:
    alternately a new resting order and its cancellation (untimed), so every read
    follows a change to the list (``open_orders`` is the same read with nothing
    changed in between)."""
    samples = []
    apply = eng.apply
    clock = time.perf_counter_ns
    query = eng.open_orders
    for k in range(n):
        if k % 2 == 0:
            placed = apply(_order(user, mid, 4000 + 100 * (k // 2 % 11), 10, True, k // 2))
            order = first_order(placed)
            assert order is not None
            last = order.order_id
        else:
            apply(CancelOrder(user_id=user, order_id=last))
        t0 = clock()
        query(user)
        samples.append(clock() - t0)
    p50, p99 = _percentiles(samples)
    return Result("open_orders_changed", n, p50_us=p50, p99_us=p99,
                  extra={"open_orders_of_user": len(query(user))})


# --- concurrency and memory ------------------------------------------------------------


class NullEngine:
    """An engine that does nothing: behind ``LocalRunner`` it measures the hand-off
    alone (``concurrent_ceiling``), what clients that await each order could reach with
    an engine that cost nothing."""

    def __init__(self) -> None:
        self.now_ms = 0
        self.last_seq = 0

    def apply(self, cmd: object) -> list[tuple[object, ...]]:
        """No events (a fresh list per command, as the engine returns)."""
        return []

    def apply_run(self, cmds: list[Any], ts_ms: int, out: list[list[Any]]) -> None:
        """``Engine.apply_run`` with no work: stamps each command, appends no events."""
        seq = self.last_seq
        for cmd in cmds:
            seq += 1
            cmd.seq = seq
            cmd.ts_ms = ts_ms
            out.append([])
        self.last_seq = seq


def _concurrent(users: int, per_user: int, seed: int) -> list[Result]:
    """``users`` coroutines each awaiting ``per_user`` orders through the runner, and
    the same clients against ``NullEngine`` behind the same runner (the ceiling), one
    right after the other so that both see the same machine.

    Beside them, the engine alone applying the same orders (``engine_orders_per_s``)
    and what the engine's work and the hand-off's together allow when nothing else
    costs anything (``expected_orders_per_s``: one over the sum of the two costs per
    order). Clients awaiting each order run on the same core as the engine, so a
    measured figure near the expected one says the hand-off adds only its own cost,
    and how much of what remains is the engine's work."""
    real, real_cpu = _clients(users, per_user, seed, null=False)
    ceiling, ceiling_cpu = _clients(users, per_user, seed, null=True)
    engine_alone = _engine_alone(users, per_user, seed)
    loop = "uvloop" if _loop_factory() else "asyncio"
    size = users * per_user
    return [
        Result("concurrent", size, orders_per_s=real, extra={
            "users": users, "loop": loop, "ceiling_orders_per_s": ceiling,
            "of_ceiling": real / ceiling, "cpu_orders_per_s": real_cpu,
            "engine_orders_per_s": engine_alone,
            "expected_orders_per_s": 1 / (1 / engine_alone + 1 / ceiling)}),
        Result("concurrent_ceiling", size, orders_per_s=ceiling,
               extra={"users": users, "loop": loop, "cpu_orders_per_s": ceiling_cpu}),
    ]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: installed with uvicorn[standard]
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def _clients_plans(users: int, per_user: int, seed: int
                   ) -> tuple[Engine, list[list[PlaceOrder]]]:
    """The concurrent workload's exchange and each client's orders."""
    rng = random.Random(seed)
    eng, (mid,) = _exchange(users=users, shares=100_000)
    return eng, [
        [_order(u, mid, rng.randint(45, 55) * 100, rng.randint(10, 200), rng.random() < 0.5, k)
         for k in range(per_user)]
        for u in range(1, users + 1)
    ]


def _engine_alone(users: int, per_user: int, seed: int) -> float:
    """Orders/s of the engine applying the concurrent workload's orders itself, in the
    order the runner gets them from clients that each await one order at a time
    (round robin), with the collector tuned as in the clients' run."""
    eng, plans = _clients_plans(users, per_user, seed)
    orders = [plan[k] for k in range(per_user) for plan in plans]
    apply = eng.apply
    gc.collect()
    thresholds = gc.get_threshold()
    try:
        tune_gc()
        t0 = time.perf_counter_ns()
        for cmd in orders:
            apply(cmd)
        elapsed = time.perf_counter_ns() - t0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return len(orders) / elapsed * 1e9


def _clients(users: int, per_user: int, seed: int, null: bool) -> tuple[float, float]:
    """Orders/s of ``users`` clients awaiting their orders one at a time: per second
    of wall time, and per second of this process's CPU time (what a machine shared
    with other work disturbs less)."""
    eng, plans = _clients_plans(users, per_user, seed)
    target = NullEngine() if null else eng

    async def client(runner: LocalRunner, cmds: list[PlaceOrder]) -> None:
        submit = runner.submit
        for cmd in cmds:
            await submit(cmd)

    async def main() -> tuple[int, int]:
        tune_gc()  # as the engine service does once its state is loaded
        async with LocalRunner(target) as runner:
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            await asyncio.gather(*(client(runner, p) for p in plans))
            return time.perf_counter_ns() - t0, time.process_time_ns() - c0

    gc.collect()
    thresholds = gc.get_threshold()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as r:
            elapsed, cpu = r.run(main())
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    total = users * per_user
    return total / elapsed * 1e9, total / max(cpu, 1) * 1e9


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory(orders: int, markets: int, seed: int) -> Result:
    """Resident memory of an engine holding ``orders`` resting orders.

    Measured in a fresh interpreter: in this one, the memory the earlier workloads freed
    would be reused first and hide part of the figure (a quarter of it at 100,000 orders,
    all of it at a few thousand).
    """
    script = "from pmarket.bench.engine import _memory_main; _memory_main()"
    proc = subprocess.run([sys.executable, "-c", script, str(orders), str(markets), str(seed)],
                          capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory workload failed: {proc.stderr.decode()[-2000:]}")
    return Result(**orjson.loads(proc.stdout))


def _memory_main() -> None:
    """The fresh interpreter's side of ``_memory``: arguments in argv, the Result as JSON."""
    orders, markets, seed = map(int, sys.argv[1:4])
    sys.stdout.buffer.write(orjson.dumps(asdict(_memory_here(orders, markets, seed))))


def _memory_here(orders: int, markets: int, seed: int) -> Result:
    """``_memory`` measured in this interpreter."""
    rng = random.Random(seed)
    gc.collect()
    before = _rss_mib()
    eng, mids = _exchange(markets=markets, users=USERS, shares=0)
    for k in range(orders):
        mid = mids[k % markets]
        bid = k % 2 == 0
        price = rng.randint(1, 50) * 100 if bid else rng.randint(51, 99) * 100
        eng.apply(PlaceOrder(user_id=rng.randint(1, USERS), market_id=mid,
                             outcome=Outcome.YES if bid else Outcome.NO, side=Side.BUY,
                             price=price if bid else 10_000 - price, quantity=10))
    gc.collect()
    used = _rss_mib() - before
    resting = len(eng.orders)
    del eng
    gc.collect()
    return Result("memory_1m_orders", resting, mib=used,
                  extra={"markets": markets, "bytes_per_order": used * 2**20 / resting})


# --- the whole run -----------------------------------------------------------------------


WORKLOADS = ("matching_heavy", "book_building", "concurrent", "single_order_matching",
             "single_order_resting", "cancel", "queries", "memory_1m_orders")
"""What ``run(only=...)`` selects from; ``queries`` gives the best_bid, best_ask,
full_book, open_orders and open_orders_changed rows."""


def run(quick: bool = False, seed: int = 1, only: set[str] | None = None,
        progress: Callable[[str], None] | None = None) -> list[Result]:
    """Run every workload (``quick``: smaller sizes) and return the report rows.

    Raises:
        ValueError: ``only`` names something that is not in ``WORKLOADS``.
    """
    unknown = sorted((only or set()) - set(WORKLOADS))
    if unknown:
        raise ValueError(f"unknown workload {', '.join(unknown)}: choose from "
                         f"{', '.join(WORKLOADS)}")
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 50_000)
    lat_n = 5_000 if quick else 20_000
    steps: list[tuple[str, Callable[[], list[Result]]]] = []
    for n in sizes:
        steps.append(("matching_heavy", lambda n=n: [_throughput(
            "matching_heavy", n, _matching_cmds, seed)]))
    for n in sizes:
        steps.append(("book_building", lambda n=n: [_throughput(
            "book_building", n, _building_cmds, seed)]))
    for users in (100,) if quick else (100, 500, 1000):
        steps.append(("concurrent", lambda u=users: _concurrent(u, 100, seed)))
    steps.append(("single_order_matching",
                  lambda: [_latency("single_order_matching", lat_n, seed, True)]))
    steps.append(("single_order_resting",
                  lambda: [_latency("single_order_resting", lat_n, seed, False)]))
    steps.append(("cancel", lambda: [_cancel_latency(lat_n, seed)]))
    steps.append(("queries", lambda: _queries(lat_n, seed)))
    steps.append(("memory_1m_orders",
                  lambda: [_memory(100_000 if quick else 1_000_000, 1_000, seed)]))
    results: list[Result] = []
    for name, step in steps:
        if only and name not in only:
            continue
        if progress:
            progress(name)
        results.extend(step())
    return results
