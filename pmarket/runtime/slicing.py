"""Big work on the event loop in bounded slices: yield to other tasks while it runs.

One engine command can produce a very large delivery: a cancel-all of a trader's 10,000
open orders is 10,000 ``order`` events (1.3 MB of JSON), and a resolution, an event
closing or a mass expiry can be larger still. Everything that processes such a
delivery on an event loop — the engine service encoding it, the gateway decoding the
reply, the market-data replica and the read model decoding and folding it, the
WebSocket fan-out converting it — used to do so in one synchronous pass, and every other
request of that server waited (measured: 100 to 160 ms for one cancel-all of 10,000
orders).

``Slicer`` bounds such a pass: the code processes its items in small chunks and, between
chunks, asks ``due()``; once the current slice has run ``budget_s`` it ``pause``s — one
``asyncio.sleep(0)``, which lets every ready callback (a request, ``/health``, a
WebSocket frame) run — and a new slice starts. Work that finishes within the budget
never yields, so small deliveries take exactly the path they always took. What a reader
may observe while a fold is paused is the folder's business (``marketdata.Replica``
holds readers until the delivery is folded whole).

The helpers here slice the two codecs of engine events (``bus.codec``):
``encode_events_sliced`` writes the same bytes as ``encode_events``, and
``decode_events_sliced`` returns what ``decode_events`` returns, both yielding between
chunks of ``CHUNK`` events. Parsing the JSON text itself (``orjson.loads``) stays one
step: ~5 ms for a 10,000-event delivery on the reference machine.

Invariant: slicing changes when work runs, never what it computes or its order.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator, Sequence

import orjson

from pmarket.bus import CodecError, decode_events, encode_events
from pmarket.bus.codec import event_rows
from pmarket.engine.events import EngineEvent, from_wire

SLICE_S = 0.002
"""How long a slice runs before it yields to the event loop."""
CHUNK = 128
"""Events processed between two looks at the clock."""
SLICED_BYTES = 64 * 1024
"""Payloads at least this large are decoded in slices (smaller ones in one step)."""
SLICED_EVENTS = 1_000
"""Event lists at least this long are encoded in slices."""
GC_YOUNG = 2_000
"""A pause collects the young generation once it holds this many objects."""


class Slicer:
    """Cuts a long pass on the event loop into slices of at most ``budget_s``.

    Args:
        budget_s: how long a slice may run before ``due()`` says to yield.
        clock: seconds (tests pass their own).

    Attributes:
        pauses: how many times this slicer yielded (tests count them).
    """

    def __init__(self, budget_s: float = SLICE_S,
                 clock: Callable[[], float] = time.perf_counter):
        self.budget_s = budget_s
        self.clock = clock
        self.pauses = 0
        self._started = clock()

    def restart(self) -> None:
        """A new slice starts now (the loop just ran other work)."""
        self._started = self.clock()

    def due(self) -> bool:
        """Whether the current slice has run its budget."""
        return self.clock() - self._started >= self.budget_s

    async def pause(self) -> None:
        """Yield to the event loop once, then start a new slice.

        Young objects are collected here first when there are ``GC_YOUNG`` of them:
        a big delivery allocates tens of thousands of objects that live until it is
        folded, and the collector, left to its threshold (``runner.tune_gc``: 50,000),
        would traverse them all in one go (measured: 40 ms in the middle of a
        10,000-order cancel-all). A collection of the young generation costs in
        proportion to its size.
        """
        self.pauses += 1
        if gc.isenabled() and gc.get_count()[0] >= GC_YOUNG:
            gc.collect(0)
        await asyncio.sleep(0)
        self._started = self.clock()

    async def run(self, steps: Iterator[object], before_pause: Callable[[], None] | None = None
                  ) -> None:
        """Drive a generator of checkpoints to its end, pausing at a checkpoint whenever
        the slice is due (``before_pause`` is called before each pause)."""
        for _ in steps:
            if self.due():
                if before_pause is not None:
                    before_pause()
                await self.pause()


def drive(steps: Iterator[object]) -> None:
    """Run a generator of checkpoints to its end in one pass (no slicing)."""
    for _ in steps:
        pass


async def encode_events_sliced(events: Sequence[EngineEvent], slicer: Slicer) -> bytes:
    """``encode_events(events)``, the same bytes, yielding between chunks."""
    if len(events) < SLICED_EVENTS:
        return encode_events(list(events))
    parts = []
    for start in range(0, len(events), CHUNK):
        if slicer.due():
            await slicer.pause()
        parts.append(orjson.dumps([e.wire() for e in events[start:start + CHUNK]])[1:-1])
    return b"[" + b",".join(parts) + b"]"


async def decode_events_sliced(data: bytes, slicer: Slicer) -> list[EngineEvent]:
    """``decode_events(data)``, yielding between chunks of events.

    Raises:
        CodecError: as ``decode_events``.
    """
    if len(data) < SLICED_BYTES:
        return decode_events(data)
    rows = event_rows(data)
    try:
        return await wire_events(rows, slicer)
    except ValueError as exc:
        raise CodecError(str(exc)) from None


async def wire_events(rows: list, slicer: Slicer) -> list[EngineEvent]:
    """``[from_wire(row) for row in rows]``, yielding between chunks.

    Raises:
        ValueError: a row is not an event (``from_wire``).
    """
    events: list[EngineEvent] = []
    for start in range(0, len(rows), CHUNK):
        if slicer.due():
            await slicer.pause()
        events += [from_wire(row) for row in rows[start:start + CHUNK]]
    return events


__all__ = ["CHUNK", "SLICED_BYTES", "SLICED_EVENTS", "SLICE_S", "Slicer",
           "decode_events_sliced", "drive", "encode_events_sliced", "wire_events"]
