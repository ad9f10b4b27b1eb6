"""The public surface of pmarket.bus is pinned: changing it is a visible decision."""

from __future__ import annotations

import pmarket.bus
from pmarket.bus import MemoryBus, make_bus


def test_all_is_pinned():
    assert sorted(pmarket.bus.__all__) == sorted([
        "ENGINE_GROUP", "SERVER_GROUP_PREFIX", "Ack", "Append", "Bus", "BusError",
        "BusUnavailable", "CodecError", "ConsumerInfo", "DeadLetter", "Delete", "Faults",
        "Fence", "GroupInfo", "LeaseLost", "MemoryBus",
        "Message", "Outgoing",
        "PendingEntry", "Reply", "RequestTimeout", "StreamId", "StreamKeys", "UnknownGroup",
        "decode_command", "decode_events", "encode_command", "encode_events", "make_bus",
        "next_id", "parse_id",
    ])
    for name in pmarket.bus.__all__:
        assert hasattr(pmarket.bus, name), name


async def test_make_bus_without_url_is_in_process_and_takes_options():
    bus = make_bus(None, prefix="x", shard="s7", instance="srv-1")

    assert isinstance(bus, MemoryBus)
    assert bus.commands_stream() == "x:{s7}:commands"
    assert bus.events_stream("s8") == "x:{s8}:events"
    assert bus.keys.replies(bus.instance) == "x:replies:{srv-1}"
    assert bus.keys.dead_letters(bus.events_stream(), "worker") == "x:dlq:{s7}:events:worker"


async def test_make_bus_with_url_is_redis(redis_url: str):
    from pmarket.bus.redis_streams import RedisStreamsBus

    bus = make_bus(redis_url, prefix="pmtest-make")
    try:
        assert isinstance(bus, RedisStreamsBus)
        assert await bus.length(bus.events_stream()) == 0
    finally:
        await bus.close()
