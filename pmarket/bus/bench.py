"""Throughput of the bus on the engine's hot path: append commands, read them, ack them.

``bench_roundtrip`` drives one full command cycle per message through any ``Bus``, in
batches as the services use it: one write appends a batch of commands, the engine-side
group read takes it, and one write acks it (optionally publishing one event and one reply
per command in the same write, as ``Bus.complete`` does for the engine). It runs on a
throwaway shard and deletes its streams afterwards, so it can target a live server.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from pmarket.bus.base import Bus
from pmarket.bus.codec import encode_command, encode_events
from pmarket.bus.values import Reply
from pmarket.engine.commands import Outcome, PlaceOrder, Side
from pmarket.engine.events import BalanceState, BookLevel, EngineEvent, OrderState


@dataclass(frozen=True, slots=True)
class RoundtripResult:
    """What one ``bench_roundtrip`` run measured.

    Attributes:
        messages: commands that completed the cycle.
        batch: commands per append/read/ack batch.
        seconds: wall time of all cycles.
        with_results: whether an event and a reply were written per command.
    """

    messages: int
    batch: int
    seconds: float
    with_results: bool

    @property
    def per_second(self) -> float:
        """Commands per second through the whole cycle."""
        return self.messages / self.seconds if self.seconds else float("inf")

    @property
    def us_per_message(self) -> float:
        """Microseconds of the cycle per command."""
        return self.seconds * 1e6 / self.messages if self.messages else 0.0


def _sample_payloads() -> tuple[bytes, bytes]:
    command = PlaceOrder(
        seq=1, ts_ms=1_700_000_000_000, user_id=42, market_id=7, outcome=Outcome.YES,
        side=Side.BUY, quantity=10, price=5_700, client_order_id="bench-000001",
    )
    events: list[EngineEvent] = [
        OrderState(1, 42, 7, 3, "yes", "buy", "limit", 5_700, 10, 0, "open", "gtc", False,
                   None, "bench-000001", 1_700_000_000_000, 1_700_000_000_000, None),
        BalanceState(42, 9_943_000, 57_000),
        BookLevel(7, "bid", 5_700, 10),
    ]
    return encode_command(command), encode_events(events)


async def bench_roundtrip(
    bus: Bus,
    n: int,
    *,
    batch: int = 100,
    with_results: bool = False,
    shard: str | None = None,
) -> RoundtripResult:
    """Measure ``n`` command → read → ack cycles, ``batch`` commands at a time.

    Args:
        bus: the bus to measure (memory or Redis).
        n: number of commands.
        batch: commands appended, read and acked per round.
        with_results: also write one event message and one reply per command in the ack
            write, like the engine's ``Bus.complete``.
        shard: the shard whose streams it uses and then deletes (default: a new one).

    Returns:
        The measurement; ``per_second`` is the figure to compare.
    """
    if n <= 0 or batch <= 0:
        raise ValueError("n and batch must be positive")
    shard = shard or f"bench-{uuid.uuid4().hex[:8]}"
    stream = bus.commands_stream(shard)
    reply_to = f"bench-{uuid.uuid4().hex[:8]}"
    command, events = _sample_payloads()
    headers = {"reply_to": reply_to, "correlation_id": "0"}
    entry = (command, headers) if with_results else command
    consumer = "bench"
    await bus.read_commands(consumer, shard=shard)  # creates the group; drains the backlog
    try:
        started = time.perf_counter()
        done = 0
        while done < n:
            size = min(batch, n - done)
            await bus.append(stream, [entry] * size)
            received = 0
            while received < size:
                got = await bus.read_commands(consumer, count=size - received, shard=shard)
                if with_results:
                    await bus.complete(
                        got,
                        events=[events] * len(got),
                        replies=[Reply.to(m, b"ok") for m in got],
                        shard=shard,
                    )
                else:
                    await bus.complete(got, shard=shard)
                received += len(got)
            done += size
        seconds = time.perf_counter() - started
    finally:
        await bus.delete_streams(
            stream, bus.events_stream(shard), bus.keys.replies(reply_to)
        )
    return RoundtripResult(messages=n, batch=batch, seconds=seconds, with_results=with_results)
