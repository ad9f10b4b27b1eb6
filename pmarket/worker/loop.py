"""The worker's bus loop: read deliveries, project them, ack; park what cannot be stored.

One ``Worker`` consumes one shard's event stream in consumer group ``worker``:

1. read a batch of messages (its own un-acked backlog first, then new ones; now and then
   it also reclaims messages idle with a dead consumer);
2. decode each into a ``Delivery``;
3. project them in one transaction (``Projector``), off the event loop;
4. ack what is now in the database (applied or already there). Deliveries that arrived
   ahead of a missing command stay un-acked, held in a bounded ``Reorderer`` until the
   hole fills; a hole that stays open longer than ``gap_timeout_s`` is stepped over with
   ``Projector.skip`` (recorded in ``skipped_deliveries``) so the stream cannot stall.

Failures: losing the database (``OperationalError``...) is retried with backoff for as
long as it lasts and never parks anything. Any other error is retried ``max_attempts``
times, then the batch is projected one delivery at a time, and a delivery that fails on
its own is stored event by event (``Projector.salvage``): every event that can be
stored is, each one that fails alone is parked in ``parked_events`` with its reason, and
the position moves on — one user's poison never costs another user's orders. A message
that cannot be decoded, or that was delivered more than ``max_deliveries`` times without
an ack (the worker died on it each time), is parked whole with its payload
(``Projector.park_payload``) and acked. Nothing goes to the bus's dead-letter stream any
more: the database holds every gap, where ``/health`` counts it and
``pmarket worker dlq`` shows, replays and clears it (``worker.parked``).

Invariant: a message is acked only after the transaction holding its effects (or the
record that it was parked or skipped) committed, so a crash at any point loses nothing
and, the projection being idempotent, duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from pmarket.bus import Bus, Message, UnknownGroup
from pmarket.runtime.eventlog import Delivery, DeliveryError, decode_delivery

from .projector import DEFAULT_CONSUMER, ProjectionResult, Projector
from .reorder import Reorderer
from .salvage import describe, transient

log = logging.getLogger(__name__)

WORKER_GROUP = DEFAULT_CONSUMER
"""Consumer group (and projection consumer name) of the database worker."""

TAKE_OVER_CHUNK = 10_000
"""Pending deliveries a sole worker takes over per round trip at its start."""


@dataclass(slots=True)
class WorkerStats:
    """Running totals of a worker, for logs and metrics."""

    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    events: int = 0
    parked: int = 0
    parked_deliveries: int = 0
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
        max_attempts: tries of a failing batch before storing it event by event.
        backoff_s: first retry delay; doubles up to ``max_backoff_s``.
        max_backoff_s: longest retry delay.
        reorder_limit: most early deliveries held in memory.
        gap_timeout_s: how long a hole may block held deliveries before it is skipped.
        reclaim_idle_ms: messages pending this long with any consumer are taken over.
        max_deliveries: a message delivered more often than this is parked whole.
        sole: this is the shard's only worker (``pmarket worker`` holds the shard's
            worker lock, ``pmarket.server.dblock``): at its first step it takes over at
            once every delivery pending in the group — a dead worker's, whatever its
            name — instead of after ``reclaim_idle_ms``, which is longer than
            ``gap_timeout_s``: waiting, it would step over them as a hole.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(self, bus: Bus, db: Engine, *, consumer: str = "worker-1",
                 shard: str | None = None, batch_size: int = 500, block_ms: int = 500,
                 max_attempts: int = 3, backoff_s: float = 0.05, max_backoff_s: float = 2.0,
                 reorder_limit: int = 10_000, gap_timeout_s: float = 30.0,
                 reclaim_idle_ms: int = 60_000, max_deliveries: int = 50,
                 sole: bool = False, clock: Callable[[], float] = time.monotonic):
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
        self.sole = sole
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
                if not transient(exc):
                    raise
                log.warning("worker %s: %s; retrying in %.2fs", self.consumer, exc, backoff)
                self.stats.retries += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def step(self) -> int:
        """Read one batch and project it; returns how many messages it read."""
        messages: list[Message] = []
        if self._position is None:
            self._position = await asyncio.to_thread(self.projector.position, self.db)
            if self.sole:
                messages = await self._take_over_pending()
        messages += await self.bus.read_events(WORKER_GROUP, self.consumer,
                                               count=self.batch_size, block_ms=self.block_ms,
                                               shard=self.shard)
        if self.clock() - self._last_reclaim >= self.reclaim_idle_ms / 1000:
            self._last_reclaim = self.clock()
            messages += await self.bus.reclaim(
                self.stream, WORKER_GROUP, self.consumer, min_idle_ms=self.reclaim_idle_ms,
                count=self.batch_size)
        deliveries: dict[int, Delivery] = {}
        unusable: list[tuple[Message, str]] = []
        for message in messages:
            if message.deliveries > self.max_deliveries:
                unusable.append((message, f"delivered {message.deliveries} times without "
                                          "an ack (the worker died on it each time)"))
                continue
            try:
                delivery = decode_delivery(message.payload, message.id)
            except DeliveryError as exc:
                unusable.append((message, f"undecodable delivery: {exc}"))
                continue
            deliveries.setdefault(delivery.first_seq, delivery)
            self._messages.setdefault(delivery.first_seq, []).append(message)
        if deliveries:
            await self._project(list(deliveries.values()))
        for message, error in unusable:  # after the rest: its hole may be next by now
            await self._park_message(message, error)
        await self._drain_buffer()
        self.stats.batches += 1
        return len(messages)

    async def _take_over_pending(self) -> list[Message]:
        """Every delivery pending in the group, taken over now (see ``sole``)."""
        taken: list[Message] = []
        while True:
            try:
                chunk = await self.bus.reclaim(self.stream, WORKER_GROUP, self.consumer,
                                               min_idle_ms=0, count=TAKE_OVER_CHUNK)
            except UnknownGroup:  # the first start on this stream: nothing is pending
                return []
            taken += chunk
            if len(chunk) < TAKE_OVER_CHUNK:
                break
        if taken:
            log.warning("worker %s: took over %d deliveries left pending in the group "
                        "(a worker that stopped before storing them)", self.consumer,
                        len(taken))
        return taken

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
            # Someone may have filled it meanwhile (``pmarket worker dlq replay``).
            position = await asyncio.to_thread(self.projector.position, self.db)
            if position != self._position:
                self._position = position
                continue
            first, last = hole
            await asyncio.to_thread(self._skip, first, last,
                                    f"commands {first}..{last} never arrived within "
                                    f"{self.gap_timeout_s}s", None)
            log.error("worker %s: skipped missing commands %s..%s", self.consumer, first, last)
            self.stats.skipped_holes += 1
            self._position = last
            self._hole_since = None

    async def _apply(self, deliveries: list[Delivery]) -> ProjectionResult:
        """Project with retries; after ``max_attempts`` failures, salvage what fails."""
        attempt, backoff = 0, self.backoff_s
        while True:
            try:
                result = await asyncio.to_thread(self.projector.apply, self.db, deliveries)
            except Exception as exc:
                if not transient(exc):
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
        """Project one delivery at a time; store each that fails event by event."""
        log.error("worker %s: a batch of %d deliveries fails (%s); projecting them one by "
                  "one", self.consumer, len(deliveries), describe(first_error))
        total = ProjectionResult(last_seq=self._position)
        for delivery in sorted(deliveries, key=lambda d: d.first_seq):
            try:
                result = await self._retrying(self.projector.apply, self.db, [delivery])
            except Exception as exc:
                result = await self._salvage(delivery, exc)
                if result is None:
                    continue
            self._record(result)
            total.applied += result.applied
            total.late += result.late
            total.duplicates += result.duplicates
            total.deferred += result.deferred
            total.parked += result.parked
            total.last_seq = result.last_seq
        return total

    async def _salvage(self, delivery: Delivery, error: Exception) -> ProjectionResult | None:
        """Store ``delivery`` event by event; None if it had to be parked whole."""
        log.error("worker %s: commands %s..%s fail (%s); storing them event by event",
                  self.consumer, delivery.first_seq, delivery.last_seq, describe(error))
        try:
            result = await self._retrying(self._in_transaction, self.projector.salvage,
                                          delivery)
        except DeliveryError as exc:  # it cannot be placed at all (overlaps the position)
            for message in self._messages.pop(delivery.first_seq, []):
                await self._park_message(message, describe(exc))
            return None
        self.stats.parked += result.parked
        return result

    async def _retrying(self, function, *args):
        """``function(*args)`` off the event loop, retried for as long as it fails
        transiently (the database is away): what is in hand is never given up for that.
        """
        backoff = self.backoff_s
        while True:
            try:
                return await asyncio.to_thread(function, *args)
            except Exception as exc:
                if not transient(exc):
                    raise
                self.stats.retries += 1
                log.warning("worker %s: %s; retrying in %.2fs", self.consumer,
                            describe(exc), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _in_transaction(self, method, *args):
        with self.db.begin() as conn:
            return method(conn, *args)

    async def _park_message(self, message: Message, error: str) -> None:
        """Park a message's payload whole, then ack it."""
        self._position = await self._retrying(
            self._in_transaction, self.projector.park_payload, message.payload, message.id,
            error)
        await self.bus.ack_events(WORKER_GROUP, [message.id], shard=self.shard)
        self.stats.parked_deliveries += 1

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
