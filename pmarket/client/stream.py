"""Live market data over the WebSocket ``/ws``: typed messages and local order books.

``MarketStream`` subscribes to ``book:{id}``, ``trades:{id}`` and ``user`` channels and
yields typed messages. For every book channel it keeps a ``LocalBook`` built from the
snapshot and the deltas that follow. Invariant: a local book is only ever shown as
ready when it equals snapshot + every delta since, in order: a delta whose sequence is
not exactly the last one + 1 marks the book stale and resubscribes for a fresh snapshot,
and a dropped connection reconnects and resubscribes every channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from pmarket import api
from pmarket.client.errors import ServerUnavailable

ONE = Decimal(1)


class LocalBook:
    """One market's book in YES terms, kept from a snapshot and its deltas.

    Attributes:
        market_id: The market.
        bids: YES bid price → total quantity.
        asks: YES ask price → total quantity.
        last_price: Last trade price (YES terms), if known.
        sequence: Sequence number of the last message applied.
        ready: False until a snapshot arrives, and again after a gap.
    """

    def __init__(self, market_id: int) -> None:
        self.market_id = market_id
        self.bids: dict[Decimal, int] = {}
        self.asks: dict[Decimal, int] = {}
        self.last_price: Decimal | None = None
        self.sequence = 0
        self.ready = False

    def apply_snapshot(self, book: api.Book, sequence: int) -> None:
        """Replace the whole book with ``book`` (YES view)."""
        self.bids = {lv.price: lv.quantity for lv in book.bids if lv.quantity > 0}
        self.asks = {lv.price: lv.quantity for lv in book.asks if lv.quantity > 0}
        if book.last_price is not None:
            self.last_price = book.last_price
        self.sequence = sequence
        self.ready = True

    def apply_changes(self, changes: Iterable[dict[str, Any]], sequence: int) -> None:
        """Apply level changes: each sets a level's new total (0 removes it)."""
        for ch in changes:
            levels = self.bids if ch["side"] == "bid" else self.asks
            price = api.dec(ch["price"])
            quantity = int(ch["quantity"])
            if quantity > 0:
                levels[price] = quantity
            else:
                levels.pop(price, None)
        self.sequence = sequence

    def levels(self, view: str = "yes", depth: int | None = None
               ) -> tuple[list[api.Level], list[api.Level]]:
        """Bids (high→low) and asks (low→high) in ``view``'s terms."""
        if view == "no":
            bids = [api.Level(price=ONE - p, quantity=q) for p, q in sorted(self.asks.items())]
            asks = [api.Level(price=ONE - p, quantity=q)
                    for p, q in sorted(self.bids.items(), reverse=True)]
        else:
            bids = [api.Level(price=p, quantity=q)
                    for p, q in sorted(self.bids.items(), reverse=True)]
            asks = [api.Level(price=p, quantity=q) for p, q in sorted(self.asks.items())]
        if depth is not None:
            bids, asks = bids[:depth], asks[:depth]
        return bids, asks

    def to_book(self, view: str = "yes", depth: int | None = None) -> api.Book:
        """The book as an API ``Book`` in ``view``'s terms."""
        bids, asks = self.levels(view, depth)
        best_bid = bids[0].price if bids else None
        best_ask = asks[0].price if asks else None
        both = best_bid is not None and best_ask is not None
        last = self.last_price
        if last is not None and view == "no":
            last = ONE - last
        return api.Book(
            market_id=self.market_id, view="no" if view == "no" else "yes", bids=bids,
            asks=asks, best_bid=best_bid, best_ask=best_ask,
            mid=(best_bid + best_ask) / 2 if both else None,  # type: ignore[operator]
            spread=best_ask - best_bid if both else None,  # type: ignore[operator]
            last_price=last, sequence=self.sequence)


@dataclass(frozen=True, slots=True)
class BookMessage:
    """A book changed (``kind`` "snapshot" or "delta"); ``book`` is already updated."""

    channel: str
    market_id: int
    sequence: int
    kind: str
    book: LocalBook


@dataclass(frozen=True, slots=True)
class TradeMessage:
    """A public trade on a ``trades:{id}`` channel."""

    channel: str
    sequence: int
    trade: api.PublicTrade


@dataclass(frozen=True, slots=True)
class OrderMessage:
    """One of the user's orders changed."""

    sequence: int
    order: api.Order


@dataclass(frozen=True, slots=True)
class FillMessage:
    """One of the user's orders filled."""

    sequence: int
    trade: api.Trade


@dataclass(frozen=True, slots=True)
class BalanceMessage:
    """The user's balance changed."""

    sequence: int
    balance: api.Balance


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """The server refused something (a bad token, an unknown channel...)."""

    channel: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ConnectionMessage:
    """The connection was lost (``connected`` False) or restored and resubscribed."""

    connected: bool
    detail: str


StreamMessage = (BookMessage | TradeMessage | OrderMessage | FillMessage | BalanceMessage
                 | ErrorMessage | ConnectionMessage)


def market_of(channel: str) -> int:
    """The market id of a ``book:{id}`` or ``trades:{id}`` channel."""
    return int(channel.split(":", 1)[1])


class MarketStream:
    """A WebSocket subscription to live market data.

    Use as an async context manager and iterate it::

        async with client.stream() as s:
            await s.subscribe("book:1", "trades:1", "user")
            async for msg in s:
                ...

    Args:
        url: The ``ws://.../ws`` URL.
        token: Bearer token, sent when subscribing to ``user``.
        reconnect: Reconnect (and resubscribe) when the connection drops.
        max_backoff: Longest wait between reconnection attempts, in seconds.
        open_timeout: Seconds to wait for the connection to open.
    """

    def __init__(self, url: str, token: str | None = None, *, reconnect: bool = True,
                 max_backoff: float = 5.0, open_timeout: float = 5.0) -> None:
        self.url = url
        self.token = token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.channels: set[str] = set()
        self.books: dict[int, LocalBook] = {}
        self.resubscribes = 0
        self._ws: ClientConnection | None = None
        self._closed = False

    async def __aenter__(self) -> MarketStream:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> None:
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout,
                                     max_size=2**24)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise ServerUnavailable(f"no WebSocket at {self.url}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection; iteration ends."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    async def _send(self, op: str, channels: list[str]) -> None:
        msg: dict[str, Any] = {"op": op, "channels": channels}
        if "user" in channels and self.token:
            msg["token"] = self.token
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(orjson.dumps(msg).decode())

    async def subscribe(self, *channels: str) -> None:
        """Subscribe to channels; book channels start with a fresh snapshot."""
        for ch in channels:
            if ch.startswith("book:"):
                self.books.setdefault(market_of(ch), LocalBook(market_of(ch))).ready = False
        self.channels.update(channels)
        await self._send("subscribe", list(channels))

    async def unsubscribe(self, *channels: str) -> None:
        """Stop receiving channels (and forget their books)."""
        for ch in channels:
            self.channels.discard(ch)
            if ch.startswith("book:"):
                self.books.pop(market_of(ch), None)
        await self._send("unsubscribe", list(channels))

    async def _resubscribe(self, channel: str) -> None:
        self.resubscribes += 1
        await self._send("unsubscribe", [channel])
        await self._send("subscribe", [channel])

    def __aiter__(self) -> AsyncIterator[StreamMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[StreamMessage]:
        while not self._closed:
            msg = await self.recv()
            if msg is None:
                return
            yield msg

    async def recv(self) -> StreamMessage | None:
        """The next message (``None`` once the stream is closed for good)."""
        while not self._closed:
            if self._ws is None:
                return None
            try:
                raw = await self._ws.recv()
            except websockets.ConnectionClosed as exc:
                if self._closed or not self.reconnect:
                    return None
                lost = ConnectionMessage(False, f"connection lost: {exc}")
                await self._reopen()
                return lost if self._ws is None else ConnectionMessage(
                    True, "reconnected and resubscribed")
            msg = self._handle(orjson.loads(raw))
            if isinstance(msg, _Resubscribe):
                await self._resubscribe(msg.channel)
                continue
            if msg is not None:
                return msg
        return None

    async def _reopen(self) -> None:
        delay = 0.1
        for book in self.books.values():
            book.ready = False
        while not self._closed:
            try:
                await self._connect()
            except ServerUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if self.channels:
                await self._send("subscribe", sorted(self.channels))
            return

    def _handle(self, msg: dict[str, Any]) -> StreamMessage | _Resubscribe | None:
        channel = msg.get("channel")
        kind = msg.get("type")
        seq = int(msg.get("sequence") or 0)
        data = msg.get("data") or {}
        if kind == "error":
            return ErrorMessage(channel, str(data.get("code", "error")),
                                str(data.get("message", "")))
        if not channel:
            return None
        if channel.startswith("book:"):
            return self._book_message(channel, kind, seq, data)
        if channel.startswith("trades:") and kind == "trade":
            trade = api.PublicTrade.model_validate(data)
            book = self.books.get(trade.market_id)
            if book is not None:
                book.last_price = trade.price
            return TradeMessage(channel, seq, trade)
        if channel == "user":
            if kind == "order":
                return OrderMessage(seq, api.Order.model_validate(data))
            if kind == "fill":
                return FillMessage(seq, api.Trade.model_validate(data))
            if kind == "balance":
                return BalanceMessage(seq, api.Balance.model_validate(data))
        return None

    def _book_message(self, channel: str, kind: str | None, seq: int,
                      data: dict[str, Any]) -> BookMessage | _Resubscribe | None:
        market_id = market_of(channel)
        if channel not in self.channels:
            return None  # a late message of a channel we left
        book = self.books.setdefault(market_id, LocalBook(market_id))
        if kind == "snapshot":
            book.apply_snapshot(api.Book.model_validate(data), seq)
            return BookMessage(channel, market_id, seq, "snapshot", book)
        if kind != "delta" or not book.ready:
            return None  # waiting for the snapshot: deltas before it are stale
        if seq != book.sequence + 1:
            book.ready = False
            return _Resubscribe(channel)
        book.apply_changes(data.get("changes", []), seq)
        if data.get("last_price") is not None:
            book.last_price = api.dec(data["last_price"])
        return BookMessage(channel, market_id, seq, "delta", book)


@dataclass(frozen=True, slots=True)
class _Resubscribe:
    channel: str
