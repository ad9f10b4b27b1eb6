"""The engine's in-process shell: a single writer on the asyncio loop.

Any number of coroutines ``await runner.submit(command)``. The first submission after
the queue was empty schedules one *drain* on the loop; the drain stamps every queued
command with the next sequence number and the wall-clock time (the only clock the engine
ever sees), applies them in submission order, and resolves each caller's future with
its command's events. Commands are therefore applied strictly one at a time and in
order, so the log of stamped commands replays to the same state. There is no writer
task to wake: per command the cost is one future and the caller's own wake-up, which is
what lets hundreds of concurrent clients share one engine cheaply.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable

from .commands import Command
from .engine import Engine


def now_ms() -> int:
    """Wall-clock Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def tune_gc() -> None:
    """Make gen-2 collections rare and cheap for a process holding a large engine.

    The engine keeps hundreds of thousands of long-lived objects; freezing what exists
    after loading and raising the thresholds cuts collector pauses from tens of
    milliseconds to well under one (docs/PERFORMANCE.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class LocalRunner:
    """Applies submitted commands to one engine, one at a time, in order.

    Args:
        engine: the engine to drive.
        clock: returns the current Unix time in ms (injected in tests and simulations).
        on_applied: called with ``(command, events)`` after each command, e.g. to append
            to a log or publish events.
    """

    def __init__(self, engine: Engine, clock: Callable[[], int] = now_ms,
                 on_applied: Callable[[Command, list[tuple]], None] | None = None):
        self.engine = engine
        self.clock = clock
        self.on_applied = on_applied
        self._queue: deque[tuple[Command, asyncio.Future]] = deque()
        self._scheduled = False
        self._error: BaseException | None = None
        self.applied = 0

    async def __aenter__(self) -> LocalRunner:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start(self) -> None:
        """Accept commands (kept for symmetry with the bus-driven service)."""

    async def stop(self) -> None:
        """Apply what is still queued; raise the error that stopped the writer, if any."""
        if self._queue and self._error is None:
            self._drain()
        if self._error is not None:
            raise self._error

    def submit_nowait(self, cmd: Command) -> asyncio.Future:
        """Queue a command; the future resolves to its events."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self._error is not None:
            fut.set_exception(RuntimeError(f"engine stopped after an error: {self._error!r}"))
            return fut
        self._queue.append((cmd, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)
        return fut

    async def submit(self, cmd: Command) -> list[tuple]:
        """Apply a command (after everything queued before it) and return its events."""
        return await self.submit_nowait(cmd)

    def _drain(self) -> None:
        self._scheduled = False
        queue = self._queue
        engine = self.engine
        apply = engine.apply
        on_applied = self.on_applied
        clock = self.clock
        while queue:
            cmd, fut = queue.popleft()
            cmd.seq = engine.last_seq + 1
            cmd.ts_ms = clock()
            try:
                events = apply(cmd)
            except Exception as exc:  # a broken invariant: fail loudly, stop writing
                self._error = exc
                fut.set_exception(exc)
                for _, other in queue:
                    other.set_exception(RuntimeError("engine stopped after an error"))
                queue.clear()
                return
            self.applied += 1
            if on_applied is not None:
                on_applied(cmd, events)
            if not fut.done():
                fut.set_result(events)
