"""Sessions: sign-out everywhere, disabled users, and revocation on every path and server.

A revoked credential must be refused at once (401) by FastAPI's routes, the fast order
path, the fast read path and the WebSocket user channel (an open one is closed); on a
second server of a deployment within milliseconds (the bus's doorbell), within
``auth_sync_s`` without it, and a server that cannot sync refuses rather than trust
its cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import httpx
import orjson
import pytest
import sqlalchemy as sa
import websockets

from pmarket.server.security import create_token, decode_token
from tests.bus.private_redis import PrivateRedis

from .faults import TcpProxy
from .test_readmodel import second_server
from .test_websocket import recv, recv_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def open_user_channel(server, client, credential: str):
    """A WebSocket subscribed to ``user`` with ``credential`` (a trading one), proven
    live by a message."""
    ws = await websockets.connect(server.ws_url())
    await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                "token": credential}))
    await prove_live(ws, client, credential)
    return ws


async def prove_live(ws, client, credential: str) -> None:
    """Deposit until the user channel shows a balance: the subscription (processed
    concurrently with HTTP requests) is in place."""
    for _ in range(50):
        r = await client.http.post("/onramp", json={"amount": "1"},
                                   headers=client.auth(credential))
        assert r.status_code == 200, r.text
        with contextlib.suppress(TimeoutError):
            await recv_until(ws, lambda m: m["type"] == "balance", timeout=0.2)
            return
    raise AssertionError("the user channel never showed a balance")


async def assert_closed_for_revocation(ws) -> None:
    err = await recv_until(ws, lambda m: m["type"] == "error", timeout=5)
    assert err["data"]["code"] == "unauthenticated"
    with pytest.raises(websockets.ConnectionClosed):
        await recv(ws)


async def every_path(client, credential: str, market: int, order_id: int) -> set[int]:
    """The statuses of one request on each path a credential opens."""
    h = client.auth(credential)
    answers = [
        await client.http.get("/balance", headers=h),  # read path
        await client.http.get("/orders?status=open", headers=h),  # read path
        await client.http.get("/trades", headers=h),  # FastAPI
        await client.http.post("/orders", headers=h, json={  # fast path
            "market_id": market, "outcome": "yes", "side": "buy", "price": "0.01",
            "quantity": 1}),
        await client.http.delete(f"/orders/{order_id}", headers=h),  # fast path
        await client.http.post("/onramp", headers=h, json={"amount": "1"}),  # FastAPI
    ]
    for r in answers:
        if r.status_code == 401:
            assert r.json()["error"]["code"] == "unauthenticated"
            assert r.headers["www-authenticate"] == "Bearer"
    return {r.status_code for r in answers}


async def signin(client, email: str) -> httpx.Response:
    return await client.http.post("/auth/signin", json={
        "email": email, "password": "harness trader key"})


async def new_user(client, name: str) -> tuple[str, int, str]:
    token, uid = await client.user(name)
    email = (await client.http.get("/me", headers=client.auth(token))).json()["email"]
    return token, uid, email


async def test_signout_all_revokes_every_token_on_every_path_and_the_websocket(client,
                                                                              server):
    market = await client.market()
    first, _, email = await new_user(client, "so")
    second = (await signin(client, email)).json()["token"]
    order = (await client.order(first, market, "yes", "buy", "0.05", 1))["order"]["id"]
    ws = await open_user_channel(server, client, second)
    try:
        r = await client.http.post("/auth/signout-all", headers=client.auth(first))
        assert r.status_code == 204 and r.content == b""
        await assert_closed_for_revocation(ws)
    finally:
        await ws.close()
    for token in (first, second):
        assert await every_path(client, token, market, order) == {401}
    fresh = (await signin(client, email)).json()["token"]
    assert (await client.http.get("/balance", headers=client.auth(fresh))).status_code == 200
    # The order survives a sign-out (it is not a disabling): the new session cancels it.
    r = await client.http.delete(f"/orders/{order}", headers=client.auth(fresh))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_an_open_user_channel_ends_when_its_token_expires(client, server):
    """A token is good until its expiry, on an open WebSocket too: the user channel
    subscribed with it gets ``unauthenticated`` and the connection closes then, as on a
    revocation. A fresh subscription on the connection carries the fresh token's
    expiry instead; a connection that unsubscribed ``user`` keeps its public
    channels."""
    long_lived, uid = await client.user("expiring")
    secret = server.settings.jwt_secret
    epoch = decode_token(long_lived, secret).epoch
    short = create_token(uid, "user", secret, ttl_s=2, epoch=epoch)
    ws = await open_user_channel(server, client, short)
    try:
        started = time.monotonic()
        await assert_closed_for_revocation(ws)
        assert time.monotonic() - started < 4
    finally:
        await ws.close()
    # Renewed in time: the later token's expiry counts, not the first one's.
    ws = await open_user_channel(server, client, create_token(uid, "user", secret, ttl_s=3,
                                                              epoch=epoch))
    try:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                    "token": long_lived}))
        await asyncio.sleep(3.5)
        await prove_live(ws, client, long_lived)
    finally:
        await ws.close()
    # Unsubscribed from ``user`` before the expiry: the public channels stay open.
    market = await client.market()
    ws = await open_user_channel(server, client, create_token(uid, "user", secret, ttl_s=2,
                                                              epoch=epoch))
    try:
        await ws.send(orjson.dumps({"op": "unsubscribe", "channels": ["user"]}))
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [f"book:{market}"]}))
        await recv_until(ws, lambda m: m["type"] == "snapshot")
        await asyncio.sleep(2.5)
        await client.order(long_lived, market, "yes", "buy", "0.10", 1)
        delta = await recv_until(ws, lambda m: m["type"] != "balance")
        assert delta["type"] == "delta", delta
    finally:
        await ws.close()


async def test_disable_refuses_tokens_and_keys_cancels_orders_and_enable_restores(client,
                                                                                  server):
    admin = client.auth(await client.admin())
    market = await client.market()
    token, uid, email = await new_user(client, "dis")
    key = (await client.http.post("/api-keys", headers=client.auth(token), json={
        "name": "bot", "scopes": ["read", "trade"]})).json()["key"]
    order = (await client.order(token, market, "yes", "buy", "0.07", 2))["order"]["id"]
    ws = await open_user_channel(server, client, key)
    try:
        r = await client.http.post(f"/admin/users/{uid}/disable", headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == uid and body["disabled"] is True and body["disabled_at"]
        await assert_closed_for_revocation(ws)
    finally:
        await ws.close()
    book = (await client.http.get(f"/markets/{market}/orderbook")).json()
    assert book["bids"] == []  # the open order was cancelled
    for credential in (token, key):
        assert await every_path(client, credential, market, order) == {401}
    r = await signin(client, email)
    assert r.status_code == 403 and r.json()["error"]["code"] == "account_disabled"
    users = (await client.http.get("/admin/users?limit=500", headers=admin)).json()["items"]
    assert next(u for u in users if u["id"] == uid)["disabled"] is True
    # Twice is harmless; enabling lets them in again, keys too, old tokens stay dead.
    assert (await client.http.post(f"/admin/users/{uid}/disable", headers=admin)
            ).status_code == 200
    r = await client.http.post(f"/admin/users/{uid}/enable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert r.json()["disabled_at"] is None
    assert (await client.http.get("/balance", headers=client.auth(token))).status_code == 401
    assert (await client.http.get("/balance", headers=client.auth(key))).status_code == 200
    fresh = (await signin(client, email)).json()["token"]
    assert (await client.http.get("/balance", headers=client.auth(fresh))).status_code == 200


async def test_disable_and_enable_need_an_admin_and_a_known_user(client):
    token, uid, _ = await new_user(client, "who")
    admin = client.auth(await client.admin())
    r = await client.http.post(f"/admin/users/{uid}/disable", headers=client.auth(token))
    assert r.status_code == 403
    for action in ("disable", "enable"):
        r = await client.http.post(f"/admin/users/999999999/{action}", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await client.http.post(f"/admin/users/0/{action}", headers=admin)
        assert r.status_code == 422
    r = await client.http.post("/auth/signout-all", headers=admin)
    assert r.status_code == 403  # an admin token is not a user's session
    assert (await client.http.post("/auth/signout-all")).status_code == 401


async def test_a_token_of_a_removed_user_is_refused(client, server):
    """A user row deleted by hand: refused once the cached state is re-read."""
    token, uid, _ = await new_user(client, "gone")
    rt = server.runtime
    rt.sessions.users.pop(uid, None)  # as if ``auth_cache_s`` had passed
    from sqlalchemy import delete

    from pmarket.db import User

    def remove() -> None:
        with rt.db.begin() as conn:
            conn.execute(delete(User).where(User.id == uid))

    await asyncio.to_thread(remove)
    for path in ("/balance", "/trades"):  # the read path and FastAPI
        r = await client.http.get(path, headers=client.auth(token))
        assert r.status_code == 401
    rt.sessions.users.pop(uid, None)  # SQLite may hand the id out again


@contextlib.asynccontextmanager
async def other_server(server, **overrides):
    if server.kind != "deployment":
        pytest.skip("an embedded exchange is one server")
    async with (second_server(replace(server.settings, **overrides)) as (url, app),
                httpx.AsyncClient(base_url=url, timeout=30) as http):
        yield http, app.state.runtime


async def wait_status(http, token: str, status: int, within_s: float) -> float:
    start = time.monotonic()
    while True:
        r = await http.get("/balance", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < within_s, r.text
        await asyncio.sleep(0.01)


async def test_another_server_learns_of_a_revocation_from_the_bus_at_once(client, server):
    async with other_server(server, auth_sync_s=60.0, auth_max_stale_s=120.0) as (http, _):
        token, _, _ = await new_user(client, "far")
        await wait_status(http, token, 200, 5)
        r = await client.http.post("/auth/signout-all", headers=client.auth(token))
        assert r.status_code == 204
        # Its own poll would take 60 s: the doorbell on the bus brings it.
        assert await wait_status(http, token, 401, 3) < 3


async def test_with_its_redis_down_a_server_learns_of_a_revocation_by_the_poll(
        client, server, tmp_path):
    """The second server's Redis is down for real (a private ``redis-server`` never
    started): no doorbell reaches it, its database poll brings the revocation within
    ``auth_sync_s``."""
    if server.kind != "deployment":
        pytest.skip("an embedded exchange is one server")
    redis = PrivateRedis(tmp_path / "redis")  # down
    async with other_server(server, redis_url=redis.url, auth_sync_s=0.3) as (http, _):
        token, _, _ = await new_user(client, "poll")
        await wait_status(http, token, 200, 10)
        await client.http.post("/auth/signout-all", headers=client.auth(token))
        assert await wait_status(http, token, 401, 3) < 3


async def test_a_server_cut_from_the_database_refuses_after_the_bound_and_heals(client,
                                                                                server):
    """The second server reaches PostgreSQL through a proxy that is cut for real: it
    cannot learn of a revocation made meanwhile, so after ``auth_max_stale_s`` it
    refuses user credentials (503, ``/health`` auth down) instead of trusting its cache;
    restored, it applies the revocation and serves the others again."""
    if server.kind != "deployment":
        pytest.skip("an embedded exchange is one server")
    url = sa.make_url(server.settings.database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    try:
        async with other_server(server, database_url=proxied, auth_sync_s=0.1,
                                auth_max_stale_s=1.0) as (http, _):
            revoked, _, _ = await new_user(client, "cut")
            kept, _, _ = await new_user(client, "kept")
            for token in (revoked, kept):
                await wait_status(http, token, 200, 5)
            proxy.cut()
            await client.http.post("/auth/signout-all", headers=client.auth(revoked))
            for token in (revoked, kept):
                await wait_status(http, token, 503, 10)
            r = await http.get("/balance", headers={"Authorization": f"Bearer {kept}"})
            assert r.json()["error"]["code"] == "auth_unavailable"
            assert r.headers["retry-after"] == "1"
            health = (await http.get("/health")).json()
            assert health["components"]["auth"]["status"] == "down"
            proxy.restore()
            await wait_status(http, revoked, 401, 15)
            await wait_status(http, kept, 200, 5)
            assert (await http.get("/health")).json()["components"]["auth"]["status"] == "ok"
    finally:
        proxy.close()


async def test_health_reports_the_credential_sync(client):
    auth = (await client.http.get("/health")).json()["components"]["auth"]
    assert auth["status"] == "ok" and "synced" in auth["detail"]


async def test_a_database_outage_while_loading_a_credential_is_a_503_everywhere(
        client, server, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from pmarket.server.fastpath import FastPath
    from pmarket.server.readpath import ReadPath

    market = await client.market()
    token, uid, _ = await new_user(client, "outage")
    sessions = server.runtime.sessions

    def down(*args):
        raise OperationalError("SELECT", {}, Exception("connection refused (test)"))

    monkeypatch.setattr(sessions, "_read_user", down)
    sessions.users.pop(uid, None)  # not cached: it must be loaded
    answers = []
    for fast in (True, False):
        monkeypatch.setattr(FastPath, "enabled", fast)
        monkeypatch.setattr(ReadPath, "enabled", fast)
        for method, path, body in (("GET", "/balance", None), ("POST", "/orders", {
                "market_id": market, "outcome": "yes", "side": "buy", "price": "0.01",
                "quantity": 1})):
            r = await client.http.request(method, path, json=body,
                                          headers=client.auth(token))
            answers.append((r.status_code, r.json()["error"]["code"]))
    assert set(answers) == {(503, "database_unavailable")}
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                    "token": token}))
        err = await recv(ws)
        assert err["data"]["code"] == "database_unavailable"
        monkeypatch.undo()
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                    "token": token}))  # still open, and now it works
        await prove_live(ws, client, token)
