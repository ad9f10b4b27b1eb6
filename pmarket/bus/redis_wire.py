"""What the Redis Streams bus sends over the wire: its Lua scripts (the atomic write,
the claim, the engine lease), the write script's arguments, and its connection classes.

``redis_streams.RedisStreamsBus`` is the bus; this module is how it talks to Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as rexc

from pmarket.bus.values import Ack, Append, Delete, Fence

# One write is one script call: a Lua script runs atomically (nothing else interleaves
# and it is one command on the wire), and packing one command of 2N arguments costs the
# client a fraction of N pipelined XADDs inside MULTI/EXEC. ARGV layout, in order:
#   fence:   0, or 1 then key index, token, ttl ms (see values.Fence)
#   appends: count, then per append: key index, ttl ms (0: none), entry count, then per
#            entry: header count h, payload, h header name/value pairs
#   acks:    count, then per ack: key index, group, id count, ids
#   deletes: count, then per delete: key index, id count, ids
# Returns the new ids of each append.
WRITE_SCRIPT = """
local argv, at = ARGV, 1
local function take()
  local value = argv[at]
  at = at + 1
  return value
end
local function each_chunk(command, key, extra, n)
  -- unpack() is limited by the Lua stack: pass ids in chunks
  local last = at + n - 1
  while at <= last do
    local upto = math.min(at + 999, last)
    if extra then
      redis.call(command, key, extra, unpack(argv, at, upto))
    else
      redis.call(command, key, unpack(argv, at, upto))
    end
    at = upto + 1
  end
end
if tonumber(take()) == 1 then
  local key, token, ttl = KEYS[tonumber(take())], take(), take()
  local holder = redis.call('GET', key)
  if holder and holder ~= token then
    return redis.error_reply('FENCED lease ' .. key .. ' is held by ' .. holder)
  end
  redis.call('SET', key, token, 'PX', ttl)
end
local written = {}
for a = 1, tonumber(take()) do
  local key = KEYS[tonumber(take())]
  local ttl = tonumber(take())
  local ids = {}
  for e = 1, tonumber(take()) do
    local headers = tonumber(take())
    local payload = take()
    if headers == 0 then
      ids[e] = redis.call('XADD', key, '*', 'p', payload)
    else
      ids[e] = redis.call('XADD', key, '*', 'p', payload, unpack(argv, at, at + 2 * headers - 1))
      at = at + 2 * headers
    end
  end
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
  written[a] = ids
end
for _ = 1, tonumber(take()) do
  local key = KEYS[tonumber(take())]
  local group = take()
  each_chunk('XACK', key, group, tonumber(take()))
end
for _ = 1, tonumber(take()) do
  local key = KEYS[tonumber(take())]
  each_chunk('XDEL', key, nil, tonumber(take()))
end
return written
"""

# A lease: take it if free or already the token's (extending it), else name its holder.
HOLD_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

RELEASE_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# XAUTOCLAIM returns no delivery counts; reading each claimed id's XPENDING entry in the
# same script makes the claim and its counts one atomic round trip.
CLAIM_SCRIPT = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                           'COUNT', ARGV[5])
local counts = {}
local entries = {}
for _, entry in ipairs(claimed[2]) do
  if type(entry) == 'table' then
    local info = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    entries[#entries + 1] = entry
    counts[#counts + 1] = info[1][4]
  end
end
return {claimed[1], entries, counts}
"""


def write_args(
    appends: Sequence[Append], acks: Sequence[Ack], deletes: Sequence[Delete],
    fence: Fence | None = None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the write script (see ``WRITE_SCRIPT``)."""
    keys: list[str] = []
    index: dict[str, int] = {}

    def key_index(stream: str) -> int:
        at = index.get(stream)
        if at is None:
            keys.append(stream)
            at = index[stream] = len(keys)  # Lua arrays start at 1
        return at

    args: list[Any] = [0] if fence is None else [1, key_index(fence.key), fence.token,
                                                 fence.ttl_ms]
    args.append(len(appends))
    for stream, entries, ttl_ms in appends:
        args += (key_index(stream), ttl_ms or 0, len(entries))
        for entry in entries:
            if isinstance(entry, bytes):
                args += (0, entry)
                continue
            payload, headers = entry
            if "p" in headers:
                raise ValueError("header name 'p' is reserved for the payload")
            args += (len(headers), payload)
            for name, value in headers.items():
                args += (name, value)
    acks = [a for a in acks if a.ids]
    args.append(len(acks))
    for stream, group, ids in acks:
        args += (key_index(stream), group, len(ids))
        args += ids
    deletes = [d for d in deletes if d.ids]
    args.append(len(deletes))
    for stream, ids in deletes:
        args += (key_index(stream), len(ids))
        args += ids
    return keys, args


class BusConnection:
    """What the bus changes in redis-py's asyncio connections (TCP, TLS, unix socket):
    commands packed in C with hiredis, and writes that never drop a cancellation.

    redis-py's sync client packs with hiredis, its asyncio one in Python, which measured
    ~5x slower on a 2,000-argument batch write and was the largest cost of a batch.
    """

    is_connected: bool
    socket_timeout: float | None
    _writer: Any
    connect_check_health: Any
    check_health: Any
    disconnect: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str):
            head = head.encode()
        if b" " in head:  # "XGROUP CREATE" and the like go out as separate words
            args = (*head.split(), *args[1:])
        return [hiredis.pack_command(args)]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """redis-py's send, without ``asyncio.wait_for`` around the write.

        redis-py wraps every write in ``wait_for(..., socket_timeout)`` (5 s by default).
        On Python 3.11 that runs each write as a task of its own and, when a
        cancellation arrives just as the write completes, drops the cancellation
        (CPython gh-86296): a cancelled blocking read then went on reading, and a
        service waiting for it to stop hung. A write to an asyncio transport only waits
        when the socket's buffer is full, so ``asyncio.timeout`` bounds that wait
        instead: same timeout, no task, cancellation delivered.
        """
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            self._writer.writelines(command)
            async with asyncio.timeout(self.socket_timeout or None):
                await self._writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise rexc.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise rexc.ConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # a write cut short: never reuse
            raise


class HiredisPackingConnection(BusConnection, aioredis.Connection):
    """The bus's TCP connection (``redis://``)."""


CONNECTION_CLASSES: dict[type, type] = {
    aioredis.Connection: HiredisPackingConnection,
    aioredis.SSLConnection: type("_BusSSLConnection", (BusConnection, aioredis.SSLConnection),
                                 {"__doc__": "The bus's TLS connection (``rediss://``)."}),
    aioredis.UnixDomainSocketConnection: type(
        "_BusUnixConnection", (BusConnection, aioredis.UnixDomainSocketConnection),
        {"__doc__": "The bus's unix socket connection (``unix://``)."}),
}
