"""Supervision of a running server: its liveness, dead servers' groups, the projection.

``Supervisor.run`` is one task of the server (``runtime``). Until the server stops it:

* renews this server's liveness mark (``Bus.keep_alive``, a key living
  ``reap_after_s``) every quarter of that time, so no other server ever takes its
  consumer group. A mark found gone means this process stalled longer than that (or
  Redis lost its data): its group may have been reaped, which the market-data replica
  notices (``UnknownGroup``) and heals by resynchronising; the supervisor logs it;
* every half of ``reap_after_s`` (and once at start) removes the event stream groups of
  servers whose mark expired and whose consumers were idle that long
  (``Bus.reap_dead_groups``): a server killed without ``stop`` would otherwise hold back
  the stream's trimming forever, and the stream would grow without bound;
* every ``watch_every_s`` checks the database projection
  (``consistency.ProjectionWatch``), so reads after writes fail fast once it is known
  to be stalled.

Invariant: a failed round (bus or database down) is retried on the next one and never
ends the task; the outage itself is reported by the replica, ``/health`` and the
requests that need the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pmarket.bus import Bus, BusError

from .consistency import ProjectionWatch

log = logging.getLogger("pmarket.server.supervision")

DEFAULT_MARK_S = 60.0
"""How long the liveness mark lives when reaping is disabled (``reap_after_s`` 0)."""


class Supervisor:
    """The server's housekeeping task (see the module docstring).

    Args:
        bus: this server's bus (its ``instance`` names the mark and the group).
        stream: the event stream whose dead groups are reaped.
        watch: the projection watch to keep up to date.
        reap_after_s: the mark's time to live and the consumers' idle threshold of
            reaping; 0 keeps a mark (of ``DEFAULT_MARK_S``) but reaps nothing.
        watch_every_s: how often the projection is checked.
    """

    def __init__(self, bus: Bus, stream: str, watch: ProjectionWatch, *,
                 reap_after_s: float, watch_every_s: float = 1.0) -> None:
        self.bus = bus
        self.stream = stream
        self.watch = watch
        self.reap_after_s = reap_after_s
        self.watch_every_s = watch_every_s
        self.mark_ms = round((reap_after_s or DEFAULT_MARK_S) * 1000)
        self.reaped: list[str] = []  # every group this server removed
        self._marked = False

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop`` is set."""
        renew_every = self.mark_ms / 4000
        reap_every = self.reap_after_s / 2
        retry = min(1.0, renew_every)  # after a failed round
        next_renew = next_reap = next_watch = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_renew:
                next_renew = now + (renew_every if await self._renew() else retry)
            if self.reap_after_s > 0 and now >= next_reap:
                next_reap = now + (reap_every if await self._reap() else retry)
            if now >= next_watch:
                await self._check()
                next_watch = now + self.watch_every_s
            deadlines = [next_renew, next_watch] + ([next_reap] if self.reap_after_s else [])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(),
                                       max(0.01, min(deadlines) - time.monotonic()))

    async def _renew(self) -> bool:
        try:
            kept = await self.bus.keep_alive(self.mark_ms)
        except BusError as exc:
            log.debug("renewing the liveness mark failed: %s", exc)
            return False
        if self._marked and not kept:
            log.error("this server's liveness mark had expired (the process stalled for "
                      "more than %.1f s, or Redis lost its data): other servers may have "
                      "removed its consumer group; market data resynchronises if so",
                      self.mark_ms / 1000)
        self._marked = True
        return True

    async def _reap(self) -> bool:
        try:
            self.reaped += await self.bus.reap_dead_groups(
                self.stream, idle_ms=round(self.reap_after_s * 1000))
        except BusError as exc:
            log.debug("reaping dead servers' groups failed: %s", exc)
            return False
        return True

    async def _check(self) -> None:
        try:
            await self.watch.check()
        except Exception as exc:  # the database is down: /health and requests say so
            log.debug("checking the projection failed: %s", exc)

    async def release(self) -> None:
        """Give the liveness mark up (a clean stop; the group is deleted separately)."""
        with contextlib.suppress(BusError):
            await self.bus.release_lease(self.bus.keys.alive(self.bus.instance),
                                         self.bus.instance)
