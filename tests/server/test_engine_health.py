"""``/health``'s engine check on a running server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_failed_snapshot_shows_the_engine_degraded_in_health(server):
    """The embedded engine whose last snapshot failed still answers, and ``/health``'s
    engine check says it is degraded and why (``EngineService._periodic_snapshot``)."""
    from pmarket.server.health import _engine

    service = getattr(server.runtime, "service", None)
    if service is None:
        pytest.skip("a deployment's engine runs in its own process")
    service.snapshot_problem = "OSError: [Errno 24] Too many open files"
    try:
        engine = await _engine(server.runtime)
    finally:
        service.snapshot_problem = None
    assert engine["status"] == "degraded" and "Too many open files" in engine["detail"]
    assert (await _engine(server.runtime))["status"] == "ok"
