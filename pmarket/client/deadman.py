"""The dead-man switch as a context manager: heartbeats in the background while a block runs.

    with client.dead_man_switch(timeout_s=15) as switch:     # a thread beats every 5 s
        ...quote...
    # left normally: the switch is off again (DELETE /heartbeat)

    async with client.dead_man_switch(timeout_s=15) as switch:  # an asyncio task beats
        ...

Entering sends the first heartbeat before the block starts (an error raises there), so
the block always runs protected. A heartbeat goes out every ``interval_s`` (default a
third of the timeout: two may be lost before the switch fires). A failed heartbeat is
kept in ``last_error`` and retried at the next beat; beating never raises into the
program. When a reply says the switch fired (``fired_at``: every open order was
cancelled because beats stopped arriving in time), ``fired_at`` records it and
``on_fired`` is called with the reply.

Leaving the block normally turns the switch off. Leaving it by an exception only stops
the beats and leaves the switch armed, so it fires at its deadline: a program that failed
is what a dead-man switch is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

from pmarket.api import Heartbeat
from pmarket.client import calls as c
from pmarket.client.errors import ClientError

T = TypeVar("T")


class Client(Protocol):
    """What the switch needs of a ``pmarket.client.Client``: sending a call."""

    def call(self, call: c.Call[T]) -> T:
        """Send ``call`` and return its typed result."""


class AsyncClient(Protocol):
    """What the switch needs of a ``pmarket.client.AsyncClient``: sending a call."""

    async def call(self, call: c.Call[T]) -> T:
        """Send ``call`` and return its typed result."""


OnFired = Callable[[Heartbeat], object]


def default_interval(timeout_s: int) -> float:
    """A third of the timeout: the switch survives two lost heartbeats."""
    return max(timeout_s / 3, 1.0)


class _Beats:
    """What the two switches share: the settings and what the beats learned."""

    def __init__(self, timeout_s: int, interval_s: float | None,
                 on_fired: OnFired | None) -> None:
        self.timeout_s = timeout_s
        self.interval_s = default_interval(timeout_s) if interval_s is None else interval_s
        if not 0 < self.interval_s < timeout_s:
            raise ValueError(f"interval_s must be above 0 and below timeout_s "
                             f"({timeout_s}), got {self.interval_s}")
        self.on_fired = on_fired
        self.last: Heartbeat | None = None
        self.last_error: ClientError | None = None
        self.fired_at: datetime | None = None
        self.beats = 0

    def _record(self, beat: Heartbeat) -> None:
        self.last, self.last_error = beat, None
        self.beats += 1
        if beat.fired_at is not None:
            self.fired_at = beat.fired_at
            if self.on_fired is not None:
                self.on_fired(beat)


class DeadManSwitch(_Beats):
    """The blocking client's switch: a daemon thread sends the heartbeats.

    Args:
        client: the client whose account the switch protects.
        timeout_s: the switch's timeout (5 to 300).
        interval_s: seconds between heartbeats (default ``timeout_s / 3``).
        on_fired: called (in the beating thread) with a reply saying the switch fired.
    """

    def __init__(self, client: Client, timeout_s: int, interval_s: float | None = None,
                 on_fired: OnFired | None = None) -> None:
        super().__init__(timeout_s, interval_s, on_fired)
        self.client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> Heartbeat:
        """Send one heartbeat now (raises what the call raises)."""
        beat = self.client.call(c.heartbeat(self.timeout_s))
        self._record(beat)
        return beat

    def __enter__(self) -> DeadManSwitch:
        self.beat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pmarket-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None:
            self.client.call(c.disarm_heartbeat())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except ClientError as exc:  # kept for the program to see; the next beat retries
                self.last_error = exc


class AsyncDeadManSwitch(_Beats):
    """The asyncio client's switch: a task sends the heartbeats (same arguments as
    ``DeadManSwitch``; ``on_fired`` may be a coroutine function)."""

    def __init__(self, client: AsyncClient, timeout_s: int, interval_s: float | None = None,
                 on_fired: Callable[[Heartbeat], object | Awaitable[object]] | None = None
                 ) -> None:
        super().__init__(timeout_s, interval_s, None)
        self.client = client
        self._on_fired = on_fired
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> Heartbeat:
        """Send one heartbeat now (raises what the call raises)."""
        beat = await self.client.call(c.heartbeat(self.timeout_s))
        self._record(beat)
        if beat.fired_at is not None and self._on_fired is not None:
            result = self._on_fired(beat)
            if asyncio.iscoroutine(result):
                await result
        return beat

    async def __aenter__(self) -> AsyncDeadManSwitch:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="pmarket-heartbeat")
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if exc_type is None:
            await self.client.call(c.disarm_heartbeat())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except ClientError as exc:  # kept for the program to see; the next beat retries
                self.last_error = exc
