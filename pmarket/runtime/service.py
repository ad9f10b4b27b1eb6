"""The engine service: one shard's single writer between the bus and the engine.

``EngineService.run`` recovers, then loops: read a batch of commands from the shard's
command stream (group ``engine``), decode them, stamp each with ``seq = last_seq + 1`` and
the batch's clock reading (wall time, never below the engine's clock), apply them, and
in ONE atomic ``Bus.complete`` append the batch's delivery to the event stream, send each
requester its reply (``encode_events`` of its command's events) and ack the commands.

Durability and recovery (``eventlog`` has the log's format, ``recovery`` the snapshots):

* The event stream is the log: each delivery carries the batch's stamped commands with
  their command message ids. Because the delivery and the acks are one atomic write, a
  command is acked if and only if its delivery is in the log.
* Start-up loads the latest snapshot, replays every delivery after the entry it covers
  (re-applying, not re-publishing), then reads the command stream — its own pending
  entries first. A command whose message id a replayed delivery already holds is acked
  without being applied again; the others are applied normally. So every acknowledged
  command takes effect exactly once, whatever moment a kill -9 hit.
* A snapshot is taken every ``snapshot_every`` commands, every ``snapshot_interval_s``
  seconds and at a clean stop; only between batches, so never with a batch applied but
  unpublished. After it is on disk the consumer group ``engine-snapshot`` of the event
  stream is moved to the entry it covers: ``Bus.trim`` never cuts above any group's
  position, so trimming keeps everything a restart needs. Acked commands are trimmed
  from the command stream (their copies live in the log).
* Redis must keep the streams across its own restarts: in production run it with
  ``appendonly yes`` (``appendfsync everysec`` loses at most a second on power loss,
  ``always`` nothing). Without persistence a Redis restart loses the log after the last
  snapshot and every queued command.

The clock: time-driven changes (gtd expiry, events closing at their close time, dead-man
switches firing; ``timers``) happen inside the engine when a command's time makes them
due. Without traffic, the service checks every ``expire_every_s`` whether anything is
due (``Engine.next_due_ms``) and if so sends itself an ``Expire`` tick through the
command stream, so the tick is logged and replayed like any other command; the first
check runs right after recovery, so what fell due while the engine was down happens
at once. A command that cannot be decoded is moved to the dead-letter
stream and answered with a ``rejected`` event; one redelivered more than
``max_deliveries`` times (it crashed the engine on every try) is dead-lettered too.

One writer per shard: the engine holds the shard's lease (``Bus.hold_lease``, a key
with a time to live) and every write to the log is fenced by it (``Fence``: checked and
extended atomically with the write). A second engine started for the same shard waits
as a standby until the lease is free (released at a clean stop, or expired
``lease_ms`` after its holder died), then recovers and takes over. An engine that finds
its lease taken (it stalled past ``lease_ms`` and a standby took over) writes nothing
more and stops with ``LeaseLost``: its state may have left the log behind.

Invariant: one ``EngineService`` writes a shard's log at a time (the lease); seqs in the
log are contiguous and each command message id appears in at most one seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pmarket.bus import (
    ENGINE_GROUP,
    Bus,
    BusError,
    CodecError,
    Fence,
    LeaseLost,
    Message,
    Reply,
    UnknownGroup,
    decode_command,
    encode_command,
    encode_events,
)
from pmarket.bus.values import CORRELATION_ID, REPLY_TO
from pmarket.engine.commands import Expire
from pmarket.engine.engine import Engine
from pmarket.engine.events import EngineEvent, Rejected

from . import compiled
from .eventlog import (
    Delivery,
    decode_logged_delivery,
    encode_logged_delivery,
    join_event_arrays,
)
from .recovery import (
    START_ID,
    read_snapshot,
    replay,
    snapshot_path,
    write_snapshot,
)
from .runner import now_ms, tune_gc
from .slicing import SLICED_EVENTS, Slicer, encode_events_sliced

log = logging.getLogger(__name__)

SNAPSHOT_GROUP = "engine-snapshot"
"""Event stream group parked at the latest snapshot's entry: holds back trimming."""

MALFORMED_COMMAND = "malformed_command"
"""Reason code of the ``rejected`` reply to a command the engine could not decode."""


@dataclass(slots=True)
class ServiceStats:
    """Running totals of an engine service."""

    batches: int = 0
    applied: int = 0
    replayed: int = 0
    acked_already_applied: int = 0
    dead_letters: int = 0
    snapshots: int = 0
    snapshot_failures: int = 0
    expiry_ticks: int = 0


class EngineService:
    """Runs one shard's engine against the bus, recoverably.

    Args:
        bus: the bus (Redis Streams in deployment, memory in tests).
        snapshot_dir: where snapshots go; None keeps none (the whole event stream is
            then the log and is never trimmed).
        shard: the shard whose command stream this engine owns.
        snapshot_every: snapshot after this many applied commands.
        snapshot_interval_s: ... or after this long with anything applied.
        batch_size: most commands read, applied and completed together.
        block_ms: how long a read waits for commands (bounds the reaction to ``stop``).
        expire_every_s: how often to check whether an order's expiry is due.
        max_deliveries: a command delivered more often than this is dead-lettered.
        consumer: this engine's consumer name in group ``engine`` (stable per shard, so
            a restarted engine finds its own pending commands).
        keep_groups: event stream groups created at start (from the stream's beginning)
            if missing, so trimming waits for their consumers even before they first
            connect; the database worker's by default.
        lease_ms: how long the shard's lease outlives this engine's last write or
            renewal (a standby takes over that long after a kill -9).
        clock: Unix ms (injected in tests).
    """

    def __init__(self, bus: Bus, *, snapshot_dir: str | os.PathLike[str] | None = None,
                 shard: str = "main", snapshot_every: int = 50_000,
                 snapshot_interval_s: float = 60.0, batch_size: int = 500,
                 block_ms: int = 200, expire_every_s: float = 1.0, max_deliveries: int = 10,
                 consumer: str | None = None, keep_groups: tuple[str, ...] = ("worker",),
                 lease_ms: int = 5_000, clock: Callable[[], int] = now_ms):
        self.bus = bus
        self.shard = shard
        self.snapshot_file = (snapshot_path(snapshot_dir, shard)
                              if snapshot_dir is not None else None)
        self.snapshot_every = snapshot_every
        self.snapshot_interval_s = snapshot_interval_s
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.expire_every_s = expire_every_s
        self.max_deliveries = max_deliveries
        self.consumer = consumer or f"engine-{shard}"
        self.keep_groups = keep_groups
        self.clock = clock
        # The token names the holder, and its last field the engine build it runs
        # (``compiled`` or ``pure``): /health reports it from there (``engine_build``).
        token = (f"{self.consumer}@{socket.gethostname()}:{os.getpid()}:"
                 f"{secrets.token_hex(4)}:{compiled.mode}")
        self.fence = Fence(bus.keys.lease(shard), token, lease_ms)
        self._lease_checked = -math.inf  # monotonic time the lease was last confirmed
        self.commands = bus.commands_stream(shard)
        self.events = bus.events_stream(shard)
        self.engine = Engine()
        self.stats = ServiceStats()
        self.slicer = Slicer()  # long batches and big commands' events in slices
        self.last_event_id = START_ID  # newest log entry reflected in self.engine
        self.ready = asyncio.Event()  # set once recovery is done
        self._covered: set[str] = set()  # command ids in replayed deliveries
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self._expire_sent = -math.inf  # the first check runs right after recovery
        self._publishing: asyncio.Task[None] | None = None  # the last batch's complete
        self._next: list[Message] | None = None  # read along with the last publication
        # Reading what an engine that died had read (recovery's backlog): one at a time.
        self._redoing = True

    # --- the loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Recover, then serve commands until ``stop`` is set; snapshot on the way out.

        Bus outages are retried with backoff for as long as they last. An exception
        from the engine (a broken invariant) propagates: the process must die and
        recover rather than go on from a state nobody can trust.
        """
        if not await self._take_lease(stop):
            return  # stopped while waiting as a standby
        await _retrying(self.recover, stop)
        backoff = 0.05
        while not stop.is_set():
            try:
                await self._serve()
                backoff = 0.05
            except BusError as exc:
                log.warning("engine %s: bus error %s; retrying in %.2fs", self.shard, exc,
                            backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        await self._drain()
        if self._next:  # read with the last publication: answer them before stopping
            messages, self._next = self._next, None
            await self.process(messages)
        if self._since_snapshot:
            try:
                await self.snapshot()
            except BusError as exc:  # the file is written first; only trimming failed
                log.warning("engine %s: final snapshot's housekeeping failed: %s",
                            self.shard, exc)
        with contextlib.suppress(BusError):  # a standby may take over at once
            await self.bus.release_lease(self.fence.key, self.fence.token)

    async def abandon(self) -> None:
        """After ``run`` died of an exception, before another engine takes the shard:
        let the publication under way finish (its batch was applied and must reach the
        log whole; if it cannot, its commands stay pending and are redelivered), then
        release the lease so that the next engine need not wait for it to expire."""
        with contextlib.suppress(Exception):
            await self._drain()
        with contextlib.suppress(BusError):
            await self.bus.release_lease(self.fence.key, self.fence.token)

    async def step(self) -> int:
        """One round: expiry tick and snapshot if due, then one batch; its size.

        The batch is published when this returns.
        """
        n = await self._serve()
        await self._drain()
        return n

    async def _serve(self) -> int:
        """One round of ``run``'s pipeline: the batch read here is applied, and its
        publication starts while the next batch is read and applied; publications stay
        in batch order (each waits for the previous one), and snapshots wait for all."""
        await self._keep_lease()
        await self._maybe_send_expire()
        if self._snapshot_due():
            await self._drain()
            await self._periodic_snapshot()
        messages = self._next
        self._next = None
        if messages is None:
            messages = await self.bus.read_commands(
                self.consumer, count=1 if self._redoing else self.batch_size,
                block_ms=self.block_ms, shard=self.shard)
        self._redoing = bool(messages) and messages[0].deliveries > 1
        if not messages:
            await self._drain()
        elif self._redoing:
            # Delivered before and never completed (the engine that read it died): read
            # and applied one a batch, so that a command that crashes every engine takes
            # no other down with it: the others are neither in its failed batches nor
            # read again with it (each read counts a delivery, and a command delivered
            # more than max_deliveries times is dead-lettered as a likely crasher).
            if len(messages) > 1:  # read along with a publication: the rest waits
                messages, self._next = messages[:1], messages[1:]
            await self.process(messages)
            return 1
        elif len(messages) < self.batch_size:
            # The backlog is drained: publish and read the next batch in one round trip
            # (a blocking read; this is the path of every request at moderate rates).
            publish = await self._apply(messages, read_next=True)
            await self._drain()
            await publish()
        else:
            # Full batches: publish this one while reading and applying the next.
            publish = await self._apply(messages)
            await self._drain()
            self._publishing = asyncio.create_task(publish())
        return len(messages)

    async def _drain(self) -> None:
        """Wait until every applied batch is published (its delivery in the log)."""
        task = self._publishing
        if task is not None:
            self._publishing = None
            await task

    async def process(self, messages: list[Message]) -> None:
        """Apply a batch of command messages and publish its results atomically."""
        publish = await self._apply(messages)
        await self._drain()
        await publish()

    async def _apply(self, messages: list[Message], read_next: bool = False
                     ) -> Callable[[], Coroutine[Any, Any, None]]:
        """Apply a batch in memory; returns what publishes it (one atomic ``complete``;
        with ``read_next`` also reading the next batch into ``_next``, in one round trip).

        The returned publication must run before anything else is published or
        snapshotted: the batch is applied in memory and must reach the log first.

        A long batch yields to the event loop between two commands once a slice has run
        its budget, and a command with thousands of events (a cancel-all) is encoded in
        slices (``slicing``): in the embedded exchange the server's requests share this
        loop. Nothing else applies, publishes or snapshots meanwhile (this service does
        all three, in order); one command's ``Engine.apply`` stays one step.
        """
        slicer = self.slicer
        slicer.restart()
        engine = self.engine
        apply = engine.apply
        ts = max(self.clock(), engine.now_ms)
        first_seq = engine.last_seq + 1
        covered = self._covered
        max_deliveries = self.max_deliveries
        done: list[Message] = []
        logged: list[tuple[str, bytes]] = []
        parts: list[bytes] = []
        replies: list[Reply] = []
        dead: list[tuple[Message, str]] = []
        decoded = self.bus.decoded  # readers in this process take these, undecoded
        applied: list[EngineEvent] | None = [] if decoded is not None else None
        for message in messages:
            if covered and message.id in covered:
                covered.discard(message.id)
                self.stats.acked_already_applied += 1
                done.append(message)
                continue
            if message.deliveries > max_deliveries:
                dead.append((message, f"delivered {message.deliveries} times without "
                                      f"completing (it may crash the engine)"))
                continue
            payload = message.payload
            try:
                cmd = decode_command(payload)
            except CodecError as exc:
                dead.append((message, f"undecodable command: {exc}"))
                continue
            if slicer.due():
                await slicer.pause()
            cmd.seq = engine.last_seq + 1
            cmd.ts_ms = ts
            events = apply(cmd)
            if len(events) >= SLICED_EVENTS:
                events_json = await encode_events_sliced(events, slicer)
            else:
                events_json = encode_events(events)
            parts.append(events_json)
            if applied is not None:
                applied += events
            logged.append((message.id, payload))
            done.append(message)
            headers = message.headers
            if headers:
                reply_to = headers.get(REPLY_TO)
                if reply_to:
                    replies.append(Reply(reply_to, headers.get(CORRELATION_ID, ""),
                                         events_json))
                    if decoded is not None:
                        decoded.keep(events_json, events)
        deliveries = []
        if logged:
            deliveries.append(encode_logged_delivery(
                first_seq, engine.last_seq, ts, join_event_arrays(parts), logged))
            if decoded is not None and applied is not None:
                decoded.keep(deliveries[-1],
                             Delivery(first_seq, engine.last_seq, applied, ts))
        self.stats.batches += 1
        self.stats.applied += len(logged)
        self._since_snapshot += len(logged)

        async def publish() -> None:
            # An outage here is waited out rather than skipped: dropping the batch would
            # lose it.
            written_at = time.monotonic()
            if read_next:
                ids, self._next = await _retrying(lambda: self.bus.complete_and_read(
                    done, events=deliveries, replies=replies, consumer=self.consumer,
                    count=self.batch_size, block_ms=self.block_ms, shard=self.shard,
                    fence=self.fence), None)
            else:
                ids = await _retrying(lambda: self.bus.complete(
                    done, events=deliveries, replies=replies, shard=self.shard,
                    fence=self.fence), None)
            if done or deliveries or replies:  # the fenced write extended the lease
                self._lease_checked = max(self._lease_checked, written_at)
            if ids:
                self.last_event_id = ids[-1]
            for message, error in dead:
                await self._dead_letter(message, error)

        return publish

    # --- recovery and snapshots -----------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild the engine from the snapshot and the log; take over pending commands.

        The lease is renewed all along (a long recovery must not let a standby take the
        shard over just before this engine starts to serve it).

        Raises:
            LeaseLost: another engine took the shard over meanwhile.
        """
        async with self._lease_kept():
            await self._recover()
        await self._keep_lease()
        self.ready.set()

    async def _recover(self) -> None:
        self.ready.clear()
        loaded = await asyncio.to_thread(read_snapshot, self.snapshot_file) \
            if self.snapshot_file is not None else None
        if loaded is not None:
            self.engine, self.last_event_id = loaded.engine, loaded.last_event_id
        else:
            self.engine, self.last_event_id = Engine(), START_ID
        await self.bus.ensure_group(self.events, SNAPSHOT_GROUP, self.last_event_id)
        for group in self.keep_groups:
            await self.bus.ensure_group(self.events, group, "0")
        self._covered.clear()
        after = self.last_event_id
        while True:
            # Chunks short enough to let the lease keeper run between them.
            entries = await self.bus.read(self.events, after, count=100)
            if not entries:
                break
            for entry in entries:
                ids = replay(self.engine, decode_logged_delivery(entry.id, entry.payload))
                self._covered.update(ids)
                self.stats.replayed += len(ids)
            after = self.last_event_id = entries[-1].id
            await asyncio.sleep(0)
        self._since_snapshot = self.stats.replayed
        await self.bus.ensure_group(self.commands, ENGINE_GROUP, "0")
        # Commands a differently named, dead engine of this shard held are ours now.
        await self.bus.reclaim(self.commands, ENGINE_GROUP, self.consumer, min_idle_ms=0,
                               count=1_000_000)
        # And ours, read by an engine of this name that died in this process (restarted
        # by ``supervised.RestartingEngine``): read again before new commands.
        self.bus.redo_pending(self.commands, ENGINE_GROUP, self.consumer)
        tune_gc()
        log.info("engine %s: recovered at seq %d (snapshot %s, %d commands replayed)",
                 self.shard, self.engine.last_seq, "loaded" if loaded else "none",
                 self.stats.replayed)

    # --- the lease -----------------------------------------------------------------------

    async def _take_lease(self, stop: asyncio.Event) -> bool:
        """Wait until this engine holds the shard's lease; False if stopped first."""
        key, token, ttl_ms = self.fence
        waiting_for = None
        while not stop.is_set():
            try:
                holder = await self.bus.hold_lease(key, token, ttl_ms)
            except BusError as exc:
                log.warning("engine %s: taking the lease failed: %s", self.shard, exc)
                holder = waiting_for
            else:
                if holder is None:
                    self._lease_checked = time.monotonic()
                    if waiting_for is not None:
                        log.warning("engine %s: took over the shard from %s", self.shard,
                                    waiting_for)
                    return True
                if holder != waiting_for:
                    log.warning("engine %s: standing by: the shard is held by %s (until "
                                "it stops, or %d ms after its last write)", self.shard,
                                holder, ttl_ms)
            waiting_for = holder
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(ttl_ms / 4000, 1.0))
        return False

    @contextlib.asynccontextmanager
    async def _lease_kept(self) -> AsyncIterator[None]:
        """Renew the lease every third of its life while the block runs (long work that
        leaves the loop free: recovery, writing a snapshot); re-raise ``LeaseLost``."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.fence.ttl_ms / 3000)
                await self._keep_lease()

        keeper = asyncio.create_task(renew())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self) -> None:
        """Renew the lease when a third of it has passed without a write.

        Raises:
            LeaseLost: another engine holds it now; this one must stop.
        """
        now = time.monotonic()
        if now - self._lease_checked < self.fence.ttl_ms / 3000:
            return
        key, token, ttl_ms = self.fence
        holder = await self.bus.hold_lease(key, token, ttl_ms)
        if holder is not None:
            raise LeaseLost(f"engine {self.shard}: lease {key} is held by {holder}")
        self._lease_checked = now

    def _snapshot_due(self) -> bool:
        if not self._since_snapshot:
            return False
        return (self._since_snapshot >= self.snapshot_every
                or time.monotonic() - self._snapshot_at >= self.snapshot_interval_s)

    snapshot_problem: str | None = None
    """Why the last periodic snapshot failed, until one succeeds (``/health`` shows it)."""

    async def _periodic_snapshot(self) -> None:
        """``snapshot``, where a file system that refuses it (no file descriptor left, a
        full disk, a permission) is loud but not fatal: nothing is trimmed without a
        snapshot, so the log still holds every command, and the next try comes after
        ``snapshot_interval_s``. (One unauthenticated client holding every file
        descriptor with half-sent requests stopped the embedded engine for good.)"""
        try:
            await self.snapshot()
        except OSError as exc:
            self.snapshot_problem = f"{type(exc).__name__}: {exc}"[:200]
            self.stats.snapshot_failures += 1
            log.error("engine %s: the snapshot failed (%s); the log keeps every command "
                      "and nothing is trimmed; trying again in %.0f s", self.shard,
                      self.snapshot_problem, self.snapshot_interval_s)
            return
        if self.snapshot_problem is not None:
            log.warning("engine %s: a snapshot was written again", self.shard)
            self.snapshot_problem = None

    async def snapshot(self) -> None:
        """Write a snapshot now, then let the streams be trimmed up to it."""
        self._snapshot_at = time.monotonic()
        if self.snapshot_file is None:
            await self.bus.trim(self.commands)
            self._since_snapshot = 0
            return
        self._lease_checked = -math.inf
        await self._keep_lease()  # a stale engine must not overwrite a newer snapshot
        state = self.engine.snapshot()  # plain data, consistent: taken between batches
        covered = self.last_event_id
        async with self._lease_kept():
            await asyncio.to_thread(write_snapshot, self.snapshot_file, state,
                                    last_event_id=covered, shard=self.shard,
                                    written_ms=now_ms())
        self._since_snapshot = 0
        self.stats.snapshots += 1
        try:
            await self.bus.set_group_position(self.events, SNAPSHOT_GROUP, covered)
        except UnknownGroup:  # Redis came back empty: the group went with the stream
            log.warning("engine %s: the %s group was gone (Redis restarted without its "
                        "data?); created again at %s", self.shard, SNAPSHOT_GROUP, covered)
            await self.bus.ensure_group(self.events, SNAPSHOT_GROUP, covered)
        await self.bus.trim(self.events)
        await self.bus.trim(self.commands)

    # --- housekeeping ---------------------------------------------------------------------

    async def _maybe_send_expire(self) -> None:
        """Send an ``Expire`` tick if something is due (at most every ``expire_every_s``).

        The tick fires whatever is due when it is applied, stale entries included, so
        this cannot keep ticking for a cancelled order or a moved deadline.
        """
        now = time.monotonic()
        if now - self._expire_sent < self.expire_every_s:
            return
        self._expire_sent = now
        due = self.engine.next_due_ms()
        if due is not None and due <= self.clock():
            await self.bus.send_command(encode_command(Expire()), shard=self.shard)
            self.stats.expiry_ticks += 1

    async def _dead_letter(self, message: Message, error: str) -> None:
        # After the batch's complete(): a crash in between redelivers this message,
        # which is then dead-lettered (and answered) again — harmless, never lost.
        await _retrying(lambda: self.bus.dead_letter(message, ENGINE_GROUP, error), None)
        self.stats.dead_letters += 1
        log.error("engine %s: dead-lettered command %s: %s", self.shard, message.id, error)
        if message.reply_to:
            rejected = Rejected(None, "unknown", MALFORMED_COMMAND, error, None, None)
            reply = Reply.to(message, encode_events([rejected]))
            await _retrying(lambda: self.bus.send_replies([reply]), None)


async def _retrying(operation: Callable, stop: asyncio.Event | None):
    """Await ``operation()`` until it succeeds without ``BusError``, backing off to 2 s.

    With ``stop`` set meanwhile it gives up by re-raising (recovery only; a batch that is
    applied but unpublished is retried regardless, since dropping it would lose it).
    """
    backoff = 0.05
    while True:
        try:
            return await operation()
        except BusError as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("engine: bus error %s; retrying in %.2fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
