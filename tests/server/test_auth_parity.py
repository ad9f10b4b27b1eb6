"""One credential check: the fast paths answer exactly what FastAPI's routes answer.

Each request below is sent with the fast order path and the fast read path on, then
with both off (FastAPI alone), for every kind of credential — a good token, good keys
of both scopes, a bad, expired or revoked token, a revoked key, a disabled user's
token, an admin token (wrong role), none, another scheme — and over the rate limit;
status, body (ids and times aside) and the headers a client acts on must be the same,
and the good ones must have been served by the fast path.
"""

from __future__ import annotations

import time

import jwt
import orjson
import pytest
import websockets

from pmarket.server import fastpath, readpath
from pmarket.server.fastpath import FastPath
from pmarket.server.ratelimit import RateLimiter
from pmarket.server.readpath import ReadPath
from pmarket.server.security import create_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEADERS = ("retry-after", "www-authenticate", "content-type")
VOLATILE = {"id", "created_at", "updated_at", "executed_at"}


def normalized(value):
    """The body without what differs between two equal requests (ids, times)."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


async def credentials(client, server) -> dict[str, str | None]:
    admin = await client.admin()
    token, _ = await client.user("parity")

    async def key(scopes):
        r = await client.http.post("/api-keys", headers=client.auth(token),
                                   json={"name": "parity", "scopes": scopes})
        return r.json()

    trade, read = await key(["read", "trade"]), await key(["read"])
    revoked_key = await key(["read", "trade"])
    await client.http.delete(f"/api-keys/{revoked_key['id']}", headers=client.auth(token))
    gone, _ = await client.user("parity-gone")
    await client.http.post("/auth/signout-all", headers=client.auth(gone))
    disabled, disabled_id = await client.user("parity-disabled")
    await client.http.post(f"/admin/users/{disabled_id}/disable",
                           headers=client.auth(admin))
    secret = server.settings.jwt_secret
    now = int(time.time())

    def signed(**claims):
        """A token signed with the server's own secret, its claims as given."""
        return jwt.encode({"sub": "1", "role": "user", "iat": now, "exp": now + 3600,
                           "ep": 0, **claims}, secret, algorithm="HS256")

    return {
        "token": token, "trade key": trade["key"], "read key": read["key"],
        "bad": "x.y.z", "expired": create_token(1, "user", secret, -60),
        "revoked token": gone, "revoked key": revoked_key["key"],
        "disabled": disabled, "admin": admin, "none": None,
        "unknown key": "pmk_" + "A" * 43,
        # Signed with the right secret, but a claim out of its type or range: 401 on
        # every path, never a 500, never user 1.
        "huge sub": signed(sub="9" * 30), "arabic digit sub": signed(sub="\u0661"),
        "spaced sub": signed(sub=" 1"), "integer sub": signed(sub=1),
        "string exp": signed(exp="9999999999"), "float exp": signed(exp=1e30),
        "unknown role": signed(role="root"), "boolean ep": signed(ep=True),
        "unknown claim": signed(nbf=now), "garbage": "__4.e30.sig",
        "key junk": "pmk_" + "\u0661" * 43,
    }


BAD_CLAIMS = ("huge sub", "arabic digit sub", "spaced sub", "integer sub", "string exp",
              "float exp", "unknown role", "boolean ep", "unknown claim", "garbage",
              "key junk")


async def test_fast_paths_and_fastapi_give_the_same_answers(client, server, monkeypatch):
    market = await client.market()
    creds = await credentials(client, server)
    owner = creds["token"]
    served = 0

    def counting(charge):
        def charged(*args, **kwargs):
            nonlocal served
            served += 1
            return charge(*args, **kwargs)
        return charged

    monkeypatch.setattr(fastpath, "_charge", counting(fastpath._charge))
    monkeypatch.setattr(readpath, "_charge", counting(readpath._charge))
    order = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.02",
             "quantity": 1}

    async def send(method: str, path: str, credential: str | None, scheme="Bearer"):
        if path == "/orders/{fresh}":  # a fresh open order of the owner each time
            placed = await client.order(owner, market, "yes", "buy", "0.01", 1)
            path = f"/orders/{placed['order']['id']}"
        headers = {"Authorization": f"{scheme} {credential}".encode()} if credential else {}
        before = served
        r = await client.http.request(method, path, headers=headers,
                                      json=order if method == "POST" else None)
        body = normalized(r.json()) if r.content else None
        return (r.status_code, body, {h: r.headers.get(h) for h in HEADERS}), served > before

    requests = [("POST", "/orders"), ("DELETE", "/orders/{fresh}"), ("GET", "/balance"),
                ("GET", "/orders?status=open")]
    good = {"token", "trade key"}
    seen: dict[str, set[int]] = {}

    async def compare(name, credential, scheme="Bearer", expect_served=None):
        for method, path in requests:
            monkeypatch.setattr(FastPath, "enabled", True)
            monkeypatch.setattr(ReadPath, "enabled", True)
            fast, fast_served = await send(method, path, credential, scheme)
            monkeypatch.setattr(FastPath, "enabled", False)
            monkeypatch.setattr(ReadPath, "enabled", False)
            slow, slow_served = await send(method, path, credential, scheme)
            assert not slow_served
            assert fast == slow, (name, method, path, fast, slow)
            seen.setdefault(name, set()).add(fast[0])
            if expect_served is not None:
                assert fast_served == expect_served, (name, method, path)

    for name, credential in creds.items():
        # A read key's writes go to FastAPI for the 403, its reads are served.
        await compare(name, credential, expect_served=None if name == "read key"
                      else name in good)
    await compare("basic scheme", owner, scheme="Basic")
    limited, limited_id = await client.user("parity-limited")

    class LimitsOne(RateLimiter):
        def allow(self, key, now=None):
            return 1000.0 if key == ("user", limited_id) else 0.0

    monkeypatch.setattr(server.runtime, "limiter", LimitsOne(1.0, 1))
    await compare("over the rate limit", limited, expect_served=True)
    assert seen["token"] == seen["trade key"] == {200, 201}
    assert seen["read key"] == {200, 403}
    for name in ("bad", "expired", "revoked token", "revoked key", "disabled", "none",
                 "unknown key", "basic scheme", *BAD_CLAIMS):
        assert seen[name] == {401}, name
    assert seen["admin"] == {403}
    assert seen["over the rate limit"] == {429}


async def test_the_websocket_refuses_what_http_refuses_in_the_same_words(client, server):
    creds = await credentials(client, server)
    for name in ("bad", "expired", "revoked token", "disabled", "admin", *BAD_CLAIMS):
        r = await client.http.get("/balance", headers={
            "Authorization": f"Bearer {creds[name]}".encode()})
        async with websockets.connect(server.ws_url()) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"],
                                        "token": creds[name]}))
            answer = orjson.loads(await ws.recv())
        assert answer["type"] == "error", (name, answer)
        assert answer["data"]["code"] == "unauthenticated", (name, answer)
        if r.status_code == 401:  # an admin token: 403 over HTTP, refused here too
            assert answer["data"]["message"] == r.json()["error"]["message"], name
    r = await client.http.get("/balance", headers={"Authorization": b"Bearer __4.e30.sig"})
    assert "malformed token" in r.json()["error"]["message"]


async def test_the_fast_paths_refuse_wrong_typed_values_as_fastapi_does(client, monkeypatch):
    """The fast order path validates with the same request model, the fast read path
    leaves anything but plain digits to FastAPI: wrong-typed values get FastAPI's own
    422 on both, never an order in market 1."""
    market = await client.market()
    token, _ = await client.user("parity-types")
    order = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.02",
             "quantity": 1}
    bodies = [{**order, "market_id": True}, {**order, "market_id": f" {market}"},
              {**order, "market_id": float(market)}, {**order, "post_only": "yes"},
              {**order, "post_only": 1},
              {**order, "time_in_force": "gtd", "expires_at": 99999999999},
              {**order, "time_in_force": "gtd", "expires_at": "99999999999"},
              {**order, "time_in_force": "gtd", "expires_at": 123456789012345.67}]
    reads = [f"/orders?market_id=%2B{market}", "/orders?limit=%2B5", "/orders/%2B1",
             f"/markets/%2B{market}", "/positions?offset=%201"]
    for fast in (True, False):
        monkeypatch.setattr(FastPath, "enabled", fast)
        monkeypatch.setattr(ReadPath, "enabled", fast)
        answers = []
        for body in bodies:
            r = await client.http.post("/orders", json=body, headers=client.auth(token))
            answers.append((r.status_code, r.json()))
        for path in reads:
            r = await client.http.get(path, headers=client.auth(token))
            answers.append((r.status_code, r.json()))
        assert all(status == 422 for status, _ in answers), answers
        if fast:
            fast_answers = answers
        else:
            assert answers == fast_answers
    r = await client.http.get("/orders", headers=client.auth(token))
    assert r.json()["items"] == []  # nothing was placed
