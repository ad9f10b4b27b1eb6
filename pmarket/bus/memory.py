"""In-process bus: the Redis Streams semantics on Python dicts, with injectable faults.

``MemoryBus`` is the bus of the embedded ``pmarket serve`` and of tests. It keeps what
the contract promises on Redis — ids ordered by time, consumer groups with a last-delivered
position and a pending list per group, history reads, claims with idle times and delivery
counts, atomic multi-stream writes, expiring streams — so code that works on it works on
Redis. ``Faults`` makes it misbehave on purpose, like httpx's ``MockTransport``: failed
writes, and dropped, duplicated or delayed deliveries.

Invariant: everything one call changes, it changes before its first ``await`` (or not at
all): other tasks never see half of a write, exactly as a Redis MULTI/EXEC.
"""

from __future__ import annotations

import asyncio
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pmarket.bus.base import Bus
from pmarket.bus.values import (
    NO_HEADERS,
    Ack,
    Append,
    BusUnavailable,
    ConsumerInfo,
    Decoded,
    Delete,
    Fence,
    GroupInfo,
    LeaseLost,
    Message,
    PendingEntry,
    StreamId,
    UnknownGroup,
    parse_id,
)

_Id = tuple[int, int]


def _fmt(entry_id: _Id) -> StreamId:
    return f"{entry_id[0]}-{entry_id[1]}"


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Faults:
    """Faults a ``MemoryBus`` injects; change the fields between steps of a test.

    Attributes:
        fail_writes: the next this many ``write`` calls raise ``BusUnavailable`` and
            change nothing.
        fail_write_if: a predicate on a ``write``'s appends; True makes it fail likewise.
        drop: probability that a delivered entry is lost on the way to the reader. A
            group read still records it as pending (so only ``reclaim`` brings it back);
            a read without a group just skips it.
        lose_replies: the next this many group reads that hand over new entries record
            them as delivered (pending with the reader) and then raise
            ``BusUnavailable``, as when Redis drops the connection with the reply in
            flight.
        duplicate: probability that a delivered entry reaches the reader twice.
        delay_ms: added latency of every delivery (a read that returns entries).
        match: apply the delivery faults only to streams whose key satisfies this.
        seed: seed of the random choices, for reproducible runs.
        failed: counts the writes failed so far.
        dropped: counts the deliveries dropped so far.
        duplicated: counts the deliveries duplicated so far.
    """

    fail_writes: int = 0
    fail_write_if: Callable[[Sequence[Append]], bool] | None = None
    drop: float = 0.0
    lose_replies: int = 0
    duplicate: float = 0.0
    delay_ms: int = 0
    match: Callable[[str], bool] | None = None
    seed: int = 0
    failed: int = 0
    dropped: int = 0
    duplicated: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def check_write(self, appends: Sequence[Append]) -> None:
        """Raise ``BusUnavailable`` if this write is to fail."""
        fail = self.fail_writes > 0
        if fail:
            self.fail_writes -= 1
        elif self.fail_write_if is not None:
            fail = self.fail_write_if(appends)
        if fail:
            self.failed += 1
            raise BusUnavailable("injected write failure")

    async def deliver(self, stream: str, messages: list[Message]) -> list[Message]:
        """The messages as the reader receives them."""
        if not messages or (self.match is not None and not self.match(stream)):
            return messages
        if self.drop or self.duplicate:
            out = []
            rng = self._rng
            for message in messages:
                if self.drop and rng.random() < self.drop:
                    self.dropped += 1
                    continue
                out.append(message)
                if self.duplicate and rng.random() < self.duplicate:
                    self.duplicated += 1
                    out.append(message)
            messages = out
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        return messages


class _Nack:
    """A pending entry: who has it, since when, how often it was delivered."""

    __slots__ = ("consumer", "count", "delivered_ms")

    def __init__(self, consumer: str, delivered_ms: int) -> None:
        self.consumer = consumer
        self.delivered_ms = delivered_ms
        self.count = 1


class _Group:
    __slots__ = ("consumers", "last", "pending")

    def __init__(self, last: _Id) -> None:
        self.last = last
        self.pending: dict[_Id, _Nack] = {}
        self.consumers: dict[str, int] = {}  # name -> when it last read (ms)


class _Stream:
    __slots__ = ("data", "expires_ms", "groups", "ids", "last")

    def __init__(self) -> None:
        self.ids: list[_Id] = []  # sorted, as appended
        self.data: dict[_Id, tuple[StreamId, bytes, Mapping[str, str]]] = {}
        self.groups: dict[str, _Group] = {}
        self.last: _Id = (0, 0)  # newest id ever appended, trimmed or not
        self.expires_ms: int | None = None


class _Store:
    """What the connections of one in-process "server" share."""

    __slots__ = ("clock", "decoded", "last", "leases", "streams", "waiters")

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.decoded = Decoded()  # what its connections appended, decoded (``Decoded``)
        self.leases: dict[str, tuple[str, int]] = {}  # key -> (token, expires at ms)
        self.streams: dict[str, _Stream] = {}
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.last: _Id = (0, 0)  # ids are unique across streams, monotonic per stream


class MemoryBus(Bus):
    """The bus inside one process (see the module docstring).

    Args:
        faults: faults to inject on this connection (default: none); ``bus.faults``.
        clock_ms: the clock of ids and idle times, in Unix ms (default: wall clock);
            a test can pass a settable one to age pending entries without sleeping.
        **options: ``Bus`` options (``prefix``, ``shard``, ``instance``...).
    """

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        _store: _Store | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.faults = faults or Faults()
        store = _store or _Store(clock_ms)
        self._store = store
        self.decoded = store.decoded
        self._clock = store.clock
        self._streams = store.streams
        self._waiters = store.waiters

    def connect(self, *, faults: Faults | None = None, **options: Any) -> MemoryBus:
        """Another connection to the same streams, as a second process would open.

        It has its own instance name, reply listener, consumer state and faults, and
        sees every stream of this bus: use it for the engine beside a server, or for a
        consumer restarted after a crash.
        """
        options.setdefault("prefix", self.keys.prefix)
        options.setdefault("shard", self.shard)
        return MemoryBus(faults=faults, _store=self._store, **options)

    # --- storage ------------------------------------------------------------------------

    def _get(self, key: str) -> _Stream | None:
        stream = self._streams.get(key)
        expires_ms = stream.expires_ms if stream is not None else None
        if expires_ms is not None and self._clock() >= expires_ms:
            del self._streams[key]
            return None
        return stream

    def _group(self, key: str, group: str) -> tuple[_Stream, _Group]:
        stream = self._get(key)
        found = stream.groups.get(group) if stream is not None else None
        if found is None or stream is None:
            raise UnknownGroup(f"no consumer group {group!r} on {key}")
        return stream, found

    def _new_id(self) -> _Id:
        store = self._store
        ms, seq = store.last
        now = store.clock()
        store.last = (now, 0) if now > ms else (ms, seq + 1)
        return store.last

    def _position(self, stream: _Stream, start_id: StreamId) -> _Id:
        return stream.last if start_id == "$" else parse_id(start_id)

    async def _wait(self, key: str, deadline: float | None) -> bool:
        """Wait until something is appended to ``key``; False once ``deadline`` passed."""
        loop = asyncio.get_running_loop()
        timeout = None if deadline is None else deadline - loop.time()
        if timeout is not None and timeout <= 0:
            return False
        future = loop.create_future()
        waiters = self._waiters.setdefault(key, [])
        waiters.append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        finally:
            if future in waiters:
                waiters.remove(future)
        return True

    def _hold(self, key: str, token: str, ttl_ms: int) -> str | None:
        now = self._clock()
        held = self._store.leases.get(key)
        if held is not None and held[0] != token and held[1] > now:
            return held[0]
        self._store.leases[key] = (token, now + ttl_ms)
        return None

    async def hold_lease(self, key: str, token: str, ttl_ms: int) -> str | None:
        return self._hold(key, token, ttl_ms)

    async def release_lease(self, key: str, token: str) -> bool:
        held = self._store.leases.get(key)
        if held is None or held[0] != token or held[1] <= self._clock():
            return False
        del self._store.leases[key]
        return True

    async def lease_holder(self, key: str) -> str | None:
        held = self._store.leases.get(key)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]

    def _deadline(self, block_ms: int | None) -> float | None:
        if not block_ms:
            return None
        return asyncio.get_running_loop().time() + block_ms / 1000

    # --- primitives -----------------------------------------------------------------------

    async def write(
        self,
        appends: Sequence[Append] = (),
        acks: Sequence[Ack] = (),
        deletes: Sequence[Delete] = (),
        fence: Fence | None = None,
    ) -> list[list[StreamId]]:
        self.faults.check_write(appends)
        if fence is not None:
            holder = self._hold(*fence)
            if holder is not None:
                raise LeaseLost(f"lease {fence.key} is held by {holder}")
        for append in appends:  # validate first: a write changes all or nothing
            for entry in append.entries:
                if not isinstance(entry, bytes) and "p" in entry[1]:
                    raise ValueError("header name 'p' is reserved for the payload")
        written: list[list[StreamId]] = []
        for stream_key, entries, ttl_ms in appends:
            stream = self._get(stream_key)
            if stream is None:
                stream = self._streams[stream_key] = _Stream()
            ids = []
            for entry in entries:
                if isinstance(entry, bytes):
                    payload, headers = entry, NO_HEADERS
                else:
                    payload, raw = entry
                    headers = MappingProxyType(dict(raw)) if raw else NO_HEADERS
                entry_id = self._new_id()
                sid = _fmt(entry_id)
                stream.ids.append(entry_id)
                stream.data[entry_id] = (sid, payload, headers)
                ids.append(sid)
            if entries:
                stream.last = stream.ids[-1]
            if ttl_ms is not None:
                stream.expires_ms = self._clock() + ttl_ms
            written.append(ids)
            for future in self._waiters.pop(stream_key, ()):
                if not future.done():
                    future.set_result(None)
        for stream_key, group_name, ack_ids in acks:
            stream = self._get(stream_key)
            group = stream.groups.get(group_name) if stream is not None else None
            if group is not None:
                for sid in ack_ids:
                    group.pending.pop(parse_id(sid), None)
        for stream_key, delete_ids in deletes:
            stream = self._get(stream_key)
            if stream is not None:
                for sid in delete_ids:
                    entry_id = parse_id(sid)
                    if stream.data.pop(entry_id, None) is not None:
                        stream.ids.pop(bisect_left(stream.ids, entry_id))
        return written

    async def read(
        self,
        stream: str,
        after_id: StreamId = "0-0",
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Message]:
        after = parse_id(after_id)
        deadline = self._deadline(block_ms)
        while True:
            found = self._get(stream)
            if found is not None:
                start = bisect_right(found.ids, after)
                data = found.data
                messages = [
                    Message(stream, sid, payload, 1, headers)
                    for sid, payload, headers in (
                        data[i] for i in found.ids[start : start + count]
                    )
                ]
                if messages:
                    return await self.faults.deliver(stream, messages)
            if block_ms is None or not await self._wait(stream, deadline):
                return []

    async def ensure_group(self, stream: str, group: str, start_id: StreamId = "0") -> bool:
        found = self._get(stream)
        if found is None:
            found = self._streams[stream] = _Stream()
        if group in found.groups:
            return False
        found.groups[group] = _Group(self._position(found, start_id))
        return True

    async def set_group_position(self, stream: str, group: str, last_id: StreamId) -> None:
        found, state = self._group(stream, group)
        state.last = self._position(found, last_id)

    async def delete_group(self, stream: str, group: str) -> bool:
        found = self._get(stream)
        return found is not None and found.groups.pop(group, None) is not None

    async def groups(self, stream: str) -> list[GroupInfo]:
        found = self._get(stream)
        if found is None:
            return []
        infos = []
        for name, group in found.groups.items():
            oldest = min(group.pending) if group.pending else None
            infos.append(
                GroupInfo(
                    name=name,
                    consumers=len(group.consumers),
                    pending=len(group.pending),
                    last_delivered_id=_fmt(group.last),
                    oldest_pending_id=None if oldest is None else _fmt(oldest),
                    lag=len(found.ids) - bisect_right(found.ids, group.last),
                )
            )
        return infos

    async def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        _, state = self._group(stream, group)
        now = self._clock()
        held: dict[str, int] = {}
        for nack in state.pending.values():
            held[nack.consumer] = held.get(nack.consumer, 0) + 1
        return [ConsumerInfo(name, held.get(name, 0), max(0, now - seen))
                for name, seen in state.consumers.items()]

    async def pending(
        self, stream: str, group: str, *, consumer: str | None = None, count: int = 100
    ) -> list[PendingEntry]:
        _, state = self._group(stream, group)
        now = self._clock()
        out = []
        for entry_id in sorted(state.pending):
            nack = state.pending[entry_id]
            if consumer is None or nack.consumer == consumer:
                idle = max(0, now - nack.delivered_ms)
                out.append(PendingEntry(_fmt(entry_id), nack.consumer, idle, nack.count))
                if len(out) >= count:
                    break
        return out

    async def last_id(self, stream: str) -> StreamId:
        found = self._get(stream)
        return _fmt(found.ids[-1]) if found is not None and found.ids else "0-0"

    async def length(self, stream: str) -> int:
        found = self._get(stream)
        return 0 if found is None else len(found.ids)

    async def delete_streams(self, *streams: str) -> int:
        return sum(
            self._get(key) is not None and self._streams.pop(key) is not None for key in streams
        )

    async def _read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        after: StreamId | None,
    ) -> list[Message]:
        deadline = self._deadline(block_ms)
        while True:
            found, state = self._group(stream, group)
            now = self._clock()
            state.consumers[consumer] = now
            if after is not None:
                return await self.faults.deliver(
                    stream, self._history(stream, found, state, consumer, after, count, now)
                )
            start = bisect_right(found.ids, state.last)
            ids = found.ids[start : start + count]
            if ids:
                state.last = ids[-1]
                messages = []
                for entry_id in ids:
                    state.pending[entry_id] = _Nack(consumer, now)
                    sid, payload, headers = found.data[entry_id]
                    messages.append(Message(stream, sid, payload, 1, headers))
                if self.faults.lose_replies > 0:
                    self.faults.lose_replies -= 1
                    raise BusUnavailable("injected loss of a read's reply")
                return await self.faults.deliver(stream, messages)
            if block_ms is None or not await self._wait(stream, deadline):
                return []

    def _history(
        self,
        key: str,
        stream: _Stream,
        group: _Group,
        consumer: str,
        after: StreamId,
        count: int,
        now: int,
    ) -> list[Message]:
        floor = parse_id(after)
        mine = sorted(
            i for i, nack in group.pending.items() if nack.consumer == consumer and i > floor
        )
        messages = []
        for entry_id in mine:
            entry = stream.data.get(entry_id)
            if entry is None:  # deleted while pending: nothing left to process
                del group.pending[entry_id]
                continue
            nack = group.pending[entry_id]
            nack.count += 1
            nack.delivered_ms = now
            sid, payload, headers = entry
            messages.append(Message(key, sid, payload, nack.count, headers))
            if len(messages) >= count:
                break
        return messages

    async def _claim(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Message]:
        found, state = self._group(stream, group)
        now = self._clock()
        state.consumers[consumer] = now
        messages = []
        for entry_id in sorted(state.pending):
            nack = state.pending[entry_id]
            if now - nack.delivered_ms < min_idle_ms:
                continue
            entry = found.data.get(entry_id)
            if entry is None:
                del state.pending[entry_id]
                continue
            nack.consumer = consumer
            nack.delivered_ms = now
            nack.count += 1
            sid, payload, headers = entry
            messages.append(Message(stream, sid, payload, nack.count, headers))
            if len(messages) >= count:
                break
        return await self.faults.deliver(stream, messages)

    async def _trim_below(self, stream: str, min_id: StreamId, approximate: bool) -> int:
        found = self._get(stream)
        if found is None:
            return 0
        cut = bisect_left(found.ids, parse_id(min_id))
        for entry_id in found.ids[:cut]:
            del found.data[entry_id]
        del found.ids[:cut]
        return cut

    async def _close(self) -> None:
        """Nothing to release: the streams live as long as the object."""
