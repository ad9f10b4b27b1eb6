"""Time over HTTP: the dead-man switch (``/heartbeat``) and events closing at their
close time, in both deployment kinds, with the usual ``user`` WebSocket messages.

The module's server is its own: its tests move the engine service's clock forward
(``Clock``) instead of waiting for seconds to pass, and the engine's time never goes
back, so no other module's server may share it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import orjson
import pytest
import websockets

from tests.server.harness import Clock, iso, pushed_clock

from .test_websocket import recv_until

pytestmark = pytest.mark.asyncio(loop_scope="module")



@pytest.fixture(scope="module")
def clock(server) -> Clock:
    return pushed_clock(server.engine_service)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)



async def open_orders(client, token) -> list[int]:
    r = await client.http.get("/orders", params={"status": "open"}, headers=client.auth(token))
    return [o["id"] for o in r.json()["items"]]


async def eventually(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def beat(client, token, timeout_s: int = 5, expect: int = 200) -> dict:
    r = await client.http.post("/heartbeat", json={"timeout_s": timeout_s},
                               headers=client.auth(token))
    assert r.status_code == expect, r.text
    return r.json()


# --- the contract ------------------------------------------------------------------------


async def test_a_heartbeat_arms_the_switch_until_the_engines_time_plus_the_timeout(
        client, clock):
    token, _ = await client.user()
    before = clock()
    body = await beat(client, token, 30)
    assert set(body) == {"expires_at", "timeout_s", "fired_at"}
    assert before + 30_000 <= ms(body["expires_at"]) <= clock() + 30_000
    assert body["timeout_s"] == 30 and body["fired_at"] is None
    r = await client.http.delete("/heartbeat", headers=client.auth(token))
    assert r.status_code == 204 and r.content == b""
    r = await client.http.delete("/heartbeat", headers=client.auth(token))
    assert r.status_code == 204  # off already: still fine


@pytest.mark.parametrize("body", [
    {"timeout_s": 4}, {"timeout_s": 301}, {"timeout_s": 0}, {"timeout_s": -5},
    {"timeout_s": "10"}, {"timeout_s": 10.5}, {"timeout_s": True}, {"timeout_s": None},
    {}, {"timeout_s": 10, "user_id": 1}, [], {"timeout_s": 10**30}])
async def test_a_bad_heartbeat_is_422(client, clock, body):
    token, _ = await client.user(cash=None)
    r = await client.http.post("/heartbeat", json=body, headers=client.auth(token))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_field"


async def test_the_switch_is_a_users_own(client, clock):
    for method in ("POST", "DELETE"):
        r = await client.http.request(method, "/heartbeat", json={"timeout_s": 10})
        assert r.status_code == 401
        r = await client.http.request(method, "/heartbeat", json={"timeout_s": 10},
                                      headers=client.auth(await client.admin()))
        assert r.status_code == 403


# --- firing ------------------------------------------------------------------------------


async def test_a_missed_deadline_cancels_every_open_order_with_the_usual_messages(
        client, server, clock):
    market = await client.market()
    token, _ = await client.user()
    other, _ = await client.user()
    ids = [(await client.order(token, market, "yes", "buy", p, 2))["order"]["id"]
           for p in ("0.30", "0.31")]
    kept = (await client.order(other, market, "yes", "buy", "0.29", 1))["order"]["id"]
    expires_at = ms((await beat(client, token, 5))["expires_at"])
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"], "token": token}))
        await asyncio.sleep(0.05)
        clock.offset += expires_at - clock()  # the engine's time reaches the deadline
        seen = {}
        while len(seen) < 2:
            msg = await recv_until(ws, lambda m: m["type"] == "order")
            seen[msg["data"]["id"]] = msg["data"]["status"]
        assert seen == dict.fromkeys(ids, "cancelled")
        balance = await recv_until(ws, lambda m: m["type"] == "balance")
        assert balance["data"]["reserved"] == "0.0000"
    await eventually(lambda: _empty(client, token), "the orders gone from /orders")
    assert await open_orders(client, other) == [kept]
    # Off now; the next heartbeat arms it again and says it fired.
    body = await beat(client, token, 5)
    assert ms(body["fired_at"]) >= expires_at
    assert (await beat(client, token, 5))["fired_at"] is None
    await client.http.delete("/heartbeat", headers=client.auth(token))


async def _empty(client, token) -> bool:
    return await open_orders(client, token) == []


async def test_a_disarmed_switch_never_cancels_anything(client, clock):
    market = await client.market()
    token, _ = await client.user()
    before = (await client.order(token, market, "yes", "buy", "0.30", 1))["order"]["id"]
    expires_at = ms((await beat(client, token, 5))["expires_at"])
    r = await client.http.delete("/heartbeat", headers=client.auth(token))
    assert r.status_code == 204
    after = (await client.order(token, market, "yes", "buy", "0.31", 1))["order"]["id"]
    clock.offset += expires_at - clock() + 1_000
    await client.order(token, market, "yes", "buy", "0.20", 1)  # a command at the new time
    assert set(await open_orders(client, token)) >= {before, after}
    assert (await beat(client, token, 5))["fired_at"] is None


# --- close time ----------------------------------------------------------------------------


async def test_an_event_closes_at_its_close_time_and_its_orders_are_cancelled(
        client, server, clock):
    close_at = clock() + 60_000
    event = await client.event(close_time=iso(close_at))
    market = event["outcomes"][0]["market_id"]
    token, _ = await client.user()
    order = (await client.order(token, market, "yes", "buy", "0.40", 3))["order"]["id"]
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"], "token": token}))
        await asyncio.sleep(0.05)
        clock.offset += close_at - clock()
        msg = await recv_until(ws, lambda m: m["type"] == "order")
        assert (msg["data"]["id"], msg["data"]["status"]) == (order, "cancelled")

    async def closed() -> bool:
        r = await client.http.get(f"/events/{event['id']}")
        return r.json()["status"] == "closed"

    await eventually(closed, "the event to show closed")
    assert (await client.http.get(f"/markets/{market}")).json()["status"] == "closed"
    await client.order(token, market, "yes", "buy", "0.40", 1, expect=409)


async def test_a_close_time_in_the_past_creates_a_closed_event(client, clock):
    event = await client.event(close_time=iso(clock() - 1_000))
    assert event["status"] == "closed"
    r = await client.http.patch(f"/admin/events/{event['id']}", json={"status": "active"},
                                headers=client.auth(await client.admin()))
    assert r.status_code == 200 and r.json()["status"] == "active"  # an operator's choice


# --- what a reply holds --------------------------------------------------------------------


async def test_a_reply_holds_only_its_own_commands_events_not_what_its_time_made_due(
        client, server, clock):
    """B's order is the first command past A's gtd expiry, A's dead-man deadline and
    another event's close time: all three fire just before it, in its batch, yet B's
    answer is B's order alone (it once was A's expired order: the first ``order`` event)."""
    service = server.engine_service
    service.expire_every_s = 3600.0  # no tick: B's command must be the one that fires them
    try:
        market = await client.market()
        a, _ = await client.user("a")
        b, _ = await client.user("b")
        now = clock()
        other = (await client.event(close_time=iso(now + 60_000)))["outcomes"][0]["market_id"]
        gtd = await client.order(a, market, "yes", "buy", "0.10", 1, time_in_force="gtd",
                                 expires_at=iso(now + 30_000))
        await client.order(a, other, "yes", "buy", "0.11", 1)
        await client.order(a, market, "yes", "buy", "0.12", 1)
        expires_at = ms((await beat(client, a, 5))["expires_at"])
        clock.offset += max(expires_at, now + 60_000) - clock() + 1
        placed = await client.order(b, market, "yes", "buy", "0.20", 3)
        assert placed["order"]["price"] == "0.20" and placed["order"]["quantity"] == 3
        assert placed["order"]["status"] == "open" and placed["trades"] == []
        r = await client.http.get(f"/orders/{gtd['order']['id']}", headers=client.auth(a))
        assert r.json()["status"] == "expired"
        assert await open_orders(client, a) == []
        r = await client.http.post("/onramp", json={"amount": "1"}, headers=client.auth(b))
        assert r.json()["available"] == "1000.4000"  # 1000 - 0.60 reserved + 1
    finally:
        service.expire_every_s = 0.02
