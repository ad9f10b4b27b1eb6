"""The engine's in-process shell: a single writer on the asyncio loop.

Any number of coroutines ``await runner.submit(command)``. Submissions are handed to
the engine in *batches*: the first one after the last drain opens a batch and schedules
a drain on the loop; later ones join it (up to ``batch`` commands, then the next batch
opens). A drain stamps one batch's commands with the next sequence numbers and one
wall-clock reading (the only clock the engine ever sees; never earlier than the
engine's), applies them in submission order, stores each command's events at its
position in the batch and resolves the batch's ONE future: every caller of the batch
wakes from it and takes its own events by position. Then the next drain is scheduled
behind the callers it answered, whose next commands join the next batch. Commands are
therefore applied strictly one at a time and in order, so the log of stamped commands
replays to the same state.

Per command that leaves the engine's own work, the caller's wake-up and a list slot:
no future, no callback of its own (one future per command held clients of a no-op
engine about 30% lower; README, "Engine figures").

Errors stay with their command: a command the engine rejects gets its ``rejected``
event like any other; a submission that is not a command raises ``TypeError`` to its
caller before it is queued; a caller cancelled while it waits raises
``CancelledError`` (its command is still applied, as a request already sent) without
disturbing the others waiting on the same batch. Only an exception from the engine
itself (a broken invariant) stops the writer: that command's caller gets it, every
later one ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pmarket.bus.waiting import Batch
from pmarket.engine.commands import Command
from pmarket.engine.events import EngineEvent


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


class Writable(Protocol):
    """What the runner drives: ``Engine``, or a stand-in such as the benchmark's no-op
    engine that measures the hand-off alone."""

    now_ms: int
    last_seq: int

    def apply(self, cmd: Command) -> list[EngineEvent]: ...

    def apply_run(self, cmds: list[Command], ts_ms: int,
                  out: list[list[EngineEvent]]) -> None: ...


class LocalRunner:
    """Applies submitted commands to one engine, one at a time, in order, in batches.

    Args:
        engine: the engine to drive.
        clock: returns the current Unix time in ms (injected in tests and simulations).
        on_applied: called with ``(command, events)`` after each command, e.g. to append
            to a log or publish events; an exception from it stops the writer like one
            from the engine (what was applied could not be recorded).
        batch: the most commands one drain applies before it lets the callers it has
            answered run. Small batches keep the working set (the answered commands'
            events, the woken coroutines) in the CPU cache: with 1,000 clients, draining
            everything at once was slower than batches of 64, and it answered the
            first caller only after the last one's command was applied.
    """

    def __init__(self, engine: Writable, clock: Callable[[], int] = now_ms,
                 on_applied: Callable[[Command, list[EngineEvent]], None] | None = None,
                 batch: int = 64):
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.engine = engine
        self.clock = clock
        self.on_applied = on_applied
        self.batch = batch
        self.applied = 0
        self.batches = 0
        self._open: Batch | None = None  # the batch new submissions join
        self._pending: deque[Batch] = deque()  # batches not yet drained, oldest first
        self._scheduled = False
        self._error: BaseException | None = None

    async def __aenter__(self) -> LocalRunner:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start(self) -> None:
        """Accept commands (kept for symmetry with the bus-driven service)."""

    async def stop(self) -> None:
        """Apply what is still queued; raise the error that stopped the writer, if any.

        The callers of what it applies get their events when they next run.
        """
        while self._pending and self._error is None:
            self._drain()
        if self._error is not None:
            raise self._error

    async def submit(self, cmd: Command) -> list[tuple]:
        """Queue a command in the open batch and return its events once applied.

        Raises:
            TypeError: ``cmd`` is not an engine command (nothing was queued).
            RuntimeError: the writer stopped after an error from the engine.
            CancelledError: this caller was cancelled; the command is still applied.
        """
        if not isinstance(cmd, Command):
            raise TypeError(f"not an engine command: {cmd!r}")
        batch = self._open
        if batch is None or len(batch.items) >= self.batch:
            batch = self._new_batch()
        index = batch.add(cmd)
        try:
            await batch.done  # inlined ``Batch.wait``: a drain fills every slot at once
        except asyncio.CancelledError:
            await batch.recover(index)
        events = batch.results[index]
        if type(events) is not list:
            raise events  # the error of this command
        return events

    def _new_batch(self) -> Batch:
        """Open a batch for new submissions, and schedule a drain unless one is."""
        if self._error is not None:
            raise RuntimeError(f"engine stopped after an error: {self._error!r}")
        loop = asyncio.get_running_loop()
        batch = self._open = Batch(loop)
        self._pending.append(batch)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)
        return batch

    def _drain(self) -> None:
        """Apply the oldest batch, stamped with consecutive sequence numbers and one
        clock reading (as the bus-driven service stamps its batches), wake its callers,
        and schedule the next drain behind them: their next commands join a later batch,
        so the order stays first come, first served."""
        self._scheduled = False
        if not self._pending:
            return
        batch = self._pending.popleft()
        if batch is self._open:
            self._open = None
        engine = self.engine
        on_applied = self.on_applied
        ts = max(self.clock(), engine.now_ms)
        results: list[list[EngineEvent] | BaseException] = []
        try:
            if on_applied is None:  # the whole batch in one call into the engine
                engine.apply_run(batch.items, ts, results)  # type: ignore[arg-type]
            else:
                apply = engine.apply
                seq = engine.last_seq
                for cmd in batch.items:
                    seq += 1
                    cmd.seq = seq
                    cmd.ts_ms = ts
                    events = apply(cmd)
                    on_applied(cmd, events)
                    results.append(events)
        except Exception as exc:  # a broken invariant: fail loudly, stop writing
            results.append(exc)  # the failed command's answer, after those applied
            self._stop_after(exc, batch, results)
            return
        self.applied += len(results)
        self.batches += 1
        self._answer(batch, results)
        if self._pending:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _stop_after(self, exc: Exception, batch: Batch,
                    results: list[list[EngineEvent] | BaseException]) -> None:
        """Stop writing: the rest of ``batch`` and every later batch fail unapplied."""
        self._error = exc
        self.applied += len(results) - 1
        message = f"engine stopped after an error: {exc!r}"
        results.extend(RuntimeError(message)
                       for _ in range(len(batch.items) - len(results)))
        self._answer(batch, results)
        self._open = None
        while self._pending:
            later = self._pending.popleft()
            self._answer(later, [RuntimeError(message) for _ in later.items])

    @staticmethod
    def _answer(batch: Batch, results: list[list[EngineEvent] | BaseException]
                ) -> None:
        """Publish a batch's results and wake its callers (one future for all)."""
        batch.results = results
        batch.finish()
