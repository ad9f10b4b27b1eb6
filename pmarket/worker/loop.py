"""The worker's bus loop: read deliveries, project them, ack, dead-letter the poison.

One ``Worker`` consumes one shard's event stream in consumer group ``worker``:

1. read a batch of messages (its own un-acked backlog first, then new ones; now and then
   it also reclaims messages idle with a dead consumer);
2. decode each into a ``Delivery`` — an undecodable one is dead-lettered at once;
3. project them in one transaction (``Projector``), off the event loop;
4. ack what is now in the database (applied or already there). Deliveries that arrived
   ahead of a missing command stay un-acked, held in a bounded ``Reorderer`` until the
   hole fills; a hole that stays open longer than ``gap_timeout_s`` is stepped over with
   ``Projector.skip`` so the stream cannot stall forever.

Failures: losing the database (``OperationalError``...) is retried with backoff for as
long as it lasts and never dead-letters anything. Any other error is retried
``max_attempts`` times, then the batch is projected one delivery at a time to find the
culprit, which goes to the dead-letter stream with the error (``Projector.skip`` records
the hole in the database first), and the rest flows on. ``Bus.retry_dead_letter`` sends
one back; it is then applied late.

Invariant: a message is acked only after the transaction holding its effects (or the
record that it was skipped) committed, so a crash at any point loses nothing and, the
projection being idempotent, duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from pmarket.bus import Bus, BusUnavailable, Message

from .delivery import Delivery, DeliveryError, decode_delivery
from .projector import DEFAULT_CONSUMER, ProjectionResult, Projector
from .reorder import Reorderer
from .writer import ConcurrentProjection

log = logging.getLogger(__name__)

WORKER_GROUP = DEFAULT_CONSUMER
"""Consumer group (and projection consumer name) of the database worker."""


def _transient(exc: BaseException) -> bool:
    """Errors that say the database or bus is unreachable, not that the data is bad."""
    if isinstance(exc, OperationalError | InterfaceError | ConcurrentProjection |
                  BusUnavailable):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(slots=True)
class WorkerStats:
    """Running totals of a worker, for logs and metrics."""

    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    events: int = 0
    dead_letters: int = 0
    skipped_holes: int = 0
    retries: int = 0


class Worker:
    """Projects one shard's event stream into the database.

    Args:
        bus: the bus to read from.
        db: the SQLAlchemy engine of the (migrated) database.
        consumer: this process's name within the group (unique per process).
        shard: the shard whose event stream to read (default: the bus's shard).
        batch_size: most messages read (and projected in one transaction) at once.
        block_ms: how long a read waits for new messages.
        max_attempts: tries of a failing batch before isolating the poison delivery.
        backoff_s: first retry delay; doubles up to ``max_backoff_s``.
        max_backoff_s: longest retry delay.
        reorder_limit: most early deliveries held in memory.
        gap_timeout_s: how long a hole may block held deliveries before it is skipped.
        reclaim_idle_ms: messages pending this long with any consumer are taken over.
        max_deliveries: a message delivered more often than this is dead-lettered.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(self, bus: Bus, db: Engine, *, consumer: str = "worker-1",
                 shard: str | None = None, batch_size: int = 500, block_ms: int = 500,
                 max_attempts: int = 3, backoff_s: float = 0.05, max_backoff_s: float = 2.0,
                 reorder_limit: int = 10_000, gap_timeout_s: float = 30.0,
                 reclaim_idle_ms: int = 60_000, max_deliveries: int = 50,
                 clock: Callable[[], float] = time.monotonic):
        self.bus = bus
        self.db = db
        self.consumer = consumer
        self.shard = shard
        self.stream = bus.events_stream(shard)
        self.projector = Projector(self.stream, WORKER_GROUP)
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.buffer = Reorderer(reorder_limit)
        self.gap_timeout_s = gap_timeout_s
        self.reclaim_idle_ms = reclaim_idle_ms
        self.max_deliveries = max_deliveries
        self.clock = clock
        self.stats = WorkerStats()
        self._messages: dict[int, list[Message]] = {}  # held deliveries' messages
        self._position: int | None = None  # read from the database on the first step
        self._hole_since: float | None = None
        self._last_reclaim = clock()

    # --- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; transient failures are retried, never fatal."""
        backoff = self.backoff_s
        while not stop.is_set():
            try:
                await self.step()
                backoff = self.backoff_s
            except Exception as exc:
                if not _transient(exc):
                    raise
                log.warning("worker %s: %s; retrying in %.2fs", self.consumer, exc, backoff)
                self.stats.retries += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def step(self) -> int:
        """Read one batch and project it; returns how many messages it read."""
        if self._position is None:
            self._position = await asyncio.to_thread(self.projector.position, self.db)
        messages = await self.bus.read_events(WORKER_GROUP, self.consumer,
                                              count=self.batch_size, block_ms=self.block_ms,
                                              shard=self.shard)
        if self.clock() - self._last_reclaim >= self.reclaim_idle_ms / 1000:
            self._last_reclaim = self.clock()
            messages += await self.bus.reclaim(
                self.stream, WORKER_GROUP, self.consumer, min_idle_ms=self.reclaim_idle_ms,
                count=self.batch_size, max_deliveries=self.max_deliveries)
        deliveries: dict[int, Delivery] = {}
        for message in messages:
            try:
                delivery = decode_delivery(message.payload, message.id)
            except DeliveryError as exc:
                await self._dead_letter([message], f"undecodable delivery: {exc}")
                continue
            deliveries.setdefault(delivery.first_seq, delivery)
            self._messages.setdefault(delivery.first_seq, []).append(message)
        if deliveries:
            await self._project(list(deliveries.values()))
        await self._drain_buffer()
        self.stats.batches += 1
        return len(messages)

    # --- projecting ---------------------------------------------------------------------

    async def _project(self, deliveries: list[Delivery]) -> None:
        result = await self._apply(deliveries)
        deferred = {d.first_seq for d in result.deferred}
        done = [d for d in deliveries if d.first_seq not in deferred
                and d.first_seq in self._messages]
        await self._ack(done)
        for delivery in result.deferred:
            if not self.buffer.offer(delivery):
                # Left pending: a later reclaim hands it over again.
                self._messages.pop(delivery.first_seq, None)

    async def _drain_buffer(self) -> None:
        while True:
            run = self.buffer.release(self._position)
            if run:
                await self._project(run)
                continue
            hole = self.buffer.lowest_missing(self._position)
            if hole is None:
                self._hole_since = None
                return
            now = self.clock()
            if self._hole_since is None:
                self._hole_since = now
            if now - self._hole_since < self.gap_timeout_s:
                return
            first, last = hole
            await asyncio.to_thread(self._skip, first, last,
                                    f"commands {first}..{last} never arrived within "
                                    f"{self.gap_timeout_s}s", None)
            log.error("worker %s: skipped missing commands %s..%s", self.consumer, first, last)
            self.stats.skipped_holes += 1
            self._position = last
            self._hole_since = None

    async def _apply(self, deliveries: list[Delivery]) -> ProjectionResult:
        """Project with retries; after ``max_attempts`` failures, isolate the poison."""
        attempt, backoff = 0, self.backoff_s
        while True:
            try:
                result = await asyncio.to_thread(self.projector.apply, self.db, deliveries)
            except Exception as exc:
                if not _transient(exc):
                    attempt += 1
                    if attempt >= self.max_attempts:
                        return await self._isolate(deliveries, exc)
                self.stats.retries += 1
                log.warning("worker %s: projection failed (%s), retrying", self.consumer, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self._record(result)
            return result

    async def _isolate(self, deliveries: list[Delivery], first_error: Exception
                       ) -> ProjectionResult:
        """Project one delivery at a time; dead-letter each that fails on its own."""
        total = ProjectionResult(last_seq=self._position)
        for delivery in sorted(deliveries, key=lambda d: d.first_seq):
            try:
                result = await asyncio.to_thread(self.projector.apply, self.db, [delivery])
            except Exception as exc:
                if _transient(exc):
                    raise
                await self._poison(delivery, exc)
                continue
            self._record(result)
            total.applied += result.applied
            total.duplicates += result.duplicates
            total.deferred += result.deferred
            total.last_seq = result.last_seq
        log.error("worker %s: isolated a failing batch (first error: %s)", self.consumer,
                  first_error)
        return total

    async def _poison(self, delivery: Delivery, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if delivery.first_seq == self._position + 1:
            await asyncio.to_thread(self._skip, delivery.first_seq, delivery.last_seq, error,
                                    delivery.message_id)
            self._position = delivery.last_seq
        messages = self._messages.pop(delivery.first_seq, [])
        await self._dead_letter(messages, error)

    def _skip(self, first: int, last: int, error: str, message_id: str | None) -> None:
        with self.db.begin() as conn:
            self.projector.skip(conn, first, last, error, message_id)

    def _record(self, result: ProjectionResult) -> None:
        self._position = result.last_seq
        self.stats.applied += result.applied + result.late
        self.stats.duplicates += result.duplicates
        self.stats.events += result.events

    async def _ack(self, deliveries: list[Delivery]) -> None:
        ids = [m.id for d in deliveries for m in self._messages.pop(d.first_seq, [])]
        if ids:
            await self.bus.ack_events(WORKER_GROUP, ids, shard=self.shard)

    async def _dead_letter(self, messages: list[Message], error: str) -> None:
        for message in messages:
            await self.bus.dead_letter(message, WORKER_GROUP, error)
            self.stats.dead_letters += 1
        log.error("worker %s: dead-lettered %d message(s): %s", self.consumer,
                  len(messages), error)
