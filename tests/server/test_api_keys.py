"""API keys: created once, stored hashed, scoped, revoked at once, last use recorded.

A key works wherever a user token does — FastAPI's routes, the fast order and read
paths, the WebSocket user channel — and a "read" key gets 403 on every state change.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import orjson
import pytest
import websockets
from sqlalchemy import select

from pmarket.db import ApiKey
from pmarket.server.routes.keys import MAX_KEYS

from .test_sessions import assert_closed_for_revocation, every_path, open_user_channel
from .test_websocket import recv_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def create(client, token: str, scopes: list[str], name: str = "bot"):
    return await client.http.post("/api-keys", headers=client.auth(token),
                                  json={"name": name, "scopes": scopes})


async def test_create_shows_the_key_once_and_lists_without_it(client, server):
    token, _ = await client.user("keys")
    r = await create(client, token, ["read", "trade"], "market maker")
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"id", "name", "scopes", "key", "created_at"}
    assert made["key"].startswith("pmk_") and len(made["key"]) == 47
    assert made["scopes"] == ["read", "trade"] and made["name"] == "market maker"
    r = await client.http.get("/api-keys", headers=client.auth(token))
    assert r.status_code == 200
    listed = r.json()
    assert listed["total"] == 1
    assert listed["items"] == [{"id": made["id"], "name": "market maker",
                                "scopes": ["read", "trade"],
                                "created_at": made["created_at"], "last_used_at": None}]
    assert made["key"] not in r.text


async def test_keys_are_stored_as_a_keyed_hash_only(client, server):
    token, _ = await client.user("hashed")
    made = (await create(client, token, ["read"])).json()
    rt = server.runtime

    def stored():
        with rt.db.connect() as conn:
            return conn.execute(select(ApiKey).where(ApiKey.id == made["id"])).one()

    row = await asyncio.to_thread(stored)
    expected = hmac.new(rt.sessions.key_secret, made["key"].encode(),
                        hashlib.sha256).hexdigest()
    assert row.key_hash == expected
    assert made["key"] not in repr(tuple(row))
    assert made["key"][4:] not in row.key_hash


async def test_a_read_key_reads_everywhere_and_changes_nothing(client, server):
    market = await client.market()
    token, _ = await client.user("reader")
    order = (await client.order(token, market, "yes", "buy", "0.03", 1))["order"]["id"]
    key = (await create(client, token, ["read"])).json()["key"]
    h = client.auth(key)
    for path in ("/balance", "/positions", "/portfolio", "/orders", f"/orders/{order}",
                 "/trades", "/me", "/api-keys"):
        r = await client.http.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
    writes = [
        ("POST", "/orders", {"market_id": market, "outcome": "yes", "side": "buy",
                             "price": "0.02", "quantity": 1}),
        ("POST", "/orders/batch", {"orders": []}),
        ("PATCH", f"/orders/{order}", {"price": "0.04"}),
        ("DELETE", f"/orders/{order}", None),
        ("DELETE", "/orders", None),
        ("POST", "/onramp", {"amount": "1"}),
        ("POST", "/offramp", {"amount": "1"}),
        ("POST", f"/markets/{market}/split", {"quantity": 1}),
        ("POST", "/api-keys", {"name": "x", "scopes": ["read"]}),
        ("POST", "/auth/signout-all", None),
    ]
    for method, path, body in writes:
        r = await client.http.request(method, path, headers=h, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    # Nothing happened: the order is still open.
    r = await client.http.get(f"/orders/{order}", headers=client.auth(token))
    assert r.json()["status"] == "open" and r.json()["price"] == "0.03"


async def test_a_trade_key_trades_on_the_fast_path_and_streams_the_user_channel(client,
                                                                               server):
    market = await client.market()
    token, uid = await client.user("trader-key")
    key = (await create(client, token, ["read", "trade"])).json()["key"]
    ws = await open_user_channel(server, client, key)
    try:
        placed = await client.order(key, market, "yes", "buy", "0.11", 2)
        assert placed["order"]["status"] == "open"
        msg = await recv_until(ws, lambda m: m["type"] == "order")
        assert msg["data"]["id"] == placed["order"]["id"]
        r = await client.http.delete(f"/orders/{placed['order']['id']}",
                                     headers=client.auth(key))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        me = (await client.http.get("/me", headers=client.auth(key))).json()
        assert me["id"] == uid and me["role"] == "user"
    finally:
        await ws.close()
    # Keys and sessions are managed with a signed-in token only.
    assert (await create(client, key, ["read"])).status_code == 403
    r = await client.http.post("/auth/signout-all", headers=client.auth(key))
    assert r.status_code == 403


async def test_deleting_a_key_revokes_it_at_once_everywhere(client, server):
    market = await client.market()
    token, _ = await client.user("revoke")
    made = (await create(client, token, ["read", "trade"])).json()
    key = made["key"]
    order = (await client.order(key, market, "yes", "buy", "0.09", 1))["order"]["id"]
    ws = await open_user_channel(server, client, key)
    try:
        r = await client.http.delete(f"/api-keys/{made['id']}", headers=client.auth(token))
        assert r.status_code == 204 and r.content == b""
        await assert_closed_for_revocation(ws)
    finally:
        await ws.close()
    assert await every_path(client, key, market, order) == {401}
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"], "token": key}))
        err = await recv_until(ws, lambda m: m["type"] == "error")
        assert err["data"]["code"] == "unauthenticated"
    # Gone from the list; deleting again, or another user's key, is 404.
    assert (await client.http.get("/api-keys", headers=client.auth(token))).json()[
        "total"] == 0
    r = await client.http.delete(f"/api-keys/{made['id']}", headers=client.auth(token))
    assert r.status_code == 404
    other, _ = await client.user("other")
    theirs = (await create(client, other, ["read"])).json()
    r = await client.http.delete(f"/api-keys/{theirs['id']}", headers=client.auth(token))
    assert r.status_code == 404
    assert (await client.http.get("/balance", headers=client.auth(theirs["key"]))
            ).status_code == 200
    # Signing out everywhere ends sessions, not keys.
    await client.http.post("/auth/signout-all", headers=client.auth(other))
    assert (await client.http.get("/balance", headers=client.auth(theirs["key"]))
            ).status_code == 200


async def test_scopes_names_and_the_limit_of_keys(client):
    token, _ = await client.user("limits")
    for scopes in ([], ["trade"], ["write"], ["read", "admin"], "read", ["read"] * 3):
        r = await create(client, token, scopes)
        assert r.status_code == 422, (scopes, r.text)
        assert r.json()["error"]["code"] == "invalid_field"
    for name in ("", "x" * 101, "a\x00b"):
        assert (await create(client, token, ["read"], name)).status_code == 422
    r = await create(client, token, ["trade", "read", "trade"][:2])
    assert r.status_code == 201 and r.json()["scopes"] == ["read", "trade"]
    for _ in range(MAX_KEYS - 1):
        assert (await create(client, token, ["read"])).status_code == 201
    r = await create(client, token, ["read"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_api_keys"
    first = (await client.http.get("/api-keys?limit=1", headers=client.auth(token))).json()
    assert first["total"] == MAX_KEYS
    await client.http.delete(f"/api-keys/{first['items'][0]['id']}",
                             headers=client.auth(token))
    assert (await create(client, token, ["read"])).status_code == 201


async def test_malformed_keys_are_refused_without_a_database_query(client, server,
                                                                  monkeypatch):
    sessions = server.runtime.sessions

    def no_query(digest):
        raise AssertionError("a malformed key must not reach the database")

    monkeypatch.setattr(sessions, "_read_key", no_query)
    for junk in ("pmk_", "pmk_short", "pmk_" + "x" * 44, "pmk_" + "é" * 43,
                 "pmk_" + "!" * 43):
        header = f"Bearer {junk}".encode("latin-1")
        for path in ("/balance", "/trades"):  # the read path and FastAPI
            r = await client.http.get(path, headers={"Authorization": header})
            assert r.status_code == 401, junk


async def test_last_used_is_shown_and_written_in_batches(client, server):
    token, _ = await client.user("used")
    made = (await create(client, token, ["read"])).json()
    sessions = server.runtime.sessions
    assert (await client.http.get("/balance", headers=client.auth(made["key"]))
            ).status_code == 200
    assert made["id"] in sessions.touched  # pending, not yet written

    def stored():
        with server.runtime.db.connect() as conn:
            return conn.execute(select(ApiKey.last_used_at)
                                .where(ApiKey.id == made["id"])).scalar_one()

    assert await asyncio.to_thread(stored) is None
    listed = (await client.http.get("/api-keys", headers=client.auth(token))).json()
    assert listed["items"][0]["last_used_at"] is not None  # this server's pending use
    await sessions.flush_touches()
    assert made["id"] not in sessions.touched
    written = await asyncio.to_thread(stored)
    assert written is not None
    again = (await client.http.get("/api-keys", headers=client.auth(token))).json()
    assert again["items"][0]["last_used_at"] == listed["items"][0]["last_used_at"]
