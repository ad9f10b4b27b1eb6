"""Operations: ``/health`` (each component, truthfully) and ``/metrics`` (Prometheus).

``/health`` answers from the checks the server runs continuously in the background and
from the state of this process (``health``: what is checked, how often, and the bounds
within which a dead or stalled dependency shows); it waits for nothing, so a busy
server answers it as fast as a read.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from pmarket import api

from .. import health as checks
from ..deps import RuntimeDep
from ..errors import JSON
from ..exactjson import ExactJSONRoute

router = APIRouter(route_class=ExactJSONRoute, tags=["system"])


@router.get("/health", response_model=api.Health,
            responses={503: {"model": api.Health, "description": "a component is down"}})
async def health(runtime: RuntimeDep):
    """Status of the engine, the database, the bus, the market-data feed, the read
    model, the worker, the projection and the credential cache.

    The latest result of each background check, with its age (``age_ms``); one older
    than ``checks.max_age_s`` is reported ``down`` (stale), never ``ok``."""
    await runtime.health.ready()  # waits only at first, and after a quiet spell
    body, status = checks.report(runtime)
    return JSON(body, status_code=status)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(runtime: RuntimeDep):
    """Prometheus metrics of this server process."""
    runtime.metrics.replica_seq.set(runtime.replica.last_seq)
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
