"""``/health``: its checks run continuously in the background; the report reads them.

Every check that must wait for something — the database's ``SELECT 1``, the bus's
event-stream head, the engine's command round trip (``Expire``: it only advances the
engine's clock and expires due orders, so it is harmless) and the build it names in its
lease, the database projection's position (``consistency.ProjectionWatch``) and the
worker group on the stream, parked events and skipped commands
(``worker.parked.projection_health``) — runs in a loop of its own (``HealthMonitor``):
one attempt at a time, each bounded by ``timeout_s``, then ``interval_s`` of rest, all
checks concurrently. ``report`` builds ``/health`` from the latest results without
waiting for anything, so ``/health`` costs one turn of the event loop however busy the
server is. Before, the request ran the checks itself: a thread for each database check,
the engine's round trip and the bus, each waiting a full turn behind the queue of
requests, made ``/health`` 50-100 ms on a server saturated by reads that answered in 3.

The engine's round trip writes a command to the log, so it runs only while ``/health``
is being asked (a request in the last ``DEMAND_S``, 30 s): an exchange nobody probes logs
nothing, and the first request after a quiet spell waits for a fresh round trip (at most
``timeout_s``), as every request did before. The others read only, and run always.

What needs no waiting is still read in the request: the market-data replica, the read
model, the embedded engine and worker tasks (or the worker process), the credential
cache (``sessions``).

Bounds (``PMARKET_HEALTH_INTERVAL_S``, ``PMARKET_HEALTH_TIMEOUT_S``; 1 s and 2 s by
default):

* a dependency that dies or stalls is reported within ``interval_s + timeout_s`` (3 s):
  the next attempt starts at most ``interval_s`` after the last one ended, and fails
  within ``timeout_s`` (at once for a refused connection);
* each checked component carries ``age_ms`` (how long ago its latest result was
  obtained) and ``check_ms`` (how long that attempt took);
* a result older than ``max_age_s`` = ``interval_s + timeout_s + 1 s`` (4 s) is reported
  ``down`` as *stale*, whatever it said: every attempt ends within ``timeout_s``, so an
  older result means the checker itself stopped or is stuck, and nothing vouches for
  the component any more.

Status: a failure makes the answer ``degraded``; a component ``down`` also makes it a
503, so load balancers take the instance out (a ``degraded`` one does not — a stalled
worker, parked events: every instance shares them, and taking all out would stop the
trading that still works).

Invariant: ``/health`` reports a component ``ok`` only from a result obtained less than
``max_age_s`` ago or from state read in the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from pmarket.bus import Bus, encode_command
from pmarket.engine import Expire
from pmarket.runtime.supervised import RestartingEngine
from pmarket.worker import WORKER_GROUP
from pmarket.worker.parked import projection_health

from .connections import ConnectionGuard
from .consistency import ProjectionWatch
from .marketdata import Replica
from .readmodel import ReadModel
from .sessions import Sessions
from .settings import Settings

log = logging.getLogger("pmarket.server.health")

GRACE_S = 1.0
"""How much older than ``interval_s + timeout_s`` a result may be before it is stale
(the event loop's delays on a saturated server are well below it)."""

DEMAND_S = 30.0
"""An on-demand probe keeps running this long after the last ``/health`` request."""

Check = Callable[[], Awaitable[dict[str, Any]]]


class Runtime(Protocol):
    """What the checks and the report read of the server's running parts
    (``runtime.Runtime`` is the one)."""

    settings: Settings
    db: Engine
    bus: Bus
    replica: Replica
    readmodel: ReadModel | None
    sessions: Sessions
    watch: ProjectionWatch
    health: HealthMonitor
    connections: ConnectionGuard
    engine: RestartingEngine | None  # embedded: what restarts its engine service
    service: Any  # embedded: the engine service running now

    async def check_database(self) -> tuple[bool, str]:
        """Whether the database answers, and its detail."""

    def component_alive(self, name: str) -> bool | None:
        """Whether this process's own component task is alive (None: it has none)."""

    def worker_health(self) -> dict | None:
        """This instance's own (embedded) worker's state, or None in a deployment."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One background check.

    Attributes:
        check: returns the component (``status``, ``detail``, any other fields).
        failure: the status of an attempt that raised or timed out (``down`` for what
            this instance cannot serve without, ``degraded`` for what every instance
            shares).
        on_demand: run only while ``/health`` is asked (a request within ``DEMAND_S``):
            for a check that writes — the engine's round trip puts a command in the
            log — so that an exchange nobody probes logs nothing. The first request
            after a quiet spell waits for a fresh attempt.
    """

    check: Check
    failure: str = "down"
    on_demand: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one attempt: the component, when it was obtained, how long it took."""

    component: dict[str, Any]
    at: float
    took_s: float


class HealthMonitor:
    """Runs each probe in a loop of its own and keeps its latest result (module docstring).

    Args:
        probes: the checks by component name.
        interval_s: rest between the end of an attempt and the start of the next.
        timeout_s: longest attempt; beyond it the attempt is a failure.
        clock: monotonic seconds (tests pass their own).

    Raises:
        ValueError: ``interval_s`` or ``timeout_s`` is not above 0.
    """

    def __init__(self, probes: dict[str, Probe], *, interval_s: float, timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0 or not timeout_s > 0:
            raise ValueError(f"health checks need an interval and a timeout above 0 s "
                             f"(got {interval_s!r} and {timeout_s!r})")
        self.probes = probes
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_age_s = interval_s + timeout_s + GRACE_S
        self.clock = clock
        self.results: dict[str, Result] = {}
        self.running_since: dict[str, float] = {}  # the attempt in flight, per probe
        self.asked_at = -math.inf  # the last /health request
        self.started_at = clock()
        self._parked: dict[str, asyncio.Event] = {}  # on-demand probes nobody asked for
        self._waiters: dict[str, list[asyncio.Future]] = {}  # for a probe's next result

    @property
    def bounds(self) -> dict[str, float]:
        """The figures ``/health`` states beside its components (seconds)."""
        return {"interval_s": self.interval_s, "timeout_s": self.timeout_s,
                "max_age_s": self.max_age_s}

    async def run(self, stop: asyncio.Event) -> None:
        """Check until ``stop`` is set, each probe in a task of its own."""
        loops = [asyncio.create_task(self._loop(name, probe, stop), name=f"pmarket-health-{name}")
                 for name, probe in self.probes.items()]
        try:
            await stop.wait()
        finally:
            for task in loops:
                task.cancel()
            # An attempt that ignores cancellation must not hold up the server's stop.
            if loops:
                await asyncio.wait(loops, timeout=self.timeout_s)

    async def _loop(self, name: str, probe: Probe, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if probe.on_demand and self.clock() - self.asked_at > DEMAND_S:
                wake = self._parked[name] = asyncio.Event()
                await _first_of(wake.wait(), stop.wait())
                self._parked.pop(name, None)
                continue
            result = await self._attempt(name, probe)
            self._note(name, self.results.get(name), result)
            self.results[name] = result
            for waiter in self._waiters.pop(name, []):
                if not waiter.done():
                    waiter.set_result(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def _attempt(self, name: str, probe: Probe) -> Result:
        start = self.running_since[name] = self.clock()
        try:
            component = await asyncio.wait_for(probe.check(), self.timeout_s)
        except TimeoutError:
            component = {"status": probe.failure,
                         "detail": f"no answer within {self.timeout_s:g} s"}
        except Exception as exc:
            component = {"status": probe.failure,
                         "detail": f"{type(exc).__name__}: {exc}"[:200]}
        finally:
            self.running_since.pop(name, None)
        end = self.clock()
        return Result(component, end, end - start)

    @staticmethod
    def _note(name: str, before: Result | None, now: Result) -> None:
        """Log each change of a component's status (not every attempt)."""
        was = "ok" if before is None else before.component["status"]
        status = now.component["status"]
        if status != was and status != "ok":
            log.warning("health: %s is %s: %s", name, status, now.component["detail"])
        elif status != was:
            log.info("health: %s is ok again", name)

    async def ready(self) -> None:
        """Note a ``/health`` request, and wait (at most ``timeout_s + GRACE_S``) only for
        the probes without a result yet — the server's first moments — and the
        on-demand probes parked since the last request more than ``DEMAND_S`` ago,
        which it wakes. Otherwise it returns without suspending: ``/health`` stays one
        turn of the event loop."""
        now = self.asked_at = self.clock()
        starting = now - self.started_at <= self.timeout_s + GRACE_S
        waiting = [name for name in self.probes
                   if name in self._parked or (starting and name not in self.results)]
        if not waiting:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for name in waiting:
            futures.append(loop.create_future())
            self._waiters.setdefault(name, []).append(futures[-1])
            wake = self._parked.get(name)
            if wake is not None:
                wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s + GRACE_S)

    def component(self, name: str) -> dict[str, Any]:
        """The latest result of ``name`` with its age, or ``down`` when it is stale or
        there is none."""
        now = self.clock()
        result = self.results.get(name)
        running = self.running_since.get(name)
        pending = "" if running is None else \
            f"; an attempt has been running for {now - running:.1f} s"
        if result is None:
            return {"status": "down", "detail": f"not checked yet{pending}",
                    "age_ms": None, "check_ms": None}
        age = now - result.at
        age_ms = round(age * 1000)
        figures = {"age_ms": age_ms, "check_ms": round(result.took_s * 1000, 1)}
        # Decided on the figure shown: stale exactly when ``age_ms`` exceeds the bound
        # (2,500.4 ms would otherwise show as 2500 and be stale).
        if age_ms <= self.max_age_s * 1000:
            return {**result.component, **figures}
        last = result.component
        return {**last, **figures, "status": "down",
                "detail": f"stale: last checked {age:.1f} s ago, longer than "
                          f"{self.max_age_s:g} s (the health checker is stopped or stuck)"
                          f"{pending}; it said {last['status']}: {last['detail']}"}


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _component(ok: bool, detail: str, **extra: Any) -> dict[str, Any]:
    return {"status": "ok" if ok else "down", "detail": detail, **extra}


def probes(runtime: Runtime) -> dict[str, Probe]:
    """The background checks of a started runtime."""

    async def database() -> dict[str, Any]:
        ok, detail = await runtime.check_database()
        return _component(ok, detail)

    async def bus() -> dict[str, Any]:
        head = await runtime.bus.last_id(runtime.replica.stream)
        return _component(True, f"event stream at {head}")

    async def projection() -> dict[str, Any]:
        # Parked events and skipped commands: acknowledged, yet missing from the database.
        return await projection_health(runtime.db, runtime.bus, runtime.replica.stream)

    return {"database": Probe(database), "bus": Probe(bus),
            "engine": Probe(lambda: _engine(runtime), on_demand=True),
            "worker": Probe(lambda: _projection(runtime), failure="degraded"),
            "projection": Probe(projection)}


async def _engine(runtime: Runtime) -> dict[str, Any]:
    """The engine answers a harmless command (``Expire``) over the bus, and names its
    build in its lease."""
    if runtime.component_alive("engine") is False:
        return _component(False, "the embedded engine task stopped")
    restarts = runtime.engine.health() if runtime.engine is not None else None
    if restarts is not None and restarts["status"] == "down":  # recovering: no round trip
        return restarts

    async def round_trip() -> float:
        start = time.perf_counter()
        await runtime.bus.request(encode_command(Expire()), timeout=runtime.health.timeout_s)
        return round((time.perf_counter() - start) * 1000, 3)

    rtt, build = await asyncio.gather(round_trip(), _engine_build(runtime),
                                      return_exceptions=True)
    if isinstance(rtt, BaseException):
        return _component(False, f"no answer ({type(rtt).__name__}: {rtt})"[:200],
                          build=build if isinstance(build, str) else "unknown")
    service = runtime.service  # the embedded engine's
    problem = service.snapshot_problem if service is not None else None
    if problem is not None:  # it runs, but its log grows untrimmed: degraded
        return {"status": "degraded", "detail": f"answered a command; its last snapshot "
                f"failed ({problem})", "round_trip_ms": rtt,
                "build": build if isinstance(build, str) else "unknown"}
    if restarts is not None:  # it answers again, after a restart
        return {**restarts, "detail": f"answered a command; {restarts['detail']}",
                "round_trip_ms": rtt, "build": build if isinstance(build, str) else "unknown"}
    return _component(True, "answered a command", round_trip_ms=rtt,
                      build=build if isinstance(build, str) else "unknown")


async def _engine_build(runtime: Runtime) -> str:
    """``compiled`` (mypyc) or ``pure`` (interpreted): the build the shard's engine runs,
    which it names in its lease token (``EngineService``); ``unknown`` when no engine
    holds the lease."""
    holder = await runtime.bus.lease_holder(runtime.bus.keys.lease(runtime.settings.shard))
    build = (holder or "").rpartition(":")[2]
    return build if build in ("compiled", "pure") else "unknown"


async def _projection(runtime: Runtime) -> dict[str, Any]:
    """Whether the database projection advances (the worker, wherever it runs), and how
    far it is: ``degraded`` while stalled or unreadable (every instance shares it)."""
    watch = runtime.watch
    try:
        await watch.check()
    except Exception as exc:
        return {"status": "degraded",
                "detail": f"cannot read the projection's position ({type(exc).__name__})"}
    detail = watch.describe()
    try:
        groups = await runtime.bus.groups(runtime.replica.stream)
        group = next((g for g in groups if g.name == WORKER_GROUP), None)
        detail += ("; no worker group on the event stream" if group is None else
                   f"; group {WORKER_GROUP}: {group.pending} pending, "
                   f"{group.consumers} consumers")
    except Exception:  # the bus component reports it
        pass
    return {"status": "ok" if watch.stalled() is None else "degraded", "detail": detail}


def report(runtime: Runtime) -> tuple[dict[str, Any], int]:
    """``/health``'s body and status code, from the monitor's latest results and the
    state of this process, without waiting for anything."""
    monitor = runtime.health
    replica = runtime.replica
    marketdata_ok = replica.running and runtime.component_alive("replica") is not False
    marketdata_detail = f"applied up to seq {replica.last_seq}" + (
        "" if marketdata_ok else f"; not following the event stream: {replica.status}")
    engine = {"round_trip_ms": None, "build": "unknown", **monitor.component("engine"),
              "embedded": runtime.settings.embedded}
    if runtime.component_alive("engine") is False:  # seen now, not at the last check
        engine.update(status="down", detail="the embedded engine task stopped")
    components = {
        "engine": engine,
        "database": monitor.component("database"),
        "bus": monitor.component("bus"),
        "marketdata": _component(marketdata_ok, marketdata_detail),
        "projection": monitor.component("projection"),
    }
    if runtime.readmodel is not None:  # not serving: reads go to the database (slower)
        model = runtime.readmodel
        components["readmodel"] = {"status": "ok" if model.ready else "degraded",
                                   "detail": model.status()}
    components["worker"] = _worker(runtime, monitor.component("worker"))
    components["auth"] = runtime.sessions.health()  # revoked credentials: synced?
    components["connections"] = runtime.connections.health()  # refusals, deadlines
    healthy = all(c["status"] == "ok" for c in components.values())
    down = any(c["status"] == "down" for c in components.values())
    body = {"status": "ok" if healthy else "degraded", "components": components,
            "checks": monitor.bounds}
    return body, 503 if down else 200


def _worker(runtime: Runtime, projection: dict[str, Any]) -> dict[str, Any]:
    """The worker: ``down`` when this instance's own (embedded) worker is gone (seen
    now), else the projection's verdict (checked in the background)."""
    own = runtime.worker_health()  # embedded: the task, or the supervised process
    if own is None:
        return projection
    status = "down" if own["status"] != "ok" else projection["status"]
    return {**projection, **own, "status": status,
            "detail": f"{own['detail']}; {projection['detail']}"}
