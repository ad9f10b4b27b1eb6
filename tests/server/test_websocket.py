"""WebSocket /ws: book snapshot then gap-free deltas, trades, the user channel, errors."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def recv(ws, timeout: float = 5.0) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, predicate, timeout: float = 5.0) -> dict:
    while True:
        msg = await recv(ws, timeout)
        if predicate(msg):
            return msg


async def test_book_snapshot_then_deltas_with_consecutive_sequences(client, server):
    market = await client.market()
    token, _ = await client.user()
    await client.order(token, market, "yes", "buy", "0.40", 3)
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"book:{market}"]}))
        snap = await recv(ws)
        assert snap["type"] == "snapshot" and snap["channel"] == f"book:{market}"
        assert snap["data"]["bids"] == [{"price": "0.40", "quantity": 3}]
        await client.order(token, market, "yes", "buy", "0.41", 2)
        await client.order(token, market, "no", "buy", "0.50", 1)
        d1, d2 = await recv(ws), await recv(ws)
        assert d1["type"] == d2["type"] == "delta"
        assert [d1["sequence"], d2["sequence"]] == [snap["sequence"] + 1, snap["sequence"] + 2]
        assert d1["data"]["changes"] == [{"side": "bid", "price": "0.41", "quantity": 2}]
        assert d2["data"]["changes"] == [{"side": "ask", "price": "0.50", "quantity": 1}]


async def test_trades_channel_and_user_channel(client, server):
    market = await client.market()
    maker, _ = await client.user()
    taker, _ = await client.user()
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"trades:{market}",
                                                                     "user"], "token": maker}))
        await client.order(maker, market, "yes", "sell", "0.60", 1, expect=409)
        await client.order(maker, market, "yes", "buy", "0.60", 2)
        await client.order(taker, market, "yes", "sell", "0.60", 1, expect=409)
        await client.order(taker, market, "no", "buy", "0.40", 2)
        trade = await recv_until(ws, lambda m: m["type"] == "trade")
        assert trade["data"]["price"] == "0.60" and trade["data"]["quantity"] == 2
        fill = await recv_until(ws, lambda m: m["type"] == "fill")
        assert fill["channel"] == "user" and fill["data"]["role"] == "maker"
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"], "token": maker}))
        await client.http.post("/onramp", json={"amount": "1"}, headers=client.auth(maker))
        bal = await recv_until(ws, lambda m: m["type"] == "balance")
        assert bal["sequence"] == 1 and bal["data"]["available"] == "999.8000"


async def test_bad_token_is_refused_and_bad_messages_get_errors(client, server):
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(b"not json")
        assert (await recv(ws))["data"]["code"] == "malformed_json"
        await ws.send(orjson.dumps({"op": "dance"}))
        assert (await recv(ws))["data"]["code"] == "invalid_op"
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["book:99999999"]}))
        assert (await recv(ws))["data"]["code"] == "unknown_channel"
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                    "token": "forged.token.here"}))
        err = await recv(ws)
        assert err["type"] == "error" and err["data"]["code"] == "unauthenticated"
        with pytest.raises(websockets.ConnectionClosed):
            await recv(ws)


async def test_unsubscribe_stops_messages(client, server):
    market = await client.market()
    token, _ = await client.user()
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"book:{market}"]}))
        await recv(ws)
        await ws.send(orjson.dumps({"op": "unsubscribe", "channels": [f"book:{market}"]}))
        await asyncio.sleep(0.1)
        await client.order(token, market, "yes", "buy", "0.10", 1)
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=0.5)
