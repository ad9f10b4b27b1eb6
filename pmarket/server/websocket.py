"""WebSocket ``/ws``: live books, trades and a user's own orders, fills and balance.

Protocol (API.md): the client sends ``{"op": "subscribe"|"unsubscribe", "channels": [...],
"token": "<JWT>"}``; channels are ``book:{market_id}``, ``trades:{market_id}`` and
``user`` (needs a valid user token or API key, checked by ``sessions.Sessions`` like
every HTTP request; once its user is disabled or signs out everywhere, or the key is
revoked, or when the token it subscribed with expires, the connection gets an
``unauthenticated`` error and is closed, code 1008).
Every server message is ``{"channel", "type", "sequence", "data"}``; errors are
``type: "error"`` with ``data: {code, message}``.

``Hub`` holds the subscriptions. The replica calls ``Hub.send`` synchronously while it
applies a delivery, and a new ``book`` subscription's snapshot is queued synchronously
too, so a subscriber always gets the snapshot at sequence ``s`` and then exactly the
deltas ``s + 1, s + 2, ...`` of that book. Each connection drains its own bounded
queue; one that falls too far behind is closed (code 1013) rather than slowing others —
the client resubscribes and gets a fresh snapshot.

Bounded cost per client (``WsLimits``): at most ``max_connections_per_address`` open
connections per client address (more are refused at the handshake: HTTP 429 with
``Retry-After``), at most ``max_channels`` channels per connection, and a token bucket
per address on subscriptions (each channel subscribed costs one token; an empty bucket
answers ``rate_limited`` and the rest of that frame is dropped), and one on frames: a
client that keeps sending (ignoring ``rate_limited``, or sending unsubscriptions and
junk, which cost no subscription) is not read further until a frame is due — its frames
wait in its socket, and it costs the server nothing meanwhile, where answering every
frame of 20 such connections took a fifth of the server's time. Channel names must be
canonical (``book:7``, not ``book:07``: every name maps to one channel that updates);
a channel named twice in one frame counts once. A book snapshot is encoded once per
market and sequence (``SnapshotCache``) and shared by every subscriber of that moment,
so a crowd subscribing to a deep book costs one encoding, not one each.

Outages: a subscription that cannot be served right now (the replica is not following
the event stream, or it cannot be brought up to this server's writes) gets an ``error``
with the 503 code the HTTP API would give (``marketdata_unavailable``...) and the
connection stays open. When the replica resynchronises after losing deliveries, every
book subscriber gets a fresh ``snapshot`` at the channel's next sequence, as after a
sequence gap; a channel whose market vanished meanwhile gets an ``error`` and is dropped.

Invariant: within one connection, a channel's ``sequence`` grows by exactly 1 per
message (book and trades: the market's channel counter; user: a per-subscription one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from pmarket.runtime.slicing import Slicer

from .clientaddr import scope_address
from .errors import ApiError, log_outage, outage_error
from .exactjson import loads_strict, may_repeat_names
from .marketdata import MarketState, Replica, book_view
from .ratelimit import RateLimiter
from .security import Principal

log = logging.getLogger("pmarket.server.websocket")

QUEUE_LIMIT = 10_000
MAX_CHANNELS = 200
MAX_MESSAGE_BYTES = 64 * 1024
# Canonical names only: one spelling per channel (no leading zeros, no sign).
_MARKET_CHANNEL = re.compile(r"^(book|trades):([1-9][0-9]{0,17})$")


@dataclass
class WsLimits:
    """What one client may cost the server over WebSockets.

    Attributes:
        max_channels: channels one connection may hold.
        max_connections_per_address: open connections per client address.
        subscriptions: token bucket per address, one token per channel subscribed.
        connects: token bucket per address charged by each new connection (the server
            shares its public market-data bucket here); None: no rate.
        messages: token bucket per address, one token per frame received; when it is
            empty the connection is not read until a token is due (``_pace``).
    """

    max_channels: int = MAX_CHANNELS
    max_connections_per_address: int = 50
    subscriptions: RateLimiter = field(default_factory=lambda: RateLimiter(20.0, 400))
    connects: RateLimiter | None = None
    messages: RateLimiter = field(default_factory=lambda: RateLimiter(50.0, 200))


class SnapshotCache:
    """The encoded ``snapshot`` message of each book, built once per sequence."""

    def __init__(self) -> None:
        self._books: dict[int, tuple[int, bytes]] = {}

    def message(self, channel: str, market: MarketState) -> bytes:
        """The snapshot message of ``market`` at its current sequence."""
        cached = self._books.get(market.id)
        if cached is not None and cached[0] == market.sequence:
            return cached[1]
        data = orjson.dumps({"channel": channel, "type": "snapshot",
                             "sequence": market.sequence, "data": book_view(market)})
        self._books[market.id] = (market.sequence, data)
        return data


class Connection:
    """One WebSocket client: its outgoing queue and its subscriptions."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_LIMIT)
        self.channels: set[str] = set()
        self.user_id: int | None = None
        self.principal: Principal | None = None
        self.user_sequence = 0
        self.overflowed = False
        self.address = ""
        self._expiry: asyncio.TimerHandle | None = None

    def expire_at(self, when: float | None) -> None:
        """Close the connection (as a revocation does) when the credential of its
        ``user`` channel expires, if still subscribed then: at ``when`` (seconds since
        the epoch); None: never (an API key), or the connection ended. A later
        subscription resets it."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if when is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, when - time.time()), self._expired)

    def _expired(self) -> None:
        self._expiry = None
        if f"user:{self.user_id}" not in self.channels:
            return  # unsubscribed since: the public channels need no credential
        self.put(_error("unauthenticated", "the token of the user channel has expired; "
                        "connect again with a fresh one"))
        self.close()

    def put(self, message: dict[str, Any]) -> None:
        self.put_raw(orjson.dumps(message))

    def put_raw(self, message: bytes) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    def close(self) -> None:
        """Close after what is queued (code 1008; 1013 if the queue is full)."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    """Routes market-data and user messages to subscribed connections."""

    def __init__(self, limits: WsLimits | None = None) -> None:
        self.subscribers: dict[str, set[Connection]] = {}
        self.user_subscribers = 0
        self.limits = limits or WsLimits()
        self.snapshots = SnapshotCache()
        self.connections: dict[str, int] = {}  # client address -> open connections

    def connect(self, address: str) -> bool:
        """Count a new connection from ``address``; False if it has too many open."""
        count = self.connections.get(address, 0)
        if count >= self.limits.max_connections_per_address:
            return False
        self.connections[address] = count + 1
        return True

    def disconnect(self, address: str) -> None:
        count = self.connections.get(address, 0) - 1
        if count > 0:
            self.connections[address] = count
        else:
            self.connections.pop(address, None)

    def wants(self, key: str) -> bool:
        """True if any connection listens on ``key`` (``user:{id}`` for users)."""
        return key in self.subscribers

    def has_users(self) -> bool:
        return self.user_subscribers > 0

    def send(self, key: str, kind: str, sequence: int | None, data: Any) -> None:
        """Queue a message for every subscriber of ``key``."""
        conns = self.subscribers.get(key)
        if not conns:
            return
        if key.startswith("user:"):
            for conn in conns:
                conn.user_sequence += 1
                conn.put({"channel": "user", "type": kind, "sequence": conn.user_sequence,
                          "data": data})
            return
        message = orjson.dumps({"channel": key, "type": kind, "sequence": sequence,
                                "data": data})
        for conn in conns:
            if not conn.overflowed:
                try:
                    conn.queue.put_nowait(message)
                except asyncio.QueueFull:
                    conn.overflowed = True

    def revoke(self, user_ids: set[int], still_valid) -> None:
        """Close the ``user`` channel connections of ``user_ids`` whose credential
        ``still_valid`` no longer accepts (called once revocations are applied)."""
        for user_id in user_ids:
            for conn in list(self.subscribers.get(f"user:{user_id}", ())):
                if conn.principal is not None and not still_valid(conn.principal):
                    conn.put(_error("unauthenticated", "the credential of the user channel "
                                    "was revoked (signed out, disabled or key deleted)"))
                    conn.close()

    def add(self, key: str, conn: Connection) -> None:
        if key.startswith("user:"):
            self.user_subscribers += 1
        self.subscribers.setdefault(key, set()).add(conn)

    def drop(self, key: str, code: str, message: str) -> None:
        """Unsubscribe every connection from the market channel ``key``, telling why."""
        for conn in self.subscribers.pop(key, set()):
            conn.channels.discard(key)
            conn.put({"channel": key, "type": "error", "sequence": 0,
                      "data": {"code": code, "message": message}})

    def remove(self, key: str, conn: Connection) -> None:
        conns = self.subscribers.get(key)
        if conns is not None and conn in conns:
            conns.discard(conn)
            if key.startswith("user:"):
                self.user_subscribers -= 1
            if not conns:
                del self.subscribers[key]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"channel": None, "type": "error", "sequence": 0,
            "data": {"code": code, "message": message}}


async def serve(ws: WebSocket, hub: Hub, replica: Replica, sessions,
                before_snapshot) -> None:
    """Run one WebSocket connection until the client leaves.

    Args:
        ws: the accepted-to-be socket.
        hub: the subscription hub.
        replica: the books (snapshots come from here).
        sessions: the credential check (``sessions.Sessions``, for the ``user`` channel).
        before_snapshot: awaited before a snapshot (read-your-writes barrier).
    """
    address = scope_address(ws.scope)  # the peer, or a trusted proxy's client
    connects = hub.limits.connects
    wait = connects.allow(address) if connects is not None else 0.0
    if wait:
        await _deny(ws, 429, "rate_limited", "too many requests from this address; "
                    f"retry in {connects.retry_after(wait)} s")
        return
    if not hub.connect(address):
        limit = hub.limits.max_connections_per_address
        await _deny(ws, 429, "rate_limited",
                    f"at most {limit} open WebSocket connections per address")
        return
    try:
        await ws.accept()
        await _connection(ws, address, hub, replica, sessions, before_snapshot)
    finally:
        hub.disconnect(address)


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP error in the API's shape."""
    from .errors import error_response

    response = error_response(status, code, message, {"Retry-After": "1"})
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # a server without the denial extension: a plain close
        await ws.close(code=1008)


async def _connection(ws: WebSocket, address: str, hub: Hub, replica: Replica, sessions,
                      before_snapshot) -> None:
    conn = Connection(ws)
    conn.address = address
    sender = asyncio.create_task(_send_loop(conn, replica.unhurried if replica else None))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            await _pace(hub.limits.messages, address)
            raw = message.get("text") or message.get("bytes") or b""
            if len(raw) > MAX_MESSAGE_BYTES:
                conn.put(_error("message_too_large", "message exceeds 64 KiB"))
                continue
            try:
                msg = orjson.loads(raw)
                if may_repeat_names(raw if isinstance(raw, bytes) else raw.encode(), msg):
                    msg = loads_strict(raw)
            except json.JSONDecodeError as exc:  # orjson's error is one too
                conn.put(_error("malformed_json", f"message is not valid JSON: {exc.msg}"))
                continue
            if not await _handle(msg, conn, hub, replica, sessions, before_snapshot):
                # Refused: let the sender deliver the error and close the socket.
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(sender), 2.0)
                break
            if sender.done():
                break
    except WebSocketDisconnect:
        pass
    finally:
        conn.expire_at(None)
        for key in list(conn.channels):
            hub.remove(key, conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _say_outage(conn: Connection, exc: Exception) -> None:
    """Answer a subscription that an outage stopped with the error the HTTP API gives
    (503 codes); anything that is not an outage is re-raised."""
    error = exc if isinstance(exc, ApiError) else outage_error(exc)
    if error is None:
        raise exc
    if error is not exc:
        log_outage(error.code, "WS subscribe", exc)
    conn.put(_error(error.code, error.message))


async def _pace(bucket: RateLimiter, address: str) -> None:
    """Take a frame token of ``address``, waiting (not reading on) until one is due."""
    while wait := bucket.allow(address):
        await asyncio.sleep(wait)


async def _handle(msg: Any, conn: Connection, hub: Hub, replica: Replica, sessions,
                  before_snapshot) -> bool:
    """Apply one client message; False to close the connection."""
    if not isinstance(msg, dict) or msg.get("op") not in ("subscribe", "unsubscribe"):
        conn.put(_error("invalid_op", 'op must be "subscribe" or "unsubscribe"'))
        return True
    channels = msg.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        conn.put(_error("invalid_channels", "channels must be a list of strings"))
        return True
    if msg["op"] == "unsubscribe":
        for channel in channels:
            key = f"user:{conn.user_id}" if channel == "user" else channel
            if key in conn.channels:
                conn.channels.discard(key)
                hub.remove(key, conn)
        return True
    channels = list(dict.fromkeys(channels))  # named twice in a frame: once
    new = [c for c in channels if _key(c, conn) not in conn.channels]
    limit = hub.limits.max_channels
    if len(conn.channels) + len(new) > limit:
        conn.put(_error("too_many_channels", f"at most {limit} channels per connection"))
        return True
    if "user" in channels:
        try:
            principal, reason = await _user_principal(msg.get("token"), sessions)
        except Exception as exc:  # cannot check now (an outage): say so, stay open
            _say_outage(conn, exc)
            return True
        if principal is None:
            conn.put(_error("unauthenticated", reason))
            conn.close()  # refuse: close after the error is sent
            return False
        if conn.user_id is not None and conn.user_id != principal.id:
            conn.put(_error("invalid_channels", "this connection's user channel is "
                            "another user's; open a new connection"))
            return True
        conn.user_id = principal.id
        conn.principal = principal
        conn.expire_at(sessions.expires_at(msg["token"]))
    if any(_MARKET_CHANNEL.match(c) for c in channels if c.startswith("book:")):
        try:
            await before_snapshot()
        except Exception as exc:  # an outage: say so, as the HTTP API would (503)
            _say_outage(conn, exc)
            return True
    bucket = hub.limits.subscriptions
    for channel in channels:
        wait = bucket.allow(conn.address)
        if wait:
            conn.put(_error("rate_limited", f"too many subscriptions; retry in "
                            f"{bucket.retry_after(wait)} s ({channel} and the rest of "
                            "this frame were not subscribed)"))
            break
        _subscribe(channel, conn, hub, replica)
    return True


async def _user_principal(token: Any, sessions) -> tuple[Principal | None, str]:
    """The user a subscription's ``token`` (a JWT or an API key) speaks for, else why
    not — the same check as an HTTP request's (a subscription only reads)."""
    if not isinstance(token, str):
        return None, "a user token is required for the user channel"
    try:
        principal = await sessions.authenticate(token, "GET")
    except ApiError as exc:
        if exc.status >= 500:  # this server cannot vouch right now: not a refusal
            raise
        return None, exc.message
    if principal.role != "user":
        return None, "a user token is required for the user channel"
    return principal, ""


def _key(channel: str, conn: Connection) -> str:
    return f"user:{conn.user_id}" if channel == "user" else channel


def _subscribe(channel: str, conn: Connection, hub: Hub, replica: Replica) -> None:
    if channel == "user":
        key = f"user:{conn.user_id}"
        if key not in conn.channels:
            conn.channels.add(key)
            hub.add(key, conn)
        return
    match = _MARKET_CHANNEL.match(channel)
    market = replica.markets.get(int(match.group(2))) if match else None
    if market is None:
        conn.put(_error("unknown_channel", f"no such channel {channel!r}"))
        return
    if match.group(1) == "book":
        # Synchronously with hub.add: no delta can slip between snapshot and subscription.
        conn.put_raw(hub.snapshots.message(channel, market))
    if channel not in conn.channels:
        conn.channels.add(channel)
        hub.add(channel, conn)


async def _send_loop(conn: Connection, unhurried: Callable[[], Awaitable[None]] | None = None,
                     slicer: Slicer | None = None) -> None:
    """Send what is queued for ``conn``, in order, in slices (``runtime.slicing``).

    A send whose frame fits the socket's buffer completes without yielding, and so does
    a ``get`` from a queue that holds something: a sweep of 10,000 price levels queues
    10,000 ``trade`` messages for each ``trades:`` subscriber, and one connection's loop
    sent them all in one step of the event loop. The loop yields once its slice has run
    its budget; and while the replica folds a big delivery (``unhurried``:
    ``Replica.unhurried``) it waits, because every read waits for that fold: ten
    subscribers' frames taking turns with it made one sweep's fold, and so other users'
    reads, take 1.2 s.
    """
    slicer = slicer or Slicer()
    while True:
        if conn.queue.empty():
            message = await conn.queue.get()  # waits: the loop ran other work meanwhile
            slicer.restart()
        else:
            message = conn.queue.get_nowait()
        if message is None or conn.overflowed:
            code = 1013 if conn.overflowed else 1008
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code)
            return
        if unhurried is not None:
            await unhurried()  # returns at once unless a big delivery is being folded
        await conn.ws.send_text(message.decode())
        if slicer.due():
            await slicer.pause()
