"""Callers waiting together for their answers: the hand-off of many clients to one writer.

``Batch`` is shared by ``Bus.request`` (the requests one sender write carries) and the
engine's in-process ``LocalRunner`` (the commands one drain applies): per caller a list
slot, per batch one future (and, for requests, one deadline timer).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

WAITING: Any = object()
"""A ``Batch`` slot not filled yet (still so when its batch expired: a timeout)."""


class Batch:
    """Callers waiting together for their answers: one future wakes all of them.

    The hand-off of many clients to one writer (``Bus.request``, and ``LocalRunner`` in
    ``pmarket.runtime.runner``): each caller takes a slot (``add``) and ``await``s the
    batch; the writer fills the slots and ``finish``es the batch, so a caller costs a
    list slot rather than a future (and, for requests, a timer) of its own.

    ``results[k]`` is slot k's answer, an exception for its caller, or ``WAITING``;
    ``left`` counts the slots still expected. A cancelled caller cancels the shared
    future too: ``recover`` gives the others a fresh one (see ``wait``).

    Attributes:
        items: what the callers handed over (the runner's commands).
        opened: loop time the batch was opened; timer: its deadline, if it has one.
    """

    __slots__ = ("done", "finished", "items", "left", "opened", "results", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.opened = loop.time()
        self.items: list[Any] = []
        self.results: list[Any] = []
        self.left = 0
        self.finished = False
        self.timer: asyncio.TimerHandle | None = None

    def add(self, item: Any = None) -> int:
        """A new caller's slot."""
        self.items.append(item)
        self.results.append(WAITING)
        self.left += 1
        return len(self.results) - 1

    def settle(self, index: int, value: Any) -> None:
        """Fill a slot (an answer, an error, or anything for a caller that left)."""
        self.results[index] = value
        self.left -= 1
        if not self.left:
            self.finish()

    def finish(self) -> None:
        """Wake every caller of the batch (answered, or at its deadline)."""
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        if not self.done.done():
            self.done.set_result(None)

    def wake(self) -> None:
        """Let the answered callers go before the batch is finished: every waiter
        runs, the answered ones return, the others wait on a fresh future."""
        done = self.done
        self.done = asyncio.get_running_loop().create_future()
        if not done.done():
            done.set_result(None)

    async def wait(self, index: int) -> Any:
        """Slot ``index`` once filled (``WAITING`` if the batch finished without it).

        Raises:
            CancelledError: this caller was cancelled.
        """
        try:
            await self.done
        except asyncio.CancelledError:
            await self.recover(index)
        if self.results[index] is WAITING and not self.finished:
            await self.recover(index)
        return self.results[index]

    async def recover(self, index: int) -> None:
        """Wait on after a wake-up that was not for this caller: another caller's
        cancellation (which cancelled the shared future) or a ``wake``. Only this
        caller's own cancellation ends the wait.

        Raises:
            CancelledError: this caller was cancelled.
        """
        task = asyncio.current_task()
        results = self.results
        while True:
            if task is None or task.cancelling():
                raise asyncio.CancelledError
            if results[index] is not WAITING or self.finished:
                return
            if self.done.cancelled():
                self.done = asyncio.get_running_loop().create_future()
            with contextlib.suppress(asyncio.CancelledError):
                await self.done
