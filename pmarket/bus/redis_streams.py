"""Redis Streams bus: the bus primitives as XADD, XREADGROUP, XACK, XAUTOCLAIM, XTRIM.

An entry is a Redis stream entry whose field ``p`` holds the payload and whose other
fields are the headers. ``write`` runs as one Lua script, so a batch of appends, acks and
deletes is one command, one round trip, and applied atomically. Claims run as a small
Lua script (XAUTOCLAIM, then XPENDING of each claimed id) so the delivery counts come back
with the entries in the same round trip.

Invariant: every Redis failure leaves this module as a ``BusError``: ``BusUnavailable``
for connection loss and timeouts (the caller may retry; at-least-once makes that safe),
``UnknownGroup`` for a missing consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as rexc

from pmarket.bus.base import Bus
from pmarket.bus.values import (
    NO_HEADERS,
    Ack,
    Append,
    BusError,
    BusUnavailable,
    Delete,
    Fence,
    GroupInfo,
    LeaseLost,
    Message,
    PendingEntry,
    StreamId,
    UnknownGroup,
)

_PAYLOAD = b"p"

# One write is one script call: a Lua script runs atomically (nothing else interleaves
# and it is one command on the wire), and packing one command of 2N arguments costs the
# client a fraction of N pipelined XADDs inside MULTI/EXEC. ARGV layout, in order:
#   fence:   0, or 1 then key index, token, ttl ms (see values.Fence)
#   appends: count, then per append: key index, ttl ms (0: none), entry count, then per
#            entry: header count h, payload, h header name/value pairs
#   acks:    count, then per ack: key index, group, id count, ids
#   deletes: count, then per delete: key index, id count, ids
# Returns the new ids of each append.
_WRITE_SCRIPT = """
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
_HOLD_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_RELEASE_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# XAUTOCLAIM returns no delivery counts; reading each claimed id's XPENDING entry in the
# same script makes the claim and its counts one atomic round trip.
_CLAIM_SCRIPT = """
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


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Re-raise redis-py errors as bus errors."""
    try:
        yield
    except rexc.ResponseError as exc:
        text = str(exc)
        if text.startswith("FENCED "):
            raise LeaseLost(text.removeprefix("FENCED ")) from None
        if text.startswith("NOGROUP") or "requires the key to exist" in text:
            raise UnknownGroup(text) from exc
        raise BusError(text) from exc
    except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
        if "No connection available" in str(exc):
            raise BusUnavailable(
                "redis connection pool exhausted: every connection stayed busy for the "
                "pool's timeout (raise max_connections, or send less concurrently)"
            ) from exc
        raise BusUnavailable(f"redis unavailable: {exc}") from exc
    except rexc.RedisError as exc:
        raise BusError(str(exc)) from exc


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw_message(stream: str, entry_id: bytes, flat: list[bytes] | None, n: int) -> Message:
    """A Message from a raw (RESP2) stream entry: its id and flat field/value list."""
    if flat is not None and len(flat) == 2 and flat[0] == _PAYLOAD:
        return Message(stream, entry_id.decode(), flat[1], n, NO_HEADERS)
    fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
    return _message(stream, entry_id, fields, n)


def _raw_messages(stream: str, reply: Any) -> list[Message]:
    """The entries of a raw XREAD/XREADGROUP reply on one stream (RESP2 or RESP3)."""
    if not reply:
        return []
    # RESP3 answers a map {stream: entries}, RESP2 an array [[stream, entries]].
    entries = next(iter(reply.values())) if type(reply) is dict else reply[0][1]
    out: list[Message] = []
    append = out.append
    for entry_id, flat in entries:
        if flat is not None and len(flat) == 6 and flat[0] == _PAYLOAD:
            # The common shape: a payload and two headers (a command or a reply).
            headers = MappingProxyType({
                flat[2].decode(errors="replace"): flat[3].decode(errors="replace"),
                flat[4].decode(errors="replace"): flat[5].decode(errors="replace"),
            })
            append(Message(stream, entry_id.decode(), flat[1], 1, headers))
        else:
            append(_raw_message(stream, entry_id, flat, 1))
    return out


def _message(stream: str, entry_id: bytes, fields: Mapping[bytes, bytes], n: int) -> Message:
    # An entry written by something else than this bus (no payload field, bytes that are
    # not UTF-8) still becomes a Message, which its consumer can then dead-letter.
    payload = fields.get(_PAYLOAD, b"")
    if len(fields) == 1 and payload:
        headers: Mapping[str, str] = NO_HEADERS
    else:
        headers = MappingProxyType({
            k.decode(errors="replace"): v.decode(errors="replace")
            for k, v in fields.items()
            if k != _PAYLOAD
        })
    return Message(stream, entry_id.decode(), payload, n, headers)


def _write_args(
    appends: Sequence[Append], acks: Sequence[Ack], deletes: Sequence[Delete],
    fence: Fence | None = None,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the write script (see ``_WRITE_SCRIPT``)."""
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


class _BusConnection:
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


class _HiredisPackingConnection(_BusConnection, aioredis.Connection):
    """The bus's TCP connection (``redis://``)."""


_CONNECTION_CLASSES: dict[type, type] = {
    aioredis.Connection: _HiredisPackingConnection,
    aioredis.SSLConnection: type("_BusSSLConnection", (_BusConnection, aioredis.SSLConnection),
                                 {"__doc__": "The bus's TLS connection (``rediss://``)."}),
    aioredis.UnixDomainSocketConnection: type(
        "_BusUnixConnection", (_BusConnection, aioredis.UnixDomainSocketConnection),
        {"__doc__": "The bus's unix socket connection (``unix://``)."}),
}


class RedisStreamsBus(Bus):
    """The bus on a Redis server (6.2 or newer: XAUTOCLAIM, XTRIM MINID).

    Args:
        client: a ``redis.asyncio.Redis`` made with ``decode_responses=False``.
        owns_client: close the client in ``close()``.
        **options: ``Bus`` options (``prefix``, ``shard``, ``instance``...).
    """

    def __init__(
        self, client: aioredis.Redis, *, owns_client: bool = False, **options: Any
    ) -> None:
        super().__init__(**options)
        self.redis = client
        self._owns_client = owns_client
        self._write_script = client.register_script(_WRITE_SCRIPT)
        self._claim_script = client.register_script(_CLAIM_SCRIPT)
        self._hold_lease_script = client.register_script(_HOLD_LEASE_SCRIPT)
        self._release_lease_script = client.register_script(_RELEASE_LEASE_SCRIPT)
        # The reply listener's blocking reads run on a connection of their own, outside
        # the pool: requests never wait for it, and close() ends a read by dropping it.
        self._own_connections: dict[str, Any] = {}

    max_connections = 32
    """Pool size of ``from_url``: a request holds no connection while it waits."""

    pool_timeout_s = 5.0
    """How long ``from_url``'s pool lets an operation wait for a free connection
    before it fails with ``BusUnavailable`` (pool exhausted)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStreamsBus:
        """A bus on a new bounded connection pool to ``url`` (``redis://host:port/db``).

        The pool holds at most ``max_connections``; an operation that finds them all busy
        waits up to ``pool_timeout_s`` and then raises ``BusUnavailable``.
        """
        pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=False, socket_keepalive=True,
            max_connections=cls.max_connections, timeout=cls.pool_timeout_s,
        )
        # The transport redis-py chose for the URL's scheme, with the bus's changes.
        pool.connection_class = _CONNECTION_CLASSES.get(pool.connection_class,
                                                        pool.connection_class)
        return cls(aioredis.Redis.from_pool(pool), owns_client=True, **options)

    async def write(
        self,
        appends: Sequence[Append] = (),
        acks: Sequence[Ack] = (),
        deletes: Sequence[Delete] = (),
        fence: Fence | None = None,
    ) -> list[list[StreamId]]:
        keys, args = _write_args(appends, acks, deletes, fence)
        if not keys:
            return []
        with _translated():
            written = await self._write_script(keys=keys, args=args)
        return [[entry_id.decode() for entry_id in ids] for ids in written]

    async def hold_lease(self, key: str, token: str, ttl_ms: int) -> str | None:
        with _translated():
            holder = await self._hold_lease_script(keys=[key], args=[token, ttl_ms])
        return None if holder is None else holder.decode()

    async def release_lease(self, key: str, token: str) -> bool:
        with _translated():
            return bool(await self._release_lease_script(keys=[key], args=[token]))

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
        """The write, then a read of new entries, pipelined on the consumer's own
        connection: one send for both (the engine's round trip per batch)."""
        keys, args = _write_args(*write, (), fence)
        if not keys:
            return None
        read = ["XREADGROUP GROUP", group, consumer, "COUNT", count]
        if block_ms is not None:
            read += ("BLOCK", block_ms)
        read += ("STREAMS", stream, ">")
        name = f"group:{stream}:{group}:{consumer}"
        connection = self._own_connection(name)
        script = self._write_script
        messages: list[Message] | None = None
        try:
            with _translated():
                await connection.send_packed_command(connection.pack_commands([
                    ("EVALSHA", script.sha, len(keys), *keys, *args), read]))
                fenced = None
                try:
                    written = await connection.read_response()
                except rexc.NoScriptError:
                    written = None  # the script is not loaded yet: written below
                except rexc.ResponseError as exc:
                    if not str(exc).startswith("FENCED "):
                        raise
                    fenced, written = exc, None  # nothing written; read what was read
                try:
                    messages = _raw_messages(stream, await connection.read_response())
                except rexc.ResponseError:
                    messages = None  # (NOGROUP) the caller reads the plain way
                if fenced is not None:
                    raise fenced
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            raise
        if written is None:
            with _translated():
                written = await script(keys=keys, args=args)
        return [[entry_id.decode() for entry_id in got] for got in written], messages


    async def read(
        self,
        stream: str,
        after_id: StreamId = "0-0",
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Message]:
        with _translated():
            reply: Any = await self.redis.xread({stream: after_id}, count=count, block=block_ms)
        if not reply:
            return []
        return [_message(stream, entry_id, fields, 1) for entry_id, fields in reply[0][1]]

    async def ensure_group(self, stream: str, group: str, start_id: StreamId = "0") -> bool:
        try:
            with _translated():
                await self.redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except BusError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise
        return True

    async def set_group_position(self, stream: str, group: str, last_id: StreamId) -> None:
        with _translated():
            await self.redis.xgroup_setid(stream, group, last_id)

    async def delete_group(self, stream: str, group: str) -> bool:
        try:
            with _translated():
                return bool(await self.redis.xgroup_destroy(stream, group))
        except UnknownGroup:
            return False

    async def groups(self, stream: str) -> list[GroupInfo]:
        try:
            with _translated():
                infos = await self.redis.xinfo_groups(stream)
        except BusError as exc:
            if "no such key" in str(exc):
                return []
            raise
        if not infos:
            return []
        # Summaries are read after last-delivered ids; Bus.trim relies on that order.
        with _translated():
            async with self.redis.pipeline(transaction=False) as pipe:
                for info in infos:
                    pipe.xpending(stream, info["name"])
                summaries = await pipe.execute()
        out = []
        for info, summary in zip(infos, summaries, strict=True):
            oldest = summary["min"] if summary["pending"] else None
            out.append(
                GroupInfo(
                    name=_str(info["name"]),
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    last_delivered_id=_str(info["last-delivered-id"]),
                    oldest_pending_id=None if oldest is None else _str(oldest),
                    lag=None if info.get("lag") is None else int(info["lag"]),
                )
            )
        return out

    async def pending(
        self, stream: str, group: str, *, consumer: str | None = None, count: int = 100
    ) -> list[PendingEntry]:
        with _translated():
            rows: Any = await self.redis.xpending_range(
                stream, group, "-", "+", count, consumername=consumer
            )
        return [
            PendingEntry(
                id=_str(row["message_id"]),
                consumer=_str(row["consumer"]),
                idle_ms=int(row["time_since_delivered"]),
                deliveries=int(row["times_delivered"]),
            )
            for row in rows
        ]

    async def last_id(self, stream: str) -> StreamId:
        with _translated():
            newest: Any = await self.redis.xrevrange(stream, "+", "-", count=1)
        return newest[0][0].decode() if newest else "0-0"

    async def length(self, stream: str) -> int:
        with _translated():
            return int(await self.redis.xlen(stream))

    async def delete_streams(self, *streams: str) -> int:
        if not streams:
            return 0
        with _translated():
            return int(await self.redis.delete(*streams))

    async def _read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int | None,
        after: StreamId | None,
    ) -> list[Message]:
        if after is None:
            # "XREADGROUP GROUP" is sent as two words and names no response callback:
            # the raw reply is parsed here, cheaper than redis-py's dict per entry.
            args: list[Any] = [group, consumer, "COUNT", count]
            if block_ms is not None:
                args += ("BLOCK", block_ms)
            args += ("STREAMS", stream, ">")
            if block_ms is not None:  # a blocking read: on the consumer's own connection
                reply: Any = await self._on_own_connection(
                    f"group:{stream}:{group}:{consumer}", "XREADGROUP GROUP", *args)
            else:
                with _translated():
                    reply = await self.redis.execute_command("XREADGROUP GROUP", *args)
            return _raw_messages(stream, reply)
        return await self._read_history(stream, group, consumer, count, after)

    async def _read_history(
        self, stream: str, group: str, consumer: str, count: int, after: StreamId
    ) -> list[Message]:
        """The consumer's own pending entries above ``after``, with delivery counts."""
        while True:
            with _translated():
                history: Any = await self.redis.xreadgroup(
                    group, consumer, {stream: after}, count=count
                )
            entries = history[0][1] if history else []
            if not entries:
                return []
            # History reads return every pending entry of the consumer in the range,
            # so the XPENDING of that range lists exactly these ids.
            first, last = entries[0][0], entries[-1][0]
            with _translated():
                rows = await self.redis.xpending_range(
                    stream, group, first, last, len(entries), consumername=consumer
                )
            deliveries = {row["message_id"]: int(row["times_delivered"]) for row in rows}
            live = [(i, f) for i, f in entries if f]
            gone = [i for i, f in entries if not f]
            if gone:  # deleted while pending: nothing left to process
                with _translated():
                    await self.redis.xack(stream, group, *gone)
            if live:
                return [_message(stream, i, f, deliveries.get(i, 1)) for i, f in live]
            after = last.decode()

    async def _claim(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Message]:
        messages: list[Message] = []
        cursor: bytes | str = "0-0"
        while len(messages) < count:
            with _translated():
                cursor, entries, counts = await self._claim_script(
                    keys=[stream],
                    args=[group, consumer, min_idle_ms, cursor, count - len(messages)],
                )
            for (entry_id, flat), n in zip(entries, counts, strict=True):
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                messages.append(_message(stream, entry_id, fields, int(n)))
            if cursor in (b"0-0", "0-0"):
                break
        return messages

    async def _trim_below(self, stream: str, min_id: StreamId, approximate: bool) -> int:
        with _translated():
            return int(
                await self.redis.xtrim(stream, minid=min_id, approximate=approximate)
            )

    async def _read_replies(
        self, stream: str, after_id: StreamId, count: int, block_ms: int
    ) -> list[Message]:
        reply = await self._on_own_connection(
            "replies", "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after_id
        )
        return _raw_messages(stream, reply)

    async def _on_own_connection(self, name: str, *args: Any) -> Any:
        """Run a (blocking) command on the connection ``name`` keeps outside the pool.

        Blocking reads (the reply listener's, a consumer's XREADGROUP BLOCK) never hold
        a pooled connection while they wait, cost no pool round trip per read, and
        ``close()`` ends them by dropping their connections. One caller per name at a
        time (one reader per consumer).
        """
        connection = self._own_connection(name)
        try:
            with _translated():
                await connection.send_command(*args)
                return await connection.read_response()
        except BaseException:
            # A read cut short leaves its reply in flight: never reuse the connection.
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            raise

    def _own_connection(self, name: str) -> Any:
        connection = self._own_connections.get(name)
        if connection is None:
            pool = self.redis.connection_pool
            connection = self._own_connections[name] = pool.connection_class(
                **pool.connection_kwargs)
        return connection

    async def _stop_reply_reads(self) -> None:
        for connection in self._own_connections.values():
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)

    async def _close(self) -> None:
        await self._stop_reply_reads()
        self._own_connections.clear()
        if self._owns_client:
            with contextlib.suppress(rexc.RedisError, OSError):
                await self.redis.aclose()
