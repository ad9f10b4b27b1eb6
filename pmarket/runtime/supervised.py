"""The embedded exchange's engine, restarted from its snapshot and log when it dies.

``EngineService.run`` lets an exception from the engine propagate: a state nobody can
trust must not go on. A deployment's ``pmarket engine`` process then dies and its
supervisor (systemd, a container runtime) starts it again, and it recovers from the
snapshot and the log. The embedded exchange's engine is a task of the server process:
before this, a dead task stayed dead, the server answered every order with a timeout
until someone restarted the whole process (an outside probe's finding). ``RestartingEngine``
is that supervisor inside the process:

- the dead service's publication under way finishes first (its batch was applied and
  must reach the log, or be redelivered whole), then its lease is released;
- a new ``EngineService`` recovers from the snapshot and the log, exactly as a process
  restart would, and takes over the commands the dead one had read but not completed
  (redelivered: their delivery counts grow, and a command that keeps crashing the
  engine is dead-lettered and answered after ``EngineService.max_deliveries``);
- restarts back off (``backoff_s`` doubling to ``max_backoff_s``, reset after an engine
  that lived ``stable_s``), each one an ERROR line with the traceback, and ``/health``
  shows the engine ``down`` while it recovers and ``degraded`` for ``RECENT_S`` after.

Invariant: at most one ``EngineService`` of the shard runs at a time in this process,
and a new one starts only once the dead one's last publication is settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .service import EngineService

log = logging.getLogger(__name__)

RECENT_S = 60.0
"""``/health`` shows the engine degraded this long after a restart."""


class RestartingEngine:
    """Runs ``make()``'s engine service until stopped, and a new one whenever it dies.

    Args:
        make: a new engine service (on the same bus, snapshot directory and shard).
        on_service: called with each new service (the runtime keeps the current one).
        backoff_s: the first restart delay; doubles for each quick death.
        max_backoff_s: the longest restart delay.
        stable_s: an engine that served this long resets the backoff.
    """

    def __init__(self, make: Callable[[], EngineService],
                 on_service: Callable[[EngineService], None] = lambda s: None,
                 backoff_s: float = 0.25, max_backoff_s: float = 30.0,
                 stable_s: float = 60.0) -> None:
        self.make = make
        self.on_service = on_service
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.restarts = 0
        self.last_error: str | None = None
        self.died_at: float | None = None  # monotonic time of the last death
        self.recovering = False  # between a death and the new engine's recovery
        self._watch: asyncio.Task | None = None  # waits for the new engine's recovery
        self.service = make()
        on_service(self.service)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; restart the engine whenever it dies of an exception."""
        backoff = self.backoff_s
        while True:
            service = self.service
            started = time.monotonic()
            try:
                await service.run(stop)
                return  # stopped
            except Exception as exc:
                if stop.is_set():
                    raise
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                self.died_at = time.monotonic()
                self.recovering = True
                if self.died_at - started >= self.stable_s:
                    backoff = self.backoff_s
                log.error("the embedded engine stopped with an error; recovering a new one "
                          "from the snapshot and the log in %.2fs (restart %d); orders "
                          "wait meanwhile, nothing acknowledged is lost", backoff,
                          self.restarts, exc_info=exc)
            await service.abandon()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            if stop.is_set():
                return
            backoff = min(backoff * 2, self.max_backoff_s)
            self.service = self.make()
            self.on_service(self.service)
            self._watch = asyncio.get_running_loop().create_task(
                self._recovered(self.service))

    async def _recovered(self, service: EngineService) -> None:
        await service.ready.wait()
        if service is self.service:
            self.recovering = False
            log.warning("the embedded engine recovered at seq %d after restart %d",
                        service.engine.last_seq, self.restarts)

    def health(self) -> dict[str, Any] | None:
        """``/health``'s verdict on the restarts: None when none is recent (the engine's
        own checks decide), else its status and detail."""
        if self.recovering:
            return {"status": "down", "detail": f"recovering after restart {self.restarts} "
                    f"(it stopped with {self.last_error})", "restarts": self.restarts}
        if self.died_at is not None and time.monotonic() - self.died_at < RECENT_S:
            return {"status": "degraded", "detail": f"restarted {self.restarts} times; the "
                    f"last stopped with {self.last_error}", "restarts": self.restarts}
        return None
