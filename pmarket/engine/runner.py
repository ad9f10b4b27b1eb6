"""The engine's in-process shell: one asyncio task is the single writer.

Any number of coroutines ``await runner.submit(command)``; the writer task stamps each
command with the next sequence number and the wall-clock time (the only clock the engine
ever sees), applies it, and resolves the caller's future with the command's events.
Commands are applied strictly in submission order, so the log of stamped commands
replays to the same state. Hand-off is a plain deque plus a wake-up event: the writer
drains everything queued per loop iteration, which is what lets hundreds of concurrent
clients share one engine cheaply.
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
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.applied = 0

    async def __aenter__(self) -> LocalRunner:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the writer."""
        if self._task is not None:
            task, self._task = self._task, None
            self._wake.set()
            await task

    def submit_nowait(self, cmd: Command) -> asyncio.Future:
        """Queue a command; the future resolves to its events."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((cmd, fut))
        self._wake.set()
        return fut

    async def submit(self, cmd: Command) -> list[tuple]:
        """Apply a command (after everything queued before it) and return its events."""
        return await self.submit_nowait(cmd)

    async def _run(self) -> None:
        queue = self._queue
        engine = self.engine
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                cmd, fut = queue.popleft()
                cmd.seq = engine.last_seq + 1
                cmd.ts_ms = self.clock()
                try:
                    events = engine.apply(cmd)
                except Exception as exc:  # a broken invariant: fail loudly, stop writing
                    fut.set_exception(exc)
                    for _, other in queue:
                        other.set_exception(RuntimeError("engine stopped after an error"))
                    queue.clear()
                    raise
                self.applied += 1
                if self.on_applied is not None:
                    self.on_applied(cmd, events)
                if not fut.done():
                    fut.set_result(events)
            if self._task is None:
                return
