"""The bus between pmarket's services: commands in, replies back, events out.

``make_bus(None)`` is the in-process bus of the embedded exchange; ``make_bus(url)`` the
Redis Streams bus of a multi-process deployment. Both honour the contract of ``Bus``
(``base``): at-least-once delivery, consumer groups with acks, reclaim of stuck entries,
dead letters, and trimming that never drops an entry a group still needs.

The three roles, in short::

    bus = make_bus(settings.redis_url, shard="main")

    # server: a command and its reply
    reply = await bus.request(encode_command(cmd), timeout=5.0)

    # engine runner: read, apply, then publish and ack in one atomic write
    commands = await bus.read_commands("engine-1", count=500, block_ms=1_000)
    ...  # decode_command, apply, encode_events
    await bus.complete(commands, events=payloads, replies=[Reply.to(c, r) for ...])

    # worker (or a server's fan-out, group "server-<id>", start_id="$")
    batch = await bus.read_events("worker", "worker-1", block_ms=1_000)
    ...  # persist, idempotently, with the message ids
    await bus.ack_events("worker", [m.id for m in batch])

Housekeeping: ``reclaim`` what a dead consumer left pending, ``dead_letter`` what cannot
be processed, ``trim`` what every group is done with, ``delete_group`` a group whose
consumer is gone for good; servers ``keep_alive`` and ``reap_dead_groups`` of servers
that died without deleting theirs.
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
    SERVER_GROUP_PREFIX,
    Ack,
    Append,
    BusError,
    BusUnavailable,
    ConsumerInfo,
    DeadLetter,
    Delete,
    Fence,
    GroupInfo,
    LeaseLost,
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
    "SERVER_GROUP_PREFIX",
    "Ack",
    "Append",
    "Bus",
    "BusError",
    "BusUnavailable",
    "CodecError",
    "ConsumerInfo",
    "DeadLetter",
    "Delete",
    "Faults",
    "Fence",
    "GroupInfo",
    "LeaseLost",
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
