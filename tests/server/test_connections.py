"""Connections that never finish a request cannot stall the exchange (``connections``).

An outside probe opened 20,000 half-sent requests from one address: uvicorn kept every
one open, the process ran out of file descriptors and the embedded engine could no
longer write its snapshots. Now a request must arrive whole within the read deadline
(408 and closed otherwise), one address holds at most so many HTTP connections and the
server so many in all (503 and closed beyond), and every refusal shows in ``/health``
and ``/metrics``. These tests open real TCP connections against a real server.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import orjson
import pytest
import websockets

from pmarket.server.connections import ConnectionGuard

from .harness import Client, start_server


@contextlib.asynccontextmanager
async def serving(tmp_path, **overrides):
    server = await start_server("embedded", tmp_path, **overrides)
    try:
        yield server
    finally:
        await server.stop()


async def connect(server, source: str = "127.0.0.1"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to ``server`` from the loopback address ``source``."""
    host, port = server.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port), local_addr=(source, 0))


async def answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict]:
    """The status and JSON body of the one response a connection gets before it closes
    (a 503 says when to retry)."""
    raw = await asyncio.wait_for(reader.read(), timeout)  # to EOF: the server closed
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"connection: close" in head.lower()
    assert (b"retry-after: 1\r\n" in head.lower()) == (status == 503)
    return status, orjson.loads(body)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


# --- the read deadline ----------------------------------------------------------------


@pytest.mark.parametrize("sent", [
    b"",  # connected, sent nothing
    b"GET /health HTTP/1.1\r\nHost: x\r\n",  # a head that never ends
    b"POST /auth/signin HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
    b"content-length: 100\r\n\r\n{\"email\": ",  # a body that never ends
], ids=["nothing", "half-a-head", "half-a-body"])
async def test_a_request_not_sent_in_time_is_answered_408_and_closed(tmp_path, sent):
    async with serving(tmp_path, request_read_timeout_s=0.3) as server:
        guard = server.runtime.connections
        reader, writer = await connect(server)
        writer.write(sent)
        await writer.drain()
        status, body = await answer(reader)
        assert status == 408
        assert body["error"]["code"] == "request_timeout"
        assert "0.3 s" in body["error"]["message"]
        await wait_until(lambda: guard.open == 0)
        assert guard.timed_out == 1
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = (await client.get("/health")).json()
            metrics = (await client.get("/metrics")).text
        assert health["components"]["connections"]["timed_out"] == 1
        assert health["components"]["connections"]["status"] == "degraded"
        assert "pmarket_http_requests_timed_out_total 1.0" in metrics
        writer.close()


async def test_the_deadline_counts_neither_the_answer_nor_the_pause_between_requests(tmp_path):
    async with serving(tmp_path, request_read_timeout_s=0.3) as server:
        reader, writer = await connect(server)
        for _ in range(3):  # a pause longer than the deadline before each next request
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            await asyncio.sleep(0.6)
        assert server.runtime.connections.timed_out == 0
        writer.close()


# --- how many connections -------------------------------------------------------------


async def test_one_address_holds_at_most_its_share_and_others_are_served(tmp_path):
    async with serving(tmp_path, max_connections_per_address=3,
                       request_read_timeout_s=30) as server:
        guard = server.runtime.connections
        held = [await connect(server) for _ in range(3)]
        await wait_until(lambda: guard.open == 3)
        reader, _ = await connect(server)
        status, body = await answer(reader)
        assert status == 503
        assert body["error"]["code"] == "too_many_connections"
        assert "at most 3" in body["error"]["message"]
        assert guard.refused["address"] == 1 and guard.open == 3
        held[0][1].close()  # one goes: the address may open one again
        await wait_until(lambda: guard.open == 2)
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = (await client.get("/health")).json()["components"]["connections"]
        assert health["status"] == "degraded" and health["refused_address"] == 1
        for _, w in held[1:]:
            w.close()
        await wait_until(lambda: guard.open == 0 and not guard.by_address)


async def test_the_server_holds_at_most_its_total(tmp_path):
    async with serving(tmp_path, max_connections=2, request_read_timeout_s=30) as server:
        guard = server.runtime.connections
        held = [await connect(server) for _ in range(2)]
        await wait_until(lambda: guard.open == 2)
        reader, _ = await connect(server)
        status, body = await answer(reader)
        assert status == 503 and "its most connections (2)" in body["error"]["message"]
        assert guard.refused == {"full": 1, "address": 0}
        for _, w in held:
            w.close()
        await wait_until(lambda: guard.open == 0)


async def test_a_trusted_proxy_is_not_limited_per_address(tmp_path):
    async with serving(tmp_path, max_connections_per_address=2, request_read_timeout_s=30,
                       trusted_proxies=("127.0.0.1",)) as server:
        guard = server.runtime.connections
        held = [await connect(server) for _ in range(5)]
        await wait_until(lambda: guard.open == 5)
        assert guard.refused == {"full": 0, "address": 0}
        for _, w in held:
            w.close()
        await wait_until(lambda: guard.open == 0)


async def test_a_websocket_counts_in_all_but_not_under_its_address(tmp_path):
    async with serving(tmp_path, max_connections_per_address=2,
                       request_read_timeout_s=0.3) as server:
        guard = server.runtime.connections
        sockets = [await websockets.connect(server.ws_url()) for _ in range(3)]
        await asyncio.sleep(0.6)  # past the read deadline: an open WebSocket is not a request
        for ws in sockets:  # each still answers its frames
            await ws.send('{"op": "dance"}')
            answered = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert answered["data"]["code"] == "invalid_op"
        assert guard.open == 3 and not guard.by_address and guard.timed_out == 0
        async with httpx.AsyncClient(base_url=server.url) as client:  # HTTP still admitted
            assert (await client.get("/health")).status_code == 200
        for ws in sockets:
            await ws.close()
        await wait_until(lambda: guard.open == 0)


async def test_a_flood_of_half_sent_requests_leaves_the_exchange_serving(tmp_path):
    """The probe's attack, scaled down: one address opens many more half-sent requests
    than it may; the excess is refused at once, the rest expire, and a trader's orders
    and reads are answered throughout."""
    async with serving(tmp_path, max_connections_per_address=50,
                       request_read_timeout_s=1.0) as server:
        guard = server.runtime.connections
        flood = []
        for _ in range(200):  # the attacker, from another address than the trader's
            reader, writer = await connect(server, source="127.0.0.2")
            writer.write(b"POST /orders HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            flood.append((reader, writer))
        await wait_until(lambda: guard.refused["address"] == 150)
        client = Client(server)
        try:
            token, _ = await client.user()
            market = await client.market()
            placed = await client.order(token, market, "yes", "buy", "0.40", 10)
            balance = await client.http.get("/balance", headers=client.auth(token))
            health = (await client.http.get("/health")).json()["components"]
        finally:
            await client.aclose()
        assert placed["order"]["status"] == "open" and balance.status_code == 200
        assert health["engine"]["status"] == "ok"
        assert health["connections"]["refused_address"] == 150
        answers = await asyncio.gather(*(answer(r) for r, _ in flood))
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(408) == 50 and statuses.count(503) == 150, statuses
        for _, w in flood:
            w.close()
        await wait_until(lambda: guard.open == 0)


# --- the guard itself -----------------------------------------------------------------


def test_the_guard_refuses_bad_limits():
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionGuard(10, 0, 1.0)
    with pytest.raises(ValueError, match="above 0"):
        ConnectionGuard(10, 1, 0)
    assert ConnectionGuard(0, 1, 1.0).max_total >= 64  # derived from the fd limit
