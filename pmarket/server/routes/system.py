"""Operations: ``/health`` (each component, truthfully) and ``/metrics`` (Prometheus).

Health checks what a request would need: the database answers ``SELECT 1``, the bus
answers a read of the event stream's head, the engine answers a command round trip
(``Expire``: it only advances the engine's clock and expires due orders, so it is
harmless), the market-data replica is following the stream, and in the embedded mode
the engine and worker tasks are alive, and nothing acknowledged is missing from the
database (``projection``: parked events, skipped commands). Any failure makes the status
``degraded``; a component ``down`` also makes the answer a 503, so load balancers take
the instance out (a ``degraded`` projection does not: every instance shares it).

Invariant: a component is reported ``ok`` only if it was checked in this request.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import Response

from pmarket.bus import encode_command
from pmarket.engine import Expire
from pmarket.worker.parked import projection_health

from ..deps import RuntimeDep
from ..errors import JSON
from ..schemas import HealthOut

router = APIRouter(tags=["system"])

CHECK_TIMEOUT_S = 2.0


def _component(ok: bool, detail: str, **extra) -> dict:
    return {"status": "ok" if ok else "down", "detail": detail, **extra}


@router.get("/health", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "a component is down"}})
async def health(runtime: RuntimeDep):
    """Status of the engine, the database, the bus and the market-data feed."""
    db_ok, db_detail = await runtime.check_database()
    try:
        head = await asyncio.wait_for(runtime.bus.last_id(runtime.replica.stream),
                                      CHECK_TIMEOUT_S)
        bus_ok, bus_detail = True, f"event stream at {head}"
    except Exception as exc:
        bus_ok, bus_detail = False, f"{type(exc).__name__}: {exc}"[:200]
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
    worker_alive = runtime.component_alive("worker")
    marketdata_ok = runtime.replica.running and runtime.component_alive("replica") is not False
    components = {
        "engine": _component(engine_ok, engine_detail, round_trip_ms=rtt_ms,
                             embedded=runtime.settings.embedded),
        "database": _component(db_ok, db_detail),
        "bus": _component(bus_ok, bus_detail),
        "marketdata": _component(marketdata_ok, f"applied up to seq {runtime.replica.last_seq}"),
    }
    # Parked events and skipped commands: acknowledged, yet missing from the database.
    components["projection"] = await projection_health(runtime.db, runtime.bus,
                                                       runtime.replica.stream)
    if worker_alive is not None:
        process = getattr(runtime.worker, "process", None)
        components["worker"] = _component(
            worker_alive, "embedded worker task" if process is None
            else f"embedded worker process (pid {process.pid})")
    healthy = all(c["status"] == "ok" for c in components.values())
    # 503 takes the instance out of a load balancer: only for what this instance cannot
    # serve without ("down"), not for data an operator must see to (parked events, which
    # every instance shares).
    down = any(c["status"] == "down" for c in components.values())
    return JSON({"status": "ok" if healthy else "degraded", "components": components},
                status_code=503 if down else 200)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(runtime: RuntimeDep):
    """Prometheus metrics of this server process."""
    runtime.metrics.replica_seq.set(runtime.replica.last_seq)
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
