"""A deployment server across real Redis outages (a private redis-server, kill -9).

* Started while Redis is down, the server comes up degraded — ``/health`` 503, writes
  503 with ``Retry-After``, book reads 503, WebSocket book subscriptions an error, reads
  of the database fine — and heals by itself once Redis (then the engine and the
  worker) are back: orders, books and WebSocket feeds work without a restart.
* Redis killed under order load (with its append-only file, as production runs it):
  every order acknowledged before, during and after the outage is readable by its owner,
  the WebSocket book feed has no gap and ends equal to the REST book, nothing is a 500.
* Redis restarted empty (no persistence): the server's consumer group is gone, the
  market data resynchronises from the database, and book subscribers get a fresh
  snapshot at the next sequence, as after a sequence gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time

import orjson
import pytest
import websockets

from tests.bus.private_redis import PrivateRedis
from tests.server.faults import Services, recv, until
from tests.server.harness import Client, Server, start_server

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@contextlib.asynccontextmanager
async def _deployment(tmp_path, redis: PrivateRedis, *, services: bool = True, **overrides):
    """A server on ``redis`` (engine and worker started unless ``services`` is False)."""
    srv = await start_server("deployment", tmp_path, redis_url=redis.url, services=False,
                             **overrides)
    svc = Services(srv.settings, tmp_path)
    client = Client(srv)
    try:
        if services:
            await svc.start_engine()
            await svc.start_worker()
        yield srv, svc, client
    finally:
        await client.aclose()
        await svc.close()
        await srv.stop()
        redis.kill()


async def _healthy(client: Client) -> bool:
    return (await client.http.get("/health")).status_code == 200


def _unavailable(r, code: str = "unavailable") -> None:
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == code, r.text
    assert int(r.headers["retry-after"]) >= 1


async def _subscribe(srv: Server, market: int):
    ws = await websockets.connect(srv.ws_url())
    await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"book:{market}"]}))
    return ws


async def test_a_server_started_while_redis_is_down_serves_degraded_then_heals(tmp_path):
    redis = PrivateRedis(tmp_path / "redis")  # not started yet
    # A write that waited for the engine would take request_timeout_s (30 s).
    async with _deployment(tmp_path, redis, services=False, request_timeout_s=30.0) as (
            srv, svc, client):
        r = await client.http.get("/health")
        assert r.status_code == 503
        components = r.json()["components"]
        assert components["bus"]["status"] == components["marketdata"]["status"] == "down"
        assert components["database"]["status"] == "ok"
        token, _ = await client.user(cash=None)  # the database alone serves sign-up
        auth = client.auth(token)
        assert (await client.http.get("/balance", headers=auth)).status_code == 200
        started = time.monotonic()
        order = {"market_id": 1, "outcome": "yes", "side": "buy", "price": "0.5",
                 "quantity": 1}
        writes = [client.http.post("/onramp", json={"amount": "100"}, headers=auth),
                  client.http.post("/orders", headers=auth, json=order),  # the fast path
                  client.http.delete("/orders/1", headers=auth),  # the fast path
                  client.http.post("/orders/batch", json={"orders": [order]}, headers=auth),
                  client.http.patch("/orders/1", json={"quantity": 2}, headers=auth),
                  client.http.delete("/orders", headers=auth),
                  client.http.post("/markets/1/split", json={"quantity": 1}, headers=auth),
                  client.http.post("/admin/events", json={"title": "During the outage"},
                                   headers=client.auth(await client.admin()))]
        for r in await asyncio.gather(*writes):
            _unavailable(r)
        assert time.monotonic() - started < 15, "writes waited instead of failing fast"
        for path in ("/markets/1/orderbook", "/events/1/orderbook"):
            _unavailable(await client.http.get(path), "marketdata_unavailable")
        async with await _subscribe(srv, 1) as ws:
            error = await recv(ws)
            assert error["type"] == "error"
            assert error["data"]["code"] == "marketdata_unavailable"

        redis.start()
        await svc.start_engine()
        await svc.start_worker()
        await until(lambda: _healthy(client), what="the server healed")

        market = await client.market()
        maker, _ = await client.user()
        await client.order(maker, market, "yes", "buy", "0.40", 3)
        book = (await client.http.get(f"/markets/{market}/orderbook")).json()
        assert book["bids"] == [{"price": "0.40", "quantity": 3}]
        async with await _subscribe(srv, market) as ws:
            snapshot = await recv(ws)
            assert snapshot["type"] == "snapshot"
            assert snapshot["data"]["bids"] == [{"price": "0.40", "quantity": 3}]
            await client.order(maker, market, "yes", "buy", "0.41", 2)
            delta = await recv(ws)
            assert (delta["type"], delta["sequence"]) == ("delta", snapshot["sequence"] + 1)


class _BookFeed:
    """A WebSocket book subscriber that checks the sequence and keeps the book."""

    def __init__(self, ws, channel: str) -> None:
        self.ws, self.channel = ws, channel
        self.sequence: int | None = None
        self.bids: dict[str, int] = {}
        self.asks: dict[str, int] = {}
        self.snapshots = 0

    async def run(self) -> None:
        async for raw in self.ws:
            msg = orjson.loads(raw)
            assert msg["channel"] == self.channel, msg
            if self.sequence is not None:
                assert msg["sequence"] == self.sequence + 1, (self.sequence, msg)
            self.sequence = msg["sequence"]
            if msg["type"] == "snapshot":
                self.snapshots += 1
                self.bids = {x["price"]: x["quantity"] for x in msg["data"]["bids"]}
                self.asks = {x["price"]: x["quantity"] for x in msg["data"]["asks"]}
                continue
            assert msg["type"] == "delta", msg
            for change in msg["data"]["changes"]:
                side = self.bids if change["side"] == "bid" else self.asks
                side[change["price"]] = change["quantity"]
                if not change["quantity"]:
                    del side[change["price"]]

    def matches(self, book: dict) -> bool:
        return (self.bids == {x["price"]: x["quantity"] for x in book["bids"]}
                and self.asks == {x["price"]: x["quantity"] for x in book["asks"]})


async def test_redis_killed_under_load_loses_nothing_acknowledged(tmp_path):
    redis = PrivateRedis(tmp_path / "redis", appendonly=True)
    redis.start()
    async with _deployment(tmp_path, redis) as (srv, _svc, client):
        market = await client.market()
        traders = [(await client.user(cash="100000"))[0] for _ in range(4)]
        feed = _BookFeed(await _subscribe(srv, market), f"book:{market}")
        feed_task = asyncio.create_task(feed.run())
        acknowledged: list[tuple[str, int]] = []
        refused = 0
        stop = asyncio.Event()

        async def trade(token: str, seed: int) -> None:
            nonlocal refused
            rng = random.Random(seed)
            for n in itertools.count():
                if stop.is_set():
                    return
                r = await client.http.post("/orders", headers=client.auth(token), json={
                    "market_id": market, "outcome": rng.choice(["yes", "no"]),
                    "side": "buy", "price": f"0.{rng.randint(30, 70)}", "quantity": 1,
                    "client_order_id": f"load-{seed}-{n}"})
                if r.status_code == 201:
                    acknowledged.append((token, r.json()["order"]["id"]))
                else:  # the outage: a clear refusal in the API's shape, never a 500
                    assert r.status_code in (503, 504), r.text  # 504: maybe applied
                    assert set(r.json()["error"]) == {"code", "message"}, r.text
                    assert r.status_code == 504 or int(r.headers["retry-after"]) >= 1
                    refused += 1
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(trade(t, i)) for i, t in enumerate(traders)]
        await until(lambda: _count(acknowledged, 20), what="orders before the outage")
        redis.kill()
        await until(lambda: _positive(lambda: refused), what="orders refused in the outage")
        before_restart = len(acknowledged)
        redis.start()
        await until(lambda: _healthy(client), what="the server healed")
        await until(lambda: _count(acknowledged, before_restart + 20),
                    what="orders after the outage")
        stop.set()
        await asyncio.gather(*tasks)

        for token, order_id in acknowledged:
            r = await client.http.get(f"/orders/{order_id}", headers=client.auth(token))
            assert r.status_code == 200, (order_id, r.text)
        book = (await client.http.get(f"/markets/{market}/orderbook")).json()

        async def feed_caught_up() -> bool:
            return feed.matches(book)
        await until(feed_caught_up, what="the WebSocket book equals the REST book")
        open_total = sum(x["quantity"] for x in book["bids"] + book["asks"])
        assert open_total <= len(acknowledged)
        feed_task.cancel()
        await feed.ws.close()


async def _count(items: list, n: int) -> bool:
    return len(items) >= n


async def _positive(value) -> bool:
    return value() > 0


async def test_redis_restarted_empty_resyncs_market_data_with_fresh_snapshots(tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    async with _deployment(tmp_path, redis) as (srv, _svc, client):
        market = await client.market()
        maker, _ = await client.user()
        first = await client.order(maker, market, "yes", "buy", "0.40", 3)
        r = await client.http.get("/orders", headers=client.auth(maker))  # history: waits
        assert r.status_code == 200  # projected: the database holds it
        async with await _subscribe(srv, market) as ws:
            snapshot = await recv(ws)
            assert snapshot["type"] == "snapshot"

            redis.kill()
            redis.start()  # empty: every stream and group is gone
            fresh = await recv(ws, 20)
            assert fresh["type"] == "snapshot", fresh
            assert fresh["sequence"] == snapshot["sequence"] + 1
            assert fresh["data"]["bids"] == [{"price": "0.40", "quantity": 3}]
            assert srv.runtime.replica.resyncs >= 1
            await until(lambda: _healthy(client), what="the server healed")

            second = await client.order(maker, market, "yes", "buy", "0.41", 2)
            delta = await recv(ws)
            assert (delta["type"], delta["sequence"]) == ("delta", fresh["sequence"] + 1)
            assert delta["data"]["changes"] == [{"side": "bid", "price": "0.41", "quantity": 2}]
        for order in (first, second):
            r = await client.http.get(f"/orders/{order['order']['id']}",
                                      headers=client.auth(maker))
            assert r.status_code == 200, r.text
