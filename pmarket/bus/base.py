"""The bus interface: append-only streams with consumer groups, acks and dead letters.

The bus carries three flows between services (docs/DESIGN.md §4):

* **commands** — servers append to ``<prefix>:{<shard>}:commands``; the engine of that
  shard reads them in the consumer group ``engine`` and acks a command only once its
  effects (events, replies) are written.
* **replies** — the engine appends to ``<prefix>:replies:{<instance>}``, the stream of
  the server instance named in the command's ``reply_to``; ``Bus.request`` waits on it.
* **events** — the engine appends to ``<prefix>:{<shard>}:events``; every named consumer
  group (``worker``, ``server-<id>``...) reads all of them independently.

Invariant: delivery is at least once. An entry appended is handed to every consumer group
until that group acks it or moves it to the group's dead-letter stream, and it is never
trimmed while any group has not acked it; consumers must therefore be idempotent. The
shard name sits in a Redis hash tag so one shard's streams share a cluster slot and
running one engine per shard is a configuration change.

``Bus`` implements the roles on ``streams.Streams``, a dozen abstract primitives
(append/ack/delete in one atomic ``write``, group reads, claims, trims) and the stream
and group operations built on them; ``memory.MemoryBus`` and
``redis_streams.RedisStreamsBus`` supply them with the same semantics, which one
contract test suite checks for both. The values it takes and returns (``Message`` and
the rest) live in ``values``; ``pmarket.bus`` re-exports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from pmarket.bus.liveness import ServerLiveness
from pmarket.bus.outage import Outage
from pmarket.bus.streams import Streams
from pmarket.bus.values import (
    CORRELATION_ID,
    ENGINE_GROUP,
    REPLY_TO,
    Ack,
    Append,
    BusError,
    BusUnavailable,
    Decoded,
    Fence,
    Message,
    Outgoing,
    Reply,
    RequestTimeout,
    StreamId,
    UnknownGroup,
    next_id,
)
from pmarket.bus.waiting import WAITING, Batch

__all__ = [
    "Bus",
    "BusError",
    "BusUnavailable",
    "Message",
    "RequestTimeout",
    "UnknownGroup",
]

log = logging.getLogger(__name__)


BATCH_SPAN_S = 0.01
"""Longest a batch of requests takes in new ones: its one deadline is that much early
at most for the last of them."""


@dataclass(slots=True)
class _ReplyState:
    """The client side of ``request``: one sender task, one reply listener task.

    Requests never hold a connection while they wait: each one queues its command and
    takes a slot in the open ``Batch`` of its command stream and timeout (one future and
    one deadline timer for all of them); the sender appends everything queued in one
    write per round trip (a burst of requests becomes a few batched writes, each
    closing the batches it carries), and the listener fills the slots from this
    instance's reply stream, waking a batch's requests together once all are answered.
    Replies of one batch normally arrive together (the engine reads its commands in one
    batch); a read that brings only some ``wake``s the batch, so no request waits for
    another's reply. Two connections serve any number of requests.
    """

    # correlation id -> (batch, slot) of each request waiting for its reply
    waiting: dict[str, tuple[Batch, int]] = field(default_factory=dict)
    # the batches new requests join, by (command stream, timeout)
    batches: dict[tuple[str, float], Batch] = field(default_factory=dict)
    listener: asyncio.Task[None] | None = None
    # set once the listener knows where its stream ends (requests may go out)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # set once the listener tried to start, whether it could or not
    attempted: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BusError | None = None  # why the listener cannot start yet
    # (command stream, entry, correlation id) of requests not yet sent
    outbox: list[tuple[str, Outgoing, str]] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Bus(ServerLiveness, Streams):
    """Streams with consumer groups (``streams.Streams``), plus the command/reply/event
    roles built on them.

    Args:
        prefix: first segment of every key, so several deployments can share a server.
        shard: the default shard of the role methods (``None`` there means this one).
        instance: this process's name for replies; unique per process (default random).
        reply_ttl_ms: a reply stream expires this long after its last reply.
        reply_block_ms: how long one read of the reply listener blocks.
    """

    def __init__(
        self,
        *,
        prefix: str = "pmarket",
        shard: str = "main",
        instance: str | None = None,
        reply_ttl_ms: int = 600_000,
        reply_block_ms: int = 1_000,
    ) -> None:
        super().__init__(prefix=prefix)
        self.shard = shard
        self.instance = instance or uuid.uuid4().hex[:12]
        self.reply_ttl_ms = reply_ttl_ms
        self.reply_block_ms = reply_block_ms
        # Correlation ids only need to be unique per reply stream; a random token per bus
        # keeps a reused instance name from matching replies meant for its predecessor.
        self._correlation = f"{secrets.token_hex(4)}-"
        self._counter = itertools.count(1)
        self._replies = _ReplyState()
        self._groups_ready: set[tuple[str, str]] = set()
        self._closed = False

    decoded: Decoded | None = None
    """Decoded forms of what this process appended, for its own readers of the same
    payload objects (``values.Decoded``): an in-process bus has them, a bus across
    processes has none."""

    # --- roles: commands, replies, events ---------------------------------------------------

    def commands_stream(self, shard: str | None = None) -> str:
        """Key of the command stream of ``shard`` (default: this bus's shard)."""
        return self.keys.commands(shard or self.shard)

    def events_stream(self, shard: str | None = None) -> str:
        """Key of the event stream of ``shard`` (default: this bus's shard)."""
        return self.keys.events(shard or self.shard)

    async def send_command(
        self,
        payload: bytes,
        *,
        reply_to: str = "",
        correlation_id: str = "",
        shard: str | None = None,
    ) -> StreamId:
        """Append a command for the engine of ``shard`` without waiting for it."""
        headers = {REPLY_TO: reply_to, CORRELATION_ID: correlation_id} if reply_to else None
        entry: Outgoing = (payload, headers) if headers else payload
        return (await self.append(self.commands_stream(shard), (entry,)))[0]

    async def request(
        self, payload: bytes, *, timeout: float = 5.0, shard: str | None = None
    ) -> bytes:
        """Send a command and wait for the engine's reply.

        Returns:
            The reply payload.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds (counted from when its
                batch of requests opened, at most ``BATCH_SPAN_S`` earlier); the command
                was sent and may still be applied.
            BusUnavailable: the command could not be sent.
        """
        correlation_id = f"{self._correlation}{next(self._counter)}"
        state = self._replies
        if not state.started.is_set() or state.listener is None or state.listener.done():
            try:
                async with asyncio.timeout(timeout):
                    await self._start_reply_listener()
            except TimeoutError:
                raise RequestTimeout(
                    f"no reply to {correlation_id} within {timeout}s") from None
        if self._closed:
            raise BusError("bus closed")
        stream = self.commands_stream(shard)
        batch = self._request_batch(stream, timeout)
        index = batch.add()
        waiting = state.waiting
        waiting[correlation_id] = (batch, index)
        headers = {REPLY_TO: self.instance, CORRELATION_ID: correlation_id}
        state.outbox.append((stream, (payload, headers), correlation_id))
        self._start_sender()
        try:
            result = await batch.wait(index)
        finally:
            if waiting.pop(correlation_id, None) is not None and not batch.finished:
                batch.settle(index, None)  # left early: the others need not wait for it
        if result is WAITING:
            raise RequestTimeout(f"no reply to {correlation_id} within {timeout}s")
        if isinstance(result, BaseException):
            raise result
        return result

    def _request_batch(self, stream: str, timeout: float) -> Batch:
        """The open batch of requests for ``stream`` with ``timeout``, opened if there
        is none (the sender closed the last one) or it is older than ``BATCH_SPAN_S``;
        its deadline is ``timeout`` after it opened."""
        batches = self._replies.batches
        key = (stream, timeout)
        batch = batches.get(key)
        loop = asyncio.get_running_loop()
        if batch is None or loop.time() - batch.opened > BATCH_SPAN_S:
            batch = batches[key] = Batch(loop)
            batch.timer = loop.call_at(batch.opened + timeout, batch.finish)
        return batch

    max_send_batch = 2_000
    """Most queued requests the sender appends in one write."""

    def _start_sender(self) -> None:
        state = self._replies
        state.wake.set()
        sender = state.sender
        if sender is None or sender.done():
            state.sender = asyncio.create_task(self._send_requests(), name="bus-requests")

    async def _send_requests(self) -> None:
        """Append queued requests' commands, all that queued meanwhile in each write."""
        state = self._replies
        while not self._closed:
            if not state.outbox:
                state.wake.clear()
                await state.wake.wait()
                continue
            batch = state.outbox[: self.max_send_batch]
            del state.outbox[: len(batch)]
            state.batches.clear()  # later requests wait on batches of their own
            by_stream: dict[str, list[Outgoing]] = {}
            for stream, entry, _ in batch:
                by_stream.setdefault(stream, []).append(entry)
            try:
                await self.write(appends=[Append(k, v) for k, v in by_stream.items()])
            except Exception as exc:  # each request sees why it failed
                error = exc if isinstance(exc, BusError) else BusError(repr(exc))
                for _, _, correlation_id in batch:
                    entry = state.waiting.pop(correlation_id, None)
                    if entry is not None:
                        entry[0].settle(entry[1], BusUnavailable(
                            f"command could not be sent: {error}"))

    async def read_commands(
        self,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int | None = None,
        shard: str | None = None,
    ) -> list[Message]:
        """Read a batch of commands as engine consumer ``consumer`` (see ``read_group``)."""
        return await self._read_role(
            self.commands_stream(shard), ENGINE_GROUP, consumer, count, block_ms, "0"
        )

    async def complete(
        self,
        commands: Iterable[Message],
        *,
        events: Sequence[bytes] = (),
        replies: Sequence[Reply] = (),
        shard: str | None = None,
        fence: Fence | None = None,
    ) -> list[StreamId]:
        """Publish the results of a batch of commands and ack the commands, atomically.

        One round trip appends ``events`` to the shard's event stream, each reply to its
        requester's stream, and acks ``commands``: a crash leaves either all of it or
        none, never events of an un-acked command. With ``fence`` (the engine's lease),
        only while its token holds the lease; else ``LeaseLost`` and nothing written.

        Returns:
            The ids of the appended events.
        """
        appends = [Append(self.events_stream(shard), events)] if events else []
        appends.extend(self._reply_appends(replies))
        ids = [m.id for m in commands]
        acks = (Ack(self.commands_stream(shard), ENGINE_GROUP, ids),) if ids else ()
        if not appends and not acks:
            return []
        written = await self.write(appends=appends, acks=acks, fence=fence)
        return written[0] if events else []

    async def complete_and_read(
        self,
        commands: Iterable[Message],
        *,
        events: Sequence[bytes] = (),
        replies: Sequence[Reply] = (),
        consumer: str,
        count: int = 100,
        block_ms: int | None = None,
        shard: str | None = None,
        fence: Fence | None = None,
    ) -> tuple[list[StreamId], list[Message]]:
        """``complete`` a batch (fenced like ``complete``), then ``read_commands`` the
        next: one round trip where the transport can pipeline them (Redis), else two.

        If the write fails, nothing is read. Returns the event ids and the next batch.
        """
        commands = list(commands)
        stream = self.commands_stream(shard)
        if self._reads_new(stream, ENGINE_GROUP, consumer) and (commands or events or replies):
            appends = [Append(self.events_stream(shard), events)] if events else []
            appends.extend(self._reply_appends(replies))
            ids = [m.id for m in commands]
            acks = [Ack(stream, ENGINE_GROUP, ids)] if ids else []
            with self._unknown_read_outcome(stream, ENGINE_GROUP, consumer):
                done = await self._complete_and_read(
                    (appends, acks), stream, ENGINE_GROUP, consumer, count, block_ms, fence)
            if done is not None:
                written, messages = done
                event_ids = written[0] if events else []
                if messages is None:  # written, but not read (the group vanished)
                    messages = await self.read_commands(
                        consumer, count=count, block_ms=block_ms, shard=shard)
                return event_ids, messages
        event_ids = await self.complete(commands, events=events, replies=replies,
                                        shard=shard, fence=fence)
        return event_ids, await self.read_commands(
            consumer, count=count, block_ms=block_ms, shard=shard)

    def _reads_new(self, stream: str, group: str, consumer: str) -> bool:
        """True once ``consumer``'s group exists and its own backlog was read: its next
        read is of new entries only, which a transport can pipeline behind a write."""
        return (stream, group) in self._groups_ready and \
            self._backlog.get((stream, group, consumer), "0-0") is None

    async def _complete_and_read(
        self,
        write: tuple[Sequence[Append], Sequence[Ack]],
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        fence: Fence | None = None,
    ) -> tuple[list[list[StreamId]], list[Message] | None] | None:
        """A transport's pipelined write + group read of new entries; None: not
        supported (the caller does them one after the other); messages None: written
        but not read."""
        return None

    async def send_replies(self, replies: Sequence[Reply]) -> None:
        """Append replies to their requesters' reply streams in one round trip."""
        if replies:
            await self.write(appends=self._reply_appends(replies))

    async def publish_events(
        self, payloads: Sequence[bytes], *, shard: str | None = None
    ) -> list[StreamId]:
        """Append a batch of event payloads to the event stream of ``shard``."""
        return await self.append(self.events_stream(shard), payloads)

    async def read_events(
        self,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int | None = None,
        start_id: StreamId | None = "0",
        shard: str | None = None,
    ) -> list[Message]:
        """Read a batch of events as ``consumer`` of ``group`` (created on first use).

        Args:
            group: the reading service's group: ``"worker"``, ``"server-<id>"``...
            consumer: this process within the group.
            count: at most this many messages.
            block_ms: wait up to this long when there is nothing to read.
            start_id: where a newly created group starts (``"0"``: the whole retained
                stream; ``"$"``: only new events; an id: after it; None: never create
                it, raise ``UnknownGroup`` if it is missing). Ignored when the group
                exists; see ``set_group_position`` to move one.
            shard: the shard (default: this bus's shard).
        """
        return await self._read_role(
            self.events_stream(shard), group, consumer, count, block_ms, start_id
        )

    async def ack_events(
        self, group: str, ids: Sequence[StreamId], *, shard: str | None = None
    ) -> None:
        """Acknowledge events for ``group`` once their effects are durable."""
        await self.ack(self.events_stream(shard), group, ids)

    async def ack_and_read_events(
        self,
        group: str,
        consumer: str,
        ids: Sequence[StreamId],
        *,
        count: int = 100,
        block_ms: int | None = None,
        start_id: StreamId | None = "0",
        shard: str | None = None,
    ) -> list[Message]:
        """``ack_events`` the last batch, then ``read_events`` the next: one round trip
        where the transport can pipeline them (Redis), else two. A follower that acks
        before reading again waits a whole extra turn of a busy event loop per batch.
        ``start_id`` is ``read_events``'s."""
        stream = self.events_stream(shard)
        if ids:
            done = None
            if self._reads_new(stream, group, consumer):
                with self._unknown_read_outcome(stream, group, consumer):
                    done = await self._complete_and_read(
                        ((), [Ack(stream, group, ids)]), stream, group, consumer, count,
                        block_ms)
            if done is None:
                await self.ack(stream, group, ids)
            elif done[1] is not None:
                return done[1]
        return await self.read_events(group, consumer, count=count, block_ms=block_ms,
                                      start_id=start_id, shard=shard)

    async def close(self) -> None:
        """Stop the reply listener, fail pending requests, drop this instance's replies."""
        if self._closed:
            return
        self._closed = True
        state = self._replies
        state.attempted.set()  # requests still waiting for the listener see the closure
        state.wake.set()
        tasks = [t for t in (state.listener, state.sender) if t is not None]
        for task in tasks:
            task.cancel()
        # Dropping the listener's own connection also ends a blocking read at once, on
        # any transport, whether or not it has noticed its cancellation yet.
        await self._stop_reply_reads()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if state.listener is not None:
            with contextlib.suppress(BusError):
                await self.delete_streams(self.keys.replies(self.instance))
        waiting = list(state.waiting.values())
        state.waiting.clear()
        for batch, index in waiting:
            batch.settle(index, BusError("bus closed"))
        state.outbox.clear()
        state.batches.clear()
        await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- internals --------------------------------------------------------------------------

    async def _read_role(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        start_id: StreamId | None,
    ) -> list[Message]:
        """``read_group``, creating the group at ``start_id`` the first time and again if
        it vanished; with ``start_id`` None never creating it (``UnknownGroup``)."""
        ready = (stream, group)
        if ready not in self._groups_ready:
            if start_id is not None:
                await self.ensure_group(stream, group, start_id)
            self._groups_ready.add(ready)
        try:
            return await self.read_group(stream, group, consumer, count=count, block_ms=block_ms)
        except UnknownGroup:
            # Deleted since (the stream dropped by an operator, a Redis restart that lost
            # its data, a reaped group): the consumer's state in it is gone too.
            self._groups_ready.discard(ready)
            self._backlog.pop((stream, group, consumer), None)
            if start_id is None:
                raise
            log.warning("bus: consumer group %s of %s vanished; creating it again at %s",
                        group, stream, start_id)
            await self.ensure_group(stream, group, start_id)
            self._groups_ready.add(ready)
            return await self.read_group(stream, group, consumer, count=count, block_ms=block_ms)

    def _reply_appends(self, replies: Sequence[Reply]) -> list[Append]:
        by_stream: dict[str, list[Outgoing]] = {}
        for reply in replies:
            if not reply.reply_to:
                continue
            headers = {CORRELATION_ID: reply.correlation_id}
            by_stream.setdefault(self.keys.replies(reply.reply_to), []).append(
                (reply.payload, headers)
            )
        return [Append(key, entries, self.reply_ttl_ms) for key, entries in by_stream.items()]

    async def _start_reply_listener(self) -> None:
        """Start the reply listener if it is not running, and wait until it has started.

        Raises:
            BusUnavailable: the listener cannot reach the transport (it keeps trying;
                requests fail fast meanwhile rather than wait for their timeouts).
        """
        if self._closed:
            raise BusError("bus closed")
        state = self._replies
        listener = state.listener
        if listener is None or listener.done():
            if listener is not None and not listener.cancelled() and listener.exception():
                log.error("reply listener died; restarting", exc_info=listener.exception())
            state.started = asyncio.Event()
            state.attempted = asyncio.Event()
            state.failure = None
            state.listener = asyncio.create_task(self._listen_replies(), name="bus-replies")
        await state.attempted.wait()
        if self._closed:  # close() released the wait
            raise BusError("bus closed")
        if not state.started.is_set():
            raise BusUnavailable(f"replies cannot be received: {state.failure}")

    async def tail(
        self, name: str, stream: str, after_id: StreamId, *, count: int = 100,
        block_ms: int = 1000,
    ) -> list[Message]:
        """A blocking read without a group for the one long-lived reader ``name`` (Redis:
        on a connection of its own, so it never holds a pooled connection while it
        waits; ``close`` ends it)."""
        return await self.read(stream, after_id, count=count, block_ms=block_ms)

    async def _read_replies(
        self, stream: str, after_id: StreamId, count: int, block_ms: int
    ) -> list[Message]:
        """The reply listener's blocking read (Redis: on a connection of its own)."""
        return await self.read(stream, after_id, count=count, block_ms=block_ms)

    async def _stop_reply_reads(self) -> None:
        """Make a blocking ``_read_replies`` return now (called by ``close``)."""

    async def _listen_replies(self) -> None:
        """Resolve the waiting requests' futures from this instance's reply stream.

        Transport failures are retried for as long as they last (logged once when they
        start and once when they end); while the listener cannot start, ``request``
        fails fast with ``BusUnavailable``.
        """
        stream = self.keys.replies(self.instance)
        state = self._replies
        outage = Outage(f"reply listener of {self.instance}", log)
        # Start after whatever the stream already holds, before any request goes out.
        while True:
            try:
                last = await self.last_id(stream)
                break
            except BusError as exc:
                if self._closed:
                    return
                state.failure = exc
                state.attempted.set()
                await outage.failed(exc)
        outage.recovered()
        state.failure = None
        state.started.set()
        state.attempted.set()
        untrimmed = 0
        while not self._closed:
            messages = await self._retrying(
                outage, self._read_replies, stream, last, 1_000, self.reply_block_ms
            )
            if not messages and self._closed:
                return
            waiting = state.waiting
            partly: list[Batch] = []
            for message in messages:
                entry = waiting.pop(message.correlation_id, None)
                if entry is not None:
                    batch = entry[0]
                    batch.settle(entry[1], message.payload)
                    if not batch.finished and (not partly or partly[-1] is not batch):
                        partly.append(batch)
            for batch in partly:  # answered in part by this read: let those go now
                if not batch.finished:
                    batch.wake()
            if messages:
                last = messages[-1].id
                untrimmed += len(messages)
            if untrimmed >= 1_000 or (untrimmed and not messages):
                # Only this listener reads the stream: everything up to `last` is done.
                with contextlib.suppress(BusError):
                    await self._trim_below(stream, next_id(last), True)
                    untrimmed = 0

    async def _retrying(self, outage: Outage, operation: Any, *args: Any) -> Any:
        """Await ``operation`` until it does not raise ``BusError``, backing off up to 1 s
        and logging through ``outage`` (once when failures start, once when they end).

        Once the bus is closed a failure ends the caller instead (as a cancellation).
        """
        while True:
            try:
                result = await operation(*args)
            except BusError as exc:
                if self._closed:
                    raise asyncio.CancelledError from None
                await outage.failed(exc)
                continue
            outage.recovered()
            return result
