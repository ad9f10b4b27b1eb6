"""Operations: ``/health`` (each component, truthfully) and ``/metrics`` (Prometheus).

Health checks what a request would need: the database answers ``SELECT 1``, the bus
answers a read of the event stream's head, the engine answers a command round trip
(``Expire``: it only advances the engine's clock and expires due orders, so it is
harmless) and names its build (``compiled`` with mypyc or ``pure`` Python, from its
lease), the market-data replica is following the stream, the read model serves (it
stops on a gap it cannot fill; reads then go to the database), the database projection
(the worker, wherever it runs) is not stalled (``consistency.ProjectionWatch``: behind
the stream without advancing for ``worker_stall_s``), in the embedded mode the engine
and worker tasks are alive, the credential cache is in sync with the database
(``sessions``: ``down`` once it refuses user credentials), and nothing acknowledged
is missing from the database (``projection``: parked events, skipped commands). Any
failure makes the status ``degraded``; a component ``down`` also makes the answer a
503, so load balancers take the instance out (a ``degraded`` one does not — a stalled
worker, parked events: every instance shares them, and taking all out would stop the
trading that still works).

Invariant: a component is reported ``ok`` only if it was checked in this request.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import Response

from pmarket import api
from pmarket.bus import encode_command
from pmarket.engine import Expire
from pmarket.worker import WORKER_GROUP
from pmarket.worker.parked import projection_health

from ..deps import RuntimeDep
from ..errors import JSON
from ..exactjson import ExactJSONRoute

router = APIRouter(route_class=ExactJSONRoute, tags=["system"])

CHECK_TIMEOUT_S = 2.0


def _component(ok: bool, detail: str, **extra) -> dict:
    return {"status": "ok" if ok else "down", "detail": detail, **extra}


@router.get("/health", response_model=api.Health,
            responses={503: {"model": api.Health, "description": "a component is down"}})
async def health(runtime: RuntimeDep):
    """Status of the engine, the database, the bus and the market-data feed.

    The checks run concurrently (the bus-dependent ones after the bus check): each waits
    for a thread, a round trip or the event loop's next turn, and on a busy server a
    chain of seven such waits took 50-100 ms where the longest alone takes a few."""
    (db_ok, db_detail), (bus, engine, worker), projection = await asyncio.gather(
        runtime.check_database(), _bus_checks(runtime),
        # Parked events and skipped commands: acknowledged, yet missing from the database.
        projection_health(runtime.db, runtime.bus, runtime.replica.stream))
    replica = runtime.replica
    marketdata_ok = replica.running and runtime.component_alive("replica") is not False
    marketdata_detail = f"applied up to seq {replica.last_seq}" + (
        "" if marketdata_ok else f"; not following the event stream: {replica.status}")
    components = {
        "engine": engine,
        "database": _component(db_ok, db_detail),
        "bus": bus,
        "marketdata": _component(marketdata_ok, marketdata_detail),
        "projection": projection,
    }
    if runtime.readmodel is not None:  # not serving: reads go to the database (slower)
        model = runtime.readmodel
        components["readmodel"] = {"status": "ok" if model.ready else "degraded",
                                   "detail": model.status()}
    components["worker"] = worker
    components["auth"] = runtime.sessions.health()  # revoked credentials: synced?
    healthy = all(c["status"] == "ok" for c in components.values())
    # 503 takes the instance out of a load balancer: only for what this instance cannot
    # serve without ("down"), not for data an operator must see to (parked events, which
    # every instance shares).
    down = any(c["status"] == "down" for c in components.values())
    return JSON({"status": "ok" if healthy else "degraded", "components": components},
                status_code=503 if down else 200)


async def _bus_checks(runtime) -> tuple[dict, dict, dict]:
    """The bus, then (concurrently) the engine and the worker, which need it."""
    try:
        head = await asyncio.wait_for(runtime.bus.last_id(runtime.replica.stream),
                                      CHECK_TIMEOUT_S)
        bus_ok, bus_detail = True, f"event stream at {head}"
    except Exception as exc:
        bus_ok, bus_detail = False, f"{type(exc).__name__}: {exc}"[:200]
    engine, worker = await asyncio.gather(_engine(runtime, bus_ok), _worker(runtime, bus_ok))
    return _component(bus_ok, bus_detail), engine, worker


async def _engine(runtime, bus_ok: bool) -> dict:
    """The engine answers a harmless command (``Expire``) over the bus."""
    engine_ok, engine_detail, rtt_ms = False, "bus down", None
    if bus_ok and runtime.component_alive("engine") is not False:
        start = time.perf_counter()
        try:
            await runtime.bus.request(encode_command(Expire()), timeout=CHECK_TIMEOUT_S)
            rtt_ms = round((time.perf_counter() - start) * 1000, 3)
            engine_ok, engine_detail = True, "answered a command"
        except Exception as exc:
            engine_detail = f"no answer within {CHECK_TIMEOUT_S}s ({type(exc).__name__})"
    elif bus_ok:
        engine_detail = "the embedded engine task stopped"
    return _component(engine_ok, engine_detail, round_trip_ms=rtt_ms,
                      embedded=runtime.settings.embedded,
                      build=await _engine_build(runtime) if bus_ok else "unknown")


async def _engine_build(runtime) -> str:
    """``compiled`` (mypyc) or ``pure`` (interpreted): the build the shard's engine runs,
    which it names in its lease token (``EngineService``); ``unknown`` when no engine
    holds the lease."""
    try:
        holder = await asyncio.wait_for(
            runtime.bus.lease_holder(runtime.bus.keys.lease(runtime.settings.shard)),
            CHECK_TIMEOUT_S)
    except Exception:  # the bus component reports it
        return "unknown"
    build = (holder or "").rpartition(":")[2]
    return build if build in ("compiled", "pure") else "unknown"


async def _worker(runtime, bus_ok: bool) -> dict:
    """The worker: ``down`` when this instance's own (embedded) worker is gone,
    ``degraded`` while the projection is stalled (wherever the worker runs)."""
    advancing, detail = await _projection(runtime, bus_ok)
    own = runtime.worker_health()  # embedded: the task, or the supervised process
    if own is None:
        return {"status": "ok" if advancing else "degraded", "detail": detail}
    status = "down" if own["status"] != "ok" else "ok" if advancing else "degraded"
    return {**own, "status": status, "detail": f"{own['detail']}; {detail}"}


async def _projection(runtime, bus_ok: bool) -> tuple[bool, str]:
    """Whether the database projection advances (checked now), and how far it is."""
    watch = runtime.watch
    try:
        await asyncio.wait_for(watch.check(), CHECK_TIMEOUT_S)
    except Exception as exc:
        return False, f"cannot read the projection's position ({type(exc).__name__})"
    detail = watch.describe()
    if bus_ok:
        try:
            groups = await asyncio.wait_for(runtime.bus.groups(runtime.replica.stream),
                                            CHECK_TIMEOUT_S)
            group = next((g for g in groups if g.name == WORKER_GROUP), None)
            detail += ("; no worker group on the event stream" if group is None else
                       f"; group {WORKER_GROUP}: {group.pending} pending, "
                       f"{group.consumers} consumers")
        except Exception:  # the bus component reports it
            pass
    return watch.stalled() is None, detail


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(runtime: RuntimeDep):
    """Prometheus metrics of this server process."""
    runtime.metrics.replica_seq.set(runtime.replica.last_seq)
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
