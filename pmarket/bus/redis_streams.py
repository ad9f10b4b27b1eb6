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

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

from pmarket.bus.base import Bus
from pmarket.bus.redis_wire import (
    CLAIM_SCRIPT,
    CONNECTION_CLASSES,
    HOLD_LEASE_SCRIPT,
    RELEASE_LEASE_SCRIPT,
    WRITE_SCRIPT,
    write_args,
)
from pmarket.bus.values import (
    NO_HEADERS,
    Ack,
    Append,
    BusError,
    BusUnavailable,
    ConsumerInfo,
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
        self._write_script = client.register_script(WRITE_SCRIPT)
        self._claim_script = client.register_script(CLAIM_SCRIPT)
        self._hold_lease_script = client.register_script(HOLD_LEASE_SCRIPT)
        self._release_lease_script = client.register_script(RELEASE_LEASE_SCRIPT)
        # The reply listener's blocking reads run on a connection of their own, outside
        # the pool: requests never wait for it, and close() ends a read by dropping it.
        self._own_connections: dict[str, Any] = {}

    max_connections = 32
    """Pool size of ``from_url``: a request holds no connection while it waits."""

    pool_timeout_s = 5.0
    """How long ``from_url``'s pool lets an operation wait for a free connection
    before it fails with ``BusUnavailable`` (pool exhausted)."""

    connect_timeout_s = 3.0
    """How long ``from_url``'s connections wait for Redis to accept them: an unreachable
    host fails fast (``BusUnavailable``) instead of after the system's TCP timeout."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStreamsBus:
        """A bus on a new bounded connection pool to ``url`` (``redis://host:port/db``).

        The pool holds at most ``max_connections``; an operation that finds them all busy
        waits up to ``pool_timeout_s`` and then raises ``BusUnavailable``.
        """
        pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=False, socket_keepalive=True,
            max_connections=cls.max_connections, timeout=cls.pool_timeout_s,
            socket_connect_timeout=cls.connect_timeout_s,
        )
        # The transport redis-py chose for the URL's scheme, with the bus's changes.
        pool.connection_class = CONNECTION_CLASSES.get(pool.connection_class,
                                                        pool.connection_class)
        return cls(aioredis.Redis.from_pool(pool), owns_client=True, **options)

    async def write(
        self,
        appends: Sequence[Append] = (),
        acks: Sequence[Ack] = (),
        deletes: Sequence[Delete] = (),
        fence: Fence | None = None,
    ) -> list[list[StreamId]]:
        keys, args = write_args(appends, acks, deletes, fence)
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

    async def lease_holder(self, key: str) -> str | None:
        with _translated():
            holder = await self.redis.get(key)
        return None if holder is None else _str(holder)

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
        keys, args = write_args(*write, (), fence)
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
                summaries = await pipe.execute(raise_on_error=False)
        out = []
        for info, summary in zip(infos, summaries, strict=True):
            if isinstance(summary, Exception):
                if "NOGROUP" in str(summary):
                    continue  # deleted between the two reads (a reaped group): gone
                with _translated():
                    raise summary
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

    async def consumers(self, stream: str, group: str) -> list[ConsumerInfo]:
        try:
            with _translated():
                rows: Any = await self.redis.xinfo_consumers(stream, group)
        except BusError as exc:
            if "no such key" in str(exc):
                raise UnknownGroup(f"no consumer group {group!r} on {stream}") from None
            raise
        return [ConsumerInfo(_str(row["name"]), int(row["pending"]), int(row["idle"]))
                for row in rows]

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

    async def tail(
        self, name: str, stream: str, after_id: StreamId, *, count: int = 100,
        block_ms: int = 1000,
    ) -> list[Message]:
        reply = await self._on_own_connection(
            f"tail:{name}", "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream,
            after_id)
        return _raw_messages(stream, reply)

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
