"""WebSocket limits: every frame and every connection has a bounded cost.

An unauthenticated frame naming one deep book 199 times used to build 199 snapshots and
block the event loop; names like ``book:02`` subscribed to a channel that never updated.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
import pytest_asyncio
import websockets

from pmarket.server import websocket as ws_module

from .harness import Client, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("ws_limits"),
                             ws_max_channels=5, ws_max_connections_per_address=3,
                             ws_subscribe_per_s=0.01, ws_subscribe_burst=1_000)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def recv(ws, timeout: float = 5.0) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_more(ws, wait: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    return False


async def subscribe(ws, *channels: str) -> None:
    await ws.send(orjson.dumps({"op": "subscribe", "channels": list(channels)}))


async def test_a_channel_named_many_times_in_a_frame_costs_one_snapshot(limited, monkeypatch):
    market = await limited.market()
    built = []
    real = ws_module.book_view
    monkeypatch.setattr(ws_module, "book_view", lambda m: built.append(m.id) or real(m))
    async with websockets.connect(limited.server.ws_url()) as ws:
        await subscribe(ws, *[f"book:{market}"] * 199)
        assert (await recv(ws))["type"] == "snapshot"
        assert await nothing_more(ws)
    assert built == [market]


async def test_subscribers_of_one_moment_share_one_encoded_snapshot(limited, monkeypatch):
    market = await limited.market()
    built = []
    real = ws_module.book_view
    monkeypatch.setattr(ws_module, "book_view", lambda m: built.append(m.id) or real(m))
    async with websockets.connect(limited.server.ws_url()) as a, \
            websockets.connect(limited.server.ws_url()) as b:
        await subscribe(a, f"book:{market}")
        await subscribe(b, f"book:{market}")
        assert await a.recv() == await b.recv()
    assert built == [market]


async def test_only_canonical_channel_names_are_accepted(limited):
    market = await limited.market()
    async with websockets.connect(limited.server.ws_url()) as ws:
        for name in (f"book:0{market}", f"book:+{market}", f"trades:0{market}", "book:0",
                     f"BOOK:{market}", f"book:{market} "):
            await subscribe(ws, name)
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["data"]["code"] == "unknown_channel", name
        await subscribe(ws, f"book:{market}")
        assert (await recv(ws))["type"] == "snapshot"


async def test_a_connection_holds_at_most_max_channels(limited):
    markets = [await limited.market() for _ in range(6)]
    async with websockets.connect(limited.server.ws_url()) as ws:
        await subscribe(ws, *[f"trades:{m}" for m in markets])
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["data"]["code"] == "too_many_channels"
        await subscribe(ws, *[f"trades:{m}" for m in markets[:5]])
        assert await nothing_more(ws)
        await subscribe(ws, f"trades:{markets[0]}")          # already held: no new channel
        assert await nothing_more(ws)


async def test_connections_per_address_are_capped_at_the_handshake(limited):
    url = limited.server.ws_url()
    async with websockets.connect(url), websockets.connect(url), websockets.connect(url):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "1"
        assert b"rate_limited" in refused.value.response.body
    async with websockets.connect(url) as ws:                 # the count went down again
        await subscribe(ws, "nothing:1")
        assert (await recv(ws))["data"]["code"] == "unknown_channel"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_subscriber(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("ws_rate"),
                             ws_subscribe_per_s=0.01, ws_subscribe_burst=3)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def test_subscriptions_are_rate_limited_per_address(slow_subscriber):
    markets = [await slow_subscriber.market() for _ in range(4)]
    async with websockets.connect(slow_subscriber.server.ws_url()) as ws:
        await subscribe(ws, *[f"trades:{m}" for m in markets])
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["data"]["code"] == "rate_limited"
        assert f"trades:{markets[3]}" in msg["data"]["message"]
    async with websockets.connect(slow_subscriber.server.ws_url()) as ws:
        await subscribe(ws, f"trades:{markets[0]}")          # the address, not the socket
        assert (await recv(ws))["data"]["code"] == "rate_limited"


class FakeSocket:
    """The two ends of a WebSocket as ``websocket._connection`` uses them: frames the
    client sent (``incoming``, read by the server in order) and what came back."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.sent: list[dict] = []

    def client_sends(self, *frames: bytes) -> None:
        for frame in frames:
            self.incoming.put_nowait({"type": "websocket.receive", "bytes": frame})

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(orjson.loads(text))

    async def close(self, code: int = 1000) -> None:
        pass


async def until(predicate, limit: int = 1_000) -> None:
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def test_frames_beyond_an_addresses_budget_are_left_unread(monkeypatch):
    """A client that keeps sending after its budget (junk, unsubscriptions, ignored
    ``rate_limited`` answers) is not read further, so it costs nothing, and stays
    connected; another address is served meanwhile."""
    hub = ws_module.Hub(ws_module.WsLimits(messages=ws_module.RateLimiter(1e-6, 3)))
    flooder, other = FakeSocket(), FakeSocket()
    junk = b'{"op": "nonsense"}'
    flooder.client_sends(*[junk] * 5)
    tasks = [asyncio.create_task(ws_module._connection(sock, address, hub, None, "", None))
             for sock, address in ((flooder, "10.0.0.1"), (other, "10.0.0.2"))]
    try:
        await until(lambda: len(flooder.sent) == 3)
        await asyncio.sleep(0.05)
        assert [m["data"]["code"] for m in flooder.sent] == ["invalid_op"] * 3
        assert flooder.incoming.qsize() == 1  # the 4th frame waits for a token, the 5th unread
        assert not any(t.done() for t in tasks)
        other.client_sends(junk)
        await until(lambda: len(other.sent) == 1)
        assert len(flooder.sent) == 3
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
