"""The bus between pmarket's services: commands in, replies back, events out.

``make_bus(None)`` is the in-process bus of the embedded exchange; ``make_bus(url)`` the
Redis Streams bus of a multi-process deployment. Both honour the contract of ``Bus``
(``base``): at-least-once delivery, consumer groups with acks, reclaim of stuck entries,
dead letters, and trimming that never drops an entry a group still needs.
"""

from __future__ import annotations

from typing import Any

from pmarket.bus.base import Bus
from pmarket.bus.codec import (
    CodecError,
    decode_command,
    decode_events,
    encode_command,
    encode_events,
)
from pmarket.bus.memory import Faults, MemoryBus
from pmarket.bus.values import (
    ENGINE_GROUP,
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
    next_id,
    parse_id,
)

__all__ = [
    "ENGINE_GROUP",
    "Ack",
    "Append",
    "Bus",
    "BusError",
    "BusUnavailable",
    "CodecError",
    "DeadLetter",
    "Delete",
    "Faults",
    "GroupInfo",
    "MemoryBus",
    "Message",
    "Outgoing",
    "PendingEntry",
    "Reply",
    "RequestTimeout",
    "StreamId",
    "StreamKeys",
    "UnknownGroup",
    "decode_command",
    "decode_events",
    "encode_command",
    "encode_events",
    "make_bus",
    "next_id",
    "parse_id",
]


def make_bus(redis_url: str | None, **options: Any) -> Bus:
    """The bus for a deployment: Redis Streams at ``redis_url``, or in-process if None.

    Args:
        redis_url: ``redis://host:port/db``, or None for the in-process ``MemoryBus``.
        **options: ``Bus`` options: ``prefix``, ``shard``, ``instance``, ``reply_ttl_ms``,
            ``reply_block_ms``; ``MemoryBus`` also takes ``faults`` and ``clock_ms``.
    """
    if redis_url is None:
        return MemoryBus(**options)
    # Imported here so the embedded exchange never loads the Redis client.
    from pmarket.bus.redis_streams import RedisStreamsBus

    return RedisStreamsBus.from_url(redis_url, **options)
