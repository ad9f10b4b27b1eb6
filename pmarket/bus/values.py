"""The values that cross the bus interface: messages, writes, group state, dead letters.

Plain immutable data with no I/O, shared by the interface (``base``) and both
implementations. Stream ids are Redis's ``"<ms>-<seq>"`` strings everywhere; compare them
with ``parse_id``, never as strings ("10-0" sorts before "9-0" as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

StreamId = str
"""A stream entry id, ``"<ms>-<seq>"`` as Redis writes it; ordered by ``parse_id``."""

NO_HEADERS: Mapping[str, str] = MappingProxyType({})

REPLY_TO = "reply_to"
CORRELATION_ID = "correlation_id"
ENGINE_GROUP = "engine"
"""The consumer group of the engine on its shard's command stream."""
SERVER_GROUP_PREFIX = "server-"
"""Event stream groups named ``server-<instance>`` belong to one server process each; a
dead one's group is reaped (``Bus.reap_dead_groups``) once its liveness mark expired."""

_DLQ = "dlq."  # header prefix of the dead-letter metadata
_DLQ_STREAM, _DLQ_GROUP, _DLQ_ID = _DLQ + "stream", _DLQ + "group", _DLQ + "id"
_DLQ_ERROR, _DLQ_DELIVERIES = _DLQ + "error", _DLQ + "deliveries"


class BusError(Exception):
    """A bus operation failed."""


class BusUnavailable(BusError):
    """The transport is unreachable or failed mid-operation; retrying may succeed."""


class UnknownGroup(BusError):
    """A group operation named a consumer group that does not exist on the stream."""


class RequestTimeout(BusError, TimeoutError):
    """No reply arrived in time. The command may still be applied later."""


class LeaseLost(Exception):
    """A fenced write found its lease held by another token: nothing was written.

    Not a ``BusError``: retrying cannot help. The writer (an engine whose shard another
    engine took over) must stop, since its state has left the log behind.
    """


def parse_id(stream_id: StreamId) -> tuple[int, int]:
    """Split ``"<ms>-<seq>"`` into integers, the order in which streams sort entries."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(stream_id: StreamId) -> StreamId:
    """The smallest id strictly greater than ``stream_id``."""
    ms, seq = parse_id(stream_id)
    return f"{ms}-{seq + 1}"


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of a stream as delivered to a reader.

    Attributes:
        stream: key of the stream it was read from.
        id: its stream id.
        payload: the opaque bytes appended.
        deliveries: how many times it has been handed to a consumer of the reading group
            (1 on first delivery; 1 for reads without a group).
        headers: small string metadata appended with it (``reply_to``, ``correlation_id``).
    """

    stream: str
    id: StreamId
    payload: bytes
    deliveries: int = 1
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)

    @property
    def reply_to(self) -> str:
        """Instance name whose reply stream should receive the reply ("" for none)."""
        return self.headers.get(REPLY_TO, "")

    @property
    def correlation_id(self) -> str:
        """Identifier the requester matches the reply with ("" for none)."""
        return self.headers.get(CORRELATION_ID, "")


Outgoing = bytes | tuple[bytes, Mapping[str, str]]
"""What is appended: a payload, or a payload with headers (the name ``p`` is reserved)."""


class Append(NamedTuple):
    """Append ``entries`` to ``stream``; with ``ttl_ms`` the stream expires when idle."""

    stream: str
    entries: Sequence[Outgoing]
    ttl_ms: int | None = None


class Ack(NamedTuple):
    """Acknowledge ``ids`` for consumer group ``group`` of ``stream``."""

    stream: str
    group: str
    ids: Sequence[StreamId]


class Delete(NamedTuple):
    """Delete entries ``ids`` from ``stream``."""

    stream: str
    ids: Sequence[StreamId]


class Fence(NamedTuple):
    """Write only while ``token`` holds the lease ``key``, and extend it by ``ttl_ms``.

    A fenced write takes a free lease, extends its own, and fails with ``LeaseLost``
    (writing nothing) when another token holds it: the check and the write are atomic.
    """

    key: str
    token: str
    ttl_ms: int


class Reply(NamedTuple):
    """A reply to a command: ``payload`` for the requester ``reply_to``."""

    reply_to: str
    correlation_id: str
    payload: bytes

    @classmethod
    def to(cls, command: Message, payload: bytes) -> Reply:
        """The reply to ``command``, addressed from its headers."""
        return cls(command.reply_to, command.correlation_id, payload)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """State of one consumer group.

    Attributes:
        name: the group name.
        consumers: number of consumers known to the group.
        pending: entries delivered to it and not yet acked.
        last_delivered_id: id of the newest entry delivered to the group.
        oldest_pending_id: smallest pending id, None when nothing is pending.
        lag: entries not yet delivered to the group (None when the server cannot tell).
    """

    name: str
    consumers: int
    pending: int
    last_delivered_id: StreamId
    oldest_pending_id: StreamId | None
    lag: int | None

    @property
    def floor_id(self) -> StreamId:
        """Smallest id this group still needs: nothing below it may be trimmed."""
        undelivered = next_id(self.last_delivered_id)
        if self.oldest_pending_id is None:
            return undelivered
        return min(self.oldest_pending_id, undelivered, key=parse_id)


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """One consumer of a group (Redis ``XINFO CONSUMERS``).

    Attributes:
        name: the consumer name.
        pending: entries delivered to it and not yet acked.
        idle_ms: time since it last read from the group. Redis 7.0 counts from its last
            read that returned entries (a blocking read that times out empty does not
            count); Redis 7.2 and the memory bus from its last read of any kind. Only
            "idle at least this long" is therefore meaningful, never "it is alive".
    """

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A delivered, un-acked entry: who holds it, for how long, how often delivered."""

    id: StreamId
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a consumer group gave up on, with the error that made it give up.

    Attributes:
        id: id of the entry in the dead-letter stream (what retry and delete take).
        stream: the stream the message came from.
        group: the consumer group that dead-lettered it.
        message_id: its id in ``stream``.
        payload: its payload.
        headers: its original headers.
        error: why it was dead-lettered.
        deliveries: how many times it had been delivered to the group.
        failed_ms: when it was dead-lettered (Unix ms, from the dead-letter entry id).
    """

    id: StreamId
    stream: str
    group: str
    message_id: StreamId
    payload: bytes
    headers: Mapping[str, str]
    error: str
    deliveries: int
    failed_ms: int


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """Derives every stream key from one prefix.

    The shard (or instance) is wrapped in ``{}``, a Redis Cluster hash tag: a shard's
    commands, events and their dead letters hash to one slot, so the engine's ack of a
    batch and its events can stay one atomic write when shards are spread over Redis
    nodes. (Replies hash by instance; a clustered deployment writes them separately.)
    """

    prefix: str = "pmarket"

    def commands(self, shard: str) -> str:
        """Command stream of ``shard``."""
        return f"{self.prefix}:{{{shard}}}:commands"

    def events(self, shard: str) -> str:
        """Event stream of ``shard``."""
        return f"{self.prefix}:{{{shard}}}:events"

    def lease(self, shard: str) -> str:
        """The engine lease of ``shard``: who may write its log (see ``Fence``)."""
        return f"{self.prefix}:{{{shard}}}:engine-lease"

    def replies(self, instance: str) -> str:
        """Reply stream of the server instance ``instance``."""
        return f"{self.prefix}:replies:{{{instance}}}"

    def alive(self, instance: str) -> str:
        """Liveness mark of the server instance ``instance`` (a key with a time to live,
        renewed while the process runs; see ``Bus.keep_alive``)."""
        return f"{self.prefix}:alive:{{{instance}}}"

    def dead_letters(self, stream: str, group: str) -> str:
        """Dead-letter stream of ``group`` on ``stream`` (a prefixed key of this bus)."""
        head = self.prefix + ":"
        if not stream.startswith(head):
            raise ValueError(f"stream {stream!r} does not start with prefix {head!r}")
        return f"{self.prefix}:dlq:{stream[len(head):]}:{group}"


def previous_id(stream_id: StreamId) -> StreamId:
    """The largest id strictly smaller than ``stream_id`` (``"0-0"`` for the smallest)."""
    ms, seq = parse_id(stream_id)
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{2**64 - 1}" if ms else "0-0"


def dead_letter_entry(message: Message, group: str, error: str) -> tuple[bytes, dict[str, str]]:
    """The dead-letter stream entry recording that ``group`` gave up on ``message``."""
    headers = dict(message.headers)
    headers.update({
        _DLQ_STREAM: message.stream,
        _DLQ_GROUP: group,
        _DLQ_ID: message.id,
        _DLQ_ERROR: error,
        _DLQ_DELIVERIES: str(message.deliveries),
    })
    return message.payload, headers


def read_dead_letter(message: Message) -> DeadLetter:
    """The ``DeadLetter`` a dead-letter stream entry records."""
    headers = message.headers
    original = {k: v for k, v in headers.items() if not k.startswith(_DLQ)}
    return DeadLetter(
        id=message.id,
        stream=headers[_DLQ_STREAM],
        group=headers[_DLQ_GROUP],
        message_id=headers[_DLQ_ID],
        payload=message.payload,
        headers=MappingProxyType(original) if original else NO_HEADERS,
        error=headers[_DLQ_ERROR],
        deliveries=int(headers[_DLQ_DELIVERIES]),
        failed_ms=parse_id(message.id)[0],
    )


class Decoded:
    """Decoded forms of payloads appended in this process, for readers in the same
    process: an in-process bus hands readers the very bytes object that was appended,
    so what the engine service just encoded (a delivery, a reply) need not be decoded
    again by the replica or the gateway beside it (``MemoryBus.decoded``; a bus across
    processes has none).

    Entries are keyed by the payload's identity, which the entry's own reference to the
    payload keeps unique; a reader takes an entry once, and only the newest ``size``
    are kept (a payload nobody in this process reads, or read after that many more,
    is decoded as usual).

    Invariant: ``take(p)`` is what was kept for that very object ``p``, which is what
    decoding ``p`` gives; otherwise None.
    """

    __slots__ = ("_kept", "size", "taken")

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.taken = 0  # entries taken instead of decoded (tests, diagnostics)
        self._kept: dict[int, tuple[bytes, object]] = {}

    def keep(self, payload: bytes, decoded: object) -> None:
        """Remember that ``payload`` decodes to ``decoded``."""
        kept = self._kept
        if len(kept) >= self.size:
            del kept[next(iter(kept))]
        kept[id(payload)] = (payload, decoded)

    def take(self, payload: bytes) -> object | None:
        """What was kept for this very ``payload`` object (once), or None."""
        entry = self._kept.pop(id(payload), None)
        if entry is None:
            return None
        if entry[0] is not payload:  # another object at a reused address: not ours
            return None
        self.taken += 1
        return entry[1]

