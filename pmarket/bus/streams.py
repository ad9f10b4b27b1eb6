"""Append-only streams with consumer groups, acks, claims, trims and dead letters.

``Streams`` is the lower half of the bus: a dozen abstract primitives (append, ack and
delete in one atomic ``write``; group reads; claims; trims) and the stream and group
operations built on them. ``base.Bus`` adds the roles (commands, replies, events) on
top; ``memory.MemoryBus`` and ``redis_streams.RedisStreamsBus`` supply the primitives
with the same semantics, which one contract test suite checks for both.

Invariant: delivery is at least once. An entry appended is handed to every consumer group
until that group acks it or moves it to the group's dead-letter stream, and it is never
trimmed while any group has not acked it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Sequence

from pmarket.bus.values import (
    Ack,
    Append,
    BusUnavailable,
    ConsumerInfo,
    DeadLetter,
    Delete,
    Fence,
    GroupInfo,
    Message,
    Outgoing,
    PendingEntry,
    StreamId,
    StreamKeys,
    dead_letter_entry,
    parse_id,
    previous_id,
    read_dead_letter,
)


class Streams(abc.ABC):
    """Streams with consumer groups: the primitives and what is built directly on them.

    Args:
        prefix: first segment of every key, so several deployments can share a server.
    """

    def __init__(self, *, prefix: str = "pmarket") -> None:
        self.keys = StreamKeys(prefix)
        # Per (stream, group, consumer): cursor through the consumer's own pending
        # entries, read once before new ones; None once that backlog is drained.
        self._backlog: dict[tuple[str, str, str], StreamId | None] = {}

    # --- primitives -------------------------------------------------------------------

    @abc.abstractmethod
    async def write(
        self,
        appends: Sequence[Append] = (),
        acks: Sequence[Ack] = (),
        deletes: Sequence[Delete] = (),
        fence: Fence | None = None,
    ) -> list[list[StreamId]]:
        """Apply appends, then acks, then deletes, atomically and in one round trip.

        With ``fence``, only while the fence's token holds (or can take) its lease,
        which the write extends (see ``Fence``).

        Returns:
            The new ids of each ``Append``'s entries, in order.

        Raises:
            BusUnavailable: nothing or everything may have been applied (Redis: the
                transaction's outcome is unknown when the connection drops).
            LeaseLost: another token holds the fence's lease; nothing was written.
        """

    @abc.abstractmethod
    async def hold_lease(self, key: str, token: str, ttl_ms: int) -> str | None:
        """Take the lease ``key`` for ``token`` if it is free or already ``token``'s,
        lasting ``ttl_ms`` from now. None if ``token`` holds it now, else the holder's
        token (the lease unchanged)."""

    @abc.abstractmethod
    async def release_lease(self, key: str, token: str) -> bool:
        """Give the lease ``key`` up if ``token`` holds it; whether it did."""

    @abc.abstractmethod
    async def lease_holder(self, key: str) -> str | None:
        """The token holding the lease ``key`` now, or None if it is free (expired)."""

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
    async def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        """The consumers ``group`` knows, with their pending counts and idle times.

        Raises:
            UnknownGroup: the group (or the stream) does not exist.
        """

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
        with self._unknown_read_outcome(stream, group, consumer):
            return await self._read_group(stream, group, consumer, count, block_ms, None)

    def redo_pending(self, stream: str, group: str, consumer: str) -> None:
        """The next read of ``consumer`` returns its own pending entries first again: a
        consumer restarted within this process (the embedded engine recovered after a
        crash) redoes the work its dead predecessor of the same name had not acked."""
        self._backlog[(stream, group, consumer)] = "0-0"

    @contextlib.contextmanager
    def _unknown_read_outcome(self, stream: str, group: str, consumer: str) -> Iterator[None]:
        """Around a group read of new entries: when it fails, read the backlog again.

        A read that fails on the way back (Redis: the connection drops with the reply in
        flight) may have delivered entries all the same: they sit in this consumer's
        pending list and no read of new entries returns them again. Reading the own
        backlog first on the next try hands them over at once, instead of after the
        ``reclaim`` idle time (a minute of a stalled projection, or a command answered
        late).
        """
        try:
            yield
        except BusUnavailable:
            self.redo_pending(stream, group, consumer)
            raise

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
