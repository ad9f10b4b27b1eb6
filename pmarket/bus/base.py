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

``Bus`` implements everything above on a dozen abstract primitives (append/ack/delete in
one atomic ``write``, group reads, claims, trims); ``memory.MemoryBus`` and
``redis_streams.RedisStreamsBus`` supply them with the same semantics, which one
contract test suite checks for both. The values it takes and returns (``Message`` and
the rest) live in ``values`` and are re-exported here and from ``pmarket.bus``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from pmarket.bus.values import (
    CORRELATION_ID,
    ENGINE_GROUP,
    REPLY_TO,
    Ack,
    Append,
    BusError,
    BusUnavailable,
    DeadLetter,
    Delete,
    GroupInfo,
    Message,
    Outgoing,
    PendingEntry,
    Reply,
    RequestTimeout,
    StreamId,
    StreamKeys,
    UnknownGroup,
    dead_letter_entry,
    next_id,
    parse_id,
    previous_id,
    read_dead_letter,
)

__all__ = [
    "Bus",
    "BusError",
    "BusUnavailable",
    "Message",
    "RequestTimeout",
    "UnknownGroup",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _ReplyState:
    """The client side of ``request``: one sender task, one reply listener task.

    Requests never hold a connection while they wait: each one queues its command and a
    future; the sender appends everything queued in one write per round trip (a burst
    of requests becomes a few batched writes), and the listener resolves the futures
    from this instance's reply stream. Two connections serve any number of requests.
    """

    waiting: dict[str, asyncio.Future[bytes]] = field(default_factory=dict)
    listener: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # (command stream, entry, correlation id) of requests not yet sent
    outbox: list[tuple[str, Outgoing, str]] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Bus(abc.ABC):
    """Streams with consumer groups, plus the command/reply/event roles built on them.

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
        self.keys = StreamKeys(prefix)
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
        # Per (stream, group, consumer): cursor through the consumer's own pending
        # entries, read once before new ones; None once that backlog is drained.
        self._backlog: dict[tuple[str, str, str], StreamId | None] = {}
        self._closed = False

    # --- primitives -------------------------------------------------------------------

    @abc.abstractmethod
    async def write(
        self,
        appends: Sequence[Append] = (),
        acks: Sequence[Ack] = (),
        deletes: Sequence[Delete] = (),
    ) -> list[list[StreamId]]:
        """Apply appends, then acks, then deletes, atomically and in one round trip.

        Returns:
            The new ids of each ``Append``'s entries, in order.

        Raises:
            BusUnavailable: nothing or everything may have been applied (Redis: the
                transaction's outcome is unknown when the connection drops).
        """

    @abc.abstractmethod
    async def read(
        self,
        stream: str,
        after_id: StreamId = "0-0",
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Message]:
        """Read entries with ids above ``after_id``, without a group (tail or replay).

        Args:
            stream: the stream key.
            after_id: exclusive lower bound; ``"0-0"`` reads from the start.
            count: at most this many entries.
            block_ms: wait up to this long for an entry if there is none (0: forever;
                None: return at once).
        """

    @abc.abstractmethod
    async def ensure_group(self, stream: str, group: str, start_id: StreamId = "0") -> bool:
        """Create ``group`` on ``stream`` (and the stream) unless it exists.

        Args:
            stream: the stream key.
            group: the group name.
            start_id: the group receives entries above this id: ``"0"`` for all,
                ``"$"`` for only those appended from now on.

        Returns:
            True if the group was created, False if it already existed.
        """

    @abc.abstractmethod
    async def set_group_position(self, stream: str, group: str, last_id: StreamId) -> None:
        """Make ``group`` deliver entries after ``last_id`` next (resume from a position).

        Pending entries stay pending. Moving a group back below the trimmed part of a
        stream cannot bring trimmed entries back.

        Raises:
            UnknownGroup: the group does not exist.
        """

    @abc.abstractmethod
    async def delete_group(self, stream: str, group: str) -> bool:
        """Remove ``group`` and its pending list; True if it existed.

        A group that is never read again holds back trimming: delete it when its consumer
        leaves for good (a server instance shutting down).
        """

    @abc.abstractmethod
    async def groups(self, stream: str) -> list[GroupInfo]:
        """State of every consumer group of ``stream`` (empty if there is no stream)."""

    @abc.abstractmethod
    async def pending(
        self, stream: str, group: str, *, consumer: str | None = None, count: int = 100
    ) -> list[PendingEntry]:
        """The oldest ``count`` pending entries of ``group``, optionally of one consumer."""

    @abc.abstractmethod
    async def last_id(self, stream: str) -> StreamId:
        """Id of the newest entry of ``stream`` ("0-0" if it is empty or missing)."""

    @abc.abstractmethod
    async def length(self, stream: str) -> int:
        """Number of entries in ``stream`` (0 if it does not exist)."""

    @abc.abstractmethod
    async def delete_streams(self, *streams: str) -> int:
        """Delete whole streams with their groups; returns how many existed."""

    @abc.abstractmethod
    async def _read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        after: StreamId | None,
    ) -> list[Message]:
        """Read as ``consumer`` of ``group``: new entries if ``after`` is None, else the
        consumer's own pending entries above ``after`` (which counts as a delivery)."""

    @abc.abstractmethod
    async def _claim(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Message]:
        """Move up to ``count`` entries pending for at least ``min_idle_ms`` to
        ``consumer``, oldest first, counting a delivery each (Redis XAUTOCLAIM)."""

    @abc.abstractmethod
    async def _trim_below(self, stream: str, min_id: StreamId, approximate: bool) -> int:
        """Delete entries with ids below ``min_id``; returns how many were deleted."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release the transport."""

    # --- streams and groups -------------------------------------------------------------

    async def append(self, stream: str, entries: Sequence[Outgoing]) -> list[StreamId]:
        """Append entries to ``stream`` atomically; returns their ids."""
        if not entries:
            return []
        return (await self.write(appends=(Append(stream, entries),)))[0]

    async def ack(self, stream: str, group: str, ids: Sequence[StreamId]) -> None:
        """Acknowledge ``ids`` for ``group``: they are done and will not be redelivered."""
        if ids:
            await self.write(acks=(Ack(stream, group, ids),))

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Message]:
        """Read a batch as ``consumer`` of ``group``.

        The first reads of a consumer on this bus return its own entries still pending
        from before (a restarted consumer redoing the work it had not acked), then new
        entries. Entries stuck with *other*, dead consumers come back through ``reclaim``.

        Raises:
            UnknownGroup: the group does not exist (see ``ensure_group``).
        """
        key = (stream, group, consumer)
        cursor = self._backlog.get(key, "0-0")
        if cursor is not None:
            messages = await self._read_group(stream, group, consumer, count, None, cursor)
            if messages:
                self._backlog[key] = messages[-1].id
                return messages
            self._backlog[key] = None
        return await self._read_group(stream, group, consumer, count, block_ms, None)

    async def reclaim(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
        max_deliveries: int | None = None,
    ) -> list[Message]:
        """Take over entries left pending by consumers that stopped (died or hung).

        Args:
            stream: the stream key.
            group: the consumer group.
            consumer: the consumer taking them over.
            min_idle_ms: only entries delivered at least this long ago; longer than the
                slowest legitimate processing of a batch.
            count: at most this many entries.
            max_deliveries: entries delivered more often than this (counting this
                reclaim) are poison: they go to the dead-letter stream instead.

        Returns:
            The reclaimed entries, oldest first, with their delivery counts.
        """
        claimed = await self._claim(stream, group, consumer, min_idle_ms, count)
        if max_deliveries is None:
            return claimed
        keep: list[Message] = []
        poison: list[Message] = []
        for message in claimed:
            (poison if message.deliveries > max_deliveries else keep).append(message)
        for message in poison:
            error = f"delivered {message.deliveries} times without an ack"
            await self.dead_letter(message, group, error)
        return keep

    async def trim(self, stream: str, *, approximate: bool = True) -> int:
        """Drop entries every consumer group is done with; returns how many went.

        The cut is the oldest entry that some group has pending or has not been
        delivered yet, so no unread or un-acked entry is ever dropped. A stream with
        no group is left alone. ``approximate`` lets Redis cut at whole internal nodes
        only (cheaper; may keep a few more entries).
        """
        # groups() reads last-delivered ids before pending lists: entries delivered in
        # between have ids above the former, so the floor below is never too high.
        infos = await self.groups(stream)
        if not infos:
            return 0
        floor = min((info.floor_id for info in infos), key=parse_id)
        return await self._trim_below(stream, floor, approximate)

    # --- dead letters ---------------------------------------------------------------------

    async def dead_letter(self, message: Message, group: str, error: str) -> StreamId:
        """Move ``message`` to ``group``'s dead-letter stream with ``error``, and ack it.

        Both happen in one atomic write. Returns the dead-letter entry id.
        """
        dlq = self.keys.dead_letters(message.stream, group)
        ids = await self.write(
            appends=(Append(dlq, (dead_letter_entry(message, group, error),)),),
            acks=(Ack(message.stream, group, (message.id,)),),
        )
        return ids[0][0]

    async def dead_letters(
        self, stream: str, group: str, *, after_id: StreamId = "0-0", count: int = 100
    ) -> list[DeadLetter]:
        """List ``group``'s dead letters from ``stream``, oldest first, after ``after_id``."""
        dlq = self.keys.dead_letters(stream, group)
        return [read_dead_letter(m) for m in await self.read(dlq, after_id, count=count)]

    async def retry_dead_letter(self, stream: str, group: str, dead_id: StreamId) -> StreamId:
        """Append a dead letter back to its stream and remove it from the dead letters.

        The copy gets a new id at the end of the stream, so every group of the stream
        receives it again (consumers are idempotent). Returns the new id.

        Raises:
            KeyError: there is no dead letter ``dead_id``.
        """
        letter = await self._find_dead_letter(stream, group, dead_id)
        entry = (letter.payload, letter.headers) if letter.headers else letter.payload
        ids = await self.write(
            appends=(Append(letter.stream, (entry,)),),
            deletes=(Delete(self.keys.dead_letters(stream, group), (dead_id,)),),
        )
        return ids[0][0]

    async def delete_dead_letter(self, stream: str, group: str, dead_id: StreamId) -> bool:
        """Discard a dead letter for good; True if it existed."""
        dlq = self.keys.dead_letters(stream, group)
        found = await self.read(dlq, previous_id(dead_id), count=1)
        if not found or found[0].id != dead_id:
            return False
        await self.write(deletes=(Delete(dlq, (dead_id,)),))
        return True

    async def _find_dead_letter(self, stream: str, group: str, dead_id: StreamId) -> DeadLetter:
        dlq = self.keys.dead_letters(stream, group)
        found = await self.read(dlq, previous_id(dead_id), count=1)
        if not found or found[0].id != dead_id:
            raise KeyError(f"no dead letter {dead_id} in {dlq}")
        return read_dead_letter(found[0])

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
            RequestTimeout: no reply within ``timeout`` seconds; the command was sent and
                may still be applied.
            BusUnavailable: the command could not be sent.
        """
        correlation_id = f"{self._correlation}{next(self._counter)}"
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        state = self._replies
        waiting = state.waiting
        try:
            async with asyncio.timeout(timeout):
                if not state.started.is_set() or state.listener is None \
                        or state.listener.done():
                    await self._start_reply_listener()
                if self._closed:
                    raise BusError("bus closed")
                waiting[correlation_id] = future
                headers = {REPLY_TO: self.instance, CORRELATION_ID: correlation_id}
                state.outbox.append(
                    (self.commands_stream(shard), (payload, headers), correlation_id))
                self._start_sender()
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {correlation_id} within {timeout}s") from None
        finally:
            waiting.pop(correlation_id, None)

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
            by_stream: dict[str, list[Outgoing]] = {}
            for stream, entry, _ in batch:
                by_stream.setdefault(stream, []).append(entry)
            try:
                await self.write(appends=[Append(k, v) for k, v in by_stream.items()])
            except Exception as exc:  # each request sees why it failed
                error = exc if isinstance(exc, BusError) else BusError(repr(exc))
                for _, _, correlation_id in batch:
                    future = state.waiting.pop(correlation_id, None)
                    if future is not None and not future.done():
                        future.set_exception(
                            BusUnavailable(f"command could not be sent: {error}"))

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
    ) -> list[StreamId]:
        """Publish the results of a batch of commands and ack the commands, atomically.

        One round trip appends ``events`` to the shard's event stream, each reply to its
        requester's stream, and acks ``commands``: a crash leaves either all of it or
        none, never events of an un-acked command.

        Returns:
            The ids of the appended events.
        """
        appends = [Append(self.events_stream(shard), events)] if events else []
        appends.extend(self._reply_appends(replies))
        ids = [m.id for m in commands]
        acks = (Ack(self.commands_stream(shard), ENGINE_GROUP, ids),) if ids else ()
        if not appends and not acks:
            return []
        written = await self.write(appends=appends, acks=acks)
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
    ) -> tuple[list[StreamId], list[Message]]:
        """``complete`` a batch, then ``read_commands`` the next: one round trip where
        the transport can pipeline them (Redis), else two.

        If the write fails, nothing is read. Returns the event ids and the next batch.
        """
        commands = list(commands)
        stream = self.commands_stream(shard)
        if self._reads_new(stream, ENGINE_GROUP, consumer) and (commands or events or replies):
            appends = [Append(self.events_stream(shard), events)] if events else []
            appends.extend(self._reply_appends(replies))
            ids = [m.id for m in commands]
            acks = [Ack(stream, ENGINE_GROUP, ids)] if ids else []
            done = await self._complete_and_read(
                (appends, acks), stream, ENGINE_GROUP, consumer, count, block_ms)
            if done is not None:
                written, messages = done
                event_ids = written[0] if events else []
                if messages is None:  # written, but not read (the group vanished)
                    messages = await self.read_commands(
                        consumer, count=count, block_ms=block_ms, shard=shard)
                return event_ids, messages
        event_ids = await self.complete(commands, events=events, replies=replies,
                                        shard=shard)
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
        start_id: StreamId = "0",
        shard: str | None = None,
    ) -> list[Message]:
        """Read a batch of events as ``consumer`` of ``group`` (created on first use).

        Args:
            group: the reading service's group: ``"worker"``, ``"server-<id>"``...
            consumer: this process within the group.
            count: at most this many messages.
            block_ms: wait up to this long when there is nothing to read.
            start_id: where a newly created group starts (``"0"``: the whole retained
                stream; ``"$"``: only new events; an id: after it). Ignored when the
                group exists; see ``set_group_position`` to move one.
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
        shard: str | None = None,
    ) -> list[Message]:
        """``ack_events`` the last batch, then ``read_events`` the next: one round trip
        where the transport can pipeline them (Redis), else two. A follower that acks
        before reading again waits a whole extra turn of a busy event loop per batch."""
        stream = self.events_stream(shard)
        if ids:
            done = None
            if self._reads_new(stream, group, consumer):
                done = await self._complete_and_read(
                    ((), [Ack(stream, group, ids)]), stream, group, consumer, count, block_ms)
            if done is None:
                await self.ack(stream, group, ids)
            elif done[1] is not None:
                return done[1]
        return await self.read_events(group, consumer, count=count, block_ms=block_ms,
                                      shard=shard)

    async def close(self) -> None:
        """Stop the reply listener, fail pending requests, drop this instance's replies."""
        if self._closed:
            return
        self._closed = True
        state = self._replies
        state.started.set()  # requests still waiting for the listener see the closure
        state.wake.set()
        tasks = [t for t in (state.listener, state.sender) if t is not None]
        for task in tasks:
            task.cancel()
        # A blocking read may not notice the cancellation (redis-py swallowed it in its
        # blocking XREAD): dropping the listener's own connection ends the read at once.
        await self._stop_reply_reads()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if state.listener is not None:
            with contextlib.suppress(BusError):
                await self.delete_streams(self.keys.replies(self.instance))
        error = BusError("bus closed")
        for future in state.waiting.values():
            if not future.done():
                future.set_exception(error)
        state.outbox.clear()
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
        start_id: StreamId,
    ) -> list[Message]:
        """``read_group``, creating the group the first time and again if it vanished."""
        ready = (stream, group)
        if ready not in self._groups_ready:
            await self.ensure_group(stream, group, start_id)
            self._groups_ready.add(ready)
        try:
            return await self.read_group(stream, group, consumer, count=count, block_ms=block_ms)
        except UnknownGroup:
            # Deleted since (the stream dropped by an operator): make it again, once.
            await self.ensure_group(stream, group, start_id)
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
        if self._closed:
            raise BusError("bus closed")
        state = self._replies
        listener = state.listener
        if listener is None or listener.done():
            if listener is not None and not listener.cancelled() and listener.exception():
                log.error("reply listener died; restarting", exc_info=listener.exception())
            state.started = asyncio.Event()
            state.listener = asyncio.create_task(self._listen_replies(), name="bus-replies")
        await state.started.wait()
        if self._closed:  # close() released the wait
            raise BusError("bus closed")

    async def _read_replies(
        self, stream: str, after_id: StreamId, count: int, block_ms: int
    ) -> list[Message]:
        """The reply listener's blocking read (Redis: on a connection of its own)."""
        return await self.read(stream, after_id, count=count, block_ms=block_ms)

    async def _stop_reply_reads(self) -> None:  # noqa: B027 - optional hook
        """Make a blocking ``_read_replies`` return now (called by ``close``)."""

    async def _listen_replies(self) -> None:
        """Resolve the waiting requests' futures from this instance's reply stream."""
        stream = self.keys.replies(self.instance)
        state = self._replies
        # Start after whatever the stream already holds, before any request goes out.
        last = await self._retrying(self.last_id, stream)
        state.started.set()
        untrimmed = 0
        while not self._closed:
            messages = await self._retrying(
                self._read_replies, stream, last, 1_000, self.reply_block_ms
            )
            if not messages and self._closed:
                return
            waiting = state.waiting
            for message in messages:
                future = waiting.pop(message.correlation_id, None)
                if future is not None and not future.done():
                    future.set_result(message.payload)
            if messages:
                last = messages[-1].id
                untrimmed += len(messages)
            if untrimmed >= 1_000 or (untrimmed and not messages):
                # Only this listener reads the stream: everything up to `last` is done.
                with contextlib.suppress(BusError):
                    await self._trim_below(stream, next_id(last), True)
                    untrimmed = 0

    async def _retrying(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """Await ``operation`` until it does not raise ``BusError``, backing off up to 1 s.

        Once the bus is closed a failure ends the caller instead (as a cancellation).
        """
        backoff = 0.05
        while True:
            try:
                return await operation(*args, **kwargs)
            except BusError:
                if self._closed:
                    raise asyncio.CancelledError from None
                log.warning("bus operation %s failed; retrying", operation.__name__,
                            exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
