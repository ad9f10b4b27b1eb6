"""``ReadPath`` answers exactly what FastAPI answers, and serves the ordinary reads.

Every request below is sent twice, with the middleware on and off; status, body and the
headers a client acts on must be the same. Ordinary requests must be served by it
(counted), unusual ones (bad tokens, unknown or repeated parameters, encoded or
out-of-range values, other methods) must reach FastAPI.
"""

from __future__ import annotations

import orjson
import pytest

from pmarket.server import readpath
from pmarket.server.marketdata import book_view
from pmarket.server.readpath import ReadPath
from pmarket.server.routes import events

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEADERS = ("retry-after", "www-authenticate", "content-type", "allow")


async def test_same_answers_as_fastapi_and_ordinary_reads_served(server, client,
                                                                  monkeypatch):
    event = await client.event(["Up", "Down"], category="rp-cat")
    market = event["outcomes"][0]["market_id"]
    token, _ = await client.user("rp")
    other, _ = await client.user("rp-other")
    for price in ("0.10", "0.20", "0.30"):
        await client.order(token, market, "yes", "buy", price, 1)
    mine = (await client.order(token, market, "yes", "buy", "0.40", 3))["order"]["id"]
    theirs = (await client.order(other, market, "no", "buy", "0.50", 2))["order"]["id"]
    admin = await client.admin()
    e = event["id"]
    ordinary = [
        "/balance", "/positions", "/portfolio", "/orders", "/orders?status=open",
        "/orders?status=all&limit=2&offset=1", f"/orders?status=open&market_id={market}",
        f"/positions?market_id={market}&event_id={e}&limit=500&offset=0",
        f"/orders/{mine}", f"/orders/{theirs}", "/orders/999999999",
        "/events", "/events?category=rp-cat", "/events?status=active&limit=1",
        "/events?q=Event", f"/events/{e}", "/events/4611686018427387904",
        f"/markets/{market}", "/markets/1234567", f"/markets/{market}/orderbook",
        f"/markets/{market}/orderbook?view=no&depth=1",
    ]
    unusual = [
        "/orders?status=closed", "/orders?limit=0", "/orders?limit=501", "/orders?limit=05",
        "/orders?offset=-1", "/orders?offset=1000000001", "/orders?market_id=0",
        "/orders?market_id=4611686018427387905", "/orders?status=open&status=all",
        "/orders?unknown=1", "/orders?limit", "/orders?limit=", "/events?category=",
        "/events?category=rp%2Dcat", "/events?q=" + "x" * 201, "/events?category=" + "y" * 101,
        "/orders/0", "/orders/4611686018427387905", "/orders/abc", "/orders/",
        "/events/00", f"/markets/{market}/orderbook?depth=1001", f"/markets/{market}/trades",
        "/balance/", "/positions?market_id=1.0",
    ]
    tokens = [("user", token), ("admin", admin), ("none", None), ("bad", "x.y.z")]
    served = 0
    charge = readpath._charge

    def counting(*args, **kwargs):
        nonlocal served
        served += 1
        return charge(*args, **kwargs)

    monkeypatch.setattr(readpath, "_charge", counting)

    async def ask(path: str, who: str | None, method: str = "GET"):
        headers = {"Authorization": f"Bearer {who}"} if who else {}
        r = await client.http.request(method, path, headers=headers)
        return r.status_code, r.content, {h: r.headers.get(h) for h in HEADERS}

    for path in ordinary + unusual:
        for name, who in tokens:
            for method in ("GET", "HEAD") if path == "/balance" else ("GET",):
                monkeypatch.setattr(ReadPath, "enabled", True)
                before = served
                fast = await ask(path, who, method)
                fast_served = served > before
                monkeypatch.setattr(ReadPath, "enabled", False)
                slow = await ask(path, who, method)
                assert fast == slow, (path, name, method)
                user_route = not path.startswith(("/events", "/markets"))
                expect = (method == "GET" and path in ordinary
                          and (name == "user" or not user_route))
                assert fast_served == expect, (path, name, method)
    assert served > 0


async def test_a_memoized_event_list_follows_every_change_at_once(client):
    """``GET /events`` is built once per state (``ReadModel.memo``): read again and
    again it is the same, and the read right after a change (a new order, an edited
    event, a new event) already shows it."""
    event = await client.event(["Up", "Down"], category="memo-cat")
    market = event["outcomes"][0]["market_id"]
    token, _ = await client.user("memo")

    async def listed() -> dict:
        r = await client.http.get("/events", params={"category": "memo-cat"})
        assert r.status_code == 200, r.text
        return r.json()

    first = await listed()
    assert await listed() == first
    assert first["items"][0]["outcomes"][0]["best_bid"] is None
    await client.order(token, market, "yes", "buy", "0.40", 1)
    assert (await listed())["items"][0]["outcomes"][0]["best_bid"] == "0.40"
    r = await client.http.patch(f"/admin/events/{event['id']}", json={"title": "Renamed"},
                                headers=client.auth(await client.admin()))
    assert r.status_code == 200, r.text
    assert (await listed())["items"][0]["title"] == "Renamed"
    await client.event(["A", "B"], category="memo-cat", title="Newer")
    now = await listed()
    assert now["total"] == 2 and now["items"][0]["title"] == "Newer"


async def test_a_cached_book_page_follows_every_change_at_once(server, client):
    """``GET /markets/{id}/orderbook`` and ``GET /events/{id}/orderbook`` are encoded
    once per state of the books (``Replica.page``): read again they are the same bytes,
    and the read right after an order, a cancellation or a trade (new last price) shows
    it, in both views and at every depth — byte for byte what the books give built
    afresh."""
    market = await client.market()
    maker, _ = await client.user("page-maker")
    taker, _ = await client.user("page-taker")
    replica = server.runtime.replica

    async def pages() -> list[bytes]:
        out = []
        for params in ({}, {"view": "no"}, {"depth": "1"}, {"view": "no", "depth": "2"}):
            r = await client.http.get(f"/markets/{market}/orderbook", params=params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            fresh = book_view(replica.markets[market], params.get("view", "yes"),
                              int(params["depth"]) if "depth" in params else None)
            assert r.content == orjson.dumps(fresh), params
            out.append(r.content)
        event_id = replica.markets[market].event_id
        for depth in (None, 1):
            r = await client.http.get(f"/events/{event_id}/orderbook",
                                      params={} if depth is None else {"depth": depth})
            assert r.status_code == 200, r.text
            assert r.content == orjson.dumps(events._event_book(
                replica, event_id, replica.event_markets[event_id], depth)), depth
            assert orjson.loads(r.content)["outcomes"][0]["book"] == orjson.loads(
                out[0 if depth is None else 2])
        return out

    empty = await pages()
    assert await pages() == empty
    order = (await client.order(maker, market, "yes", "buy", "0.40", 5))["order"]["id"]
    await client.order(maker, market, "yes", "buy", "0.30", 5)
    two = await pages()
    assert orjson.loads(two[0])["bids"] == [{"price": "0.40", "quantity": 5},
                                            {"price": "0.30", "quantity": 5}]
    assert len(orjson.loads(two[2])["bids"]) == 1
    await client.order(taker, market, "no", "buy", "0.60", 2)
    traded = orjson.loads((await pages())[0])
    assert traded["last_price"] == "0.40" and traded["bids"][0]["quantity"] == 3
    r = await client.http.delete(f"/orders/{order}", headers=client.auth(maker))
    assert r.status_code == 200, r.text
    assert orjson.loads((await pages())[1])["asks"] == [{"price": "0.70", "quantity": 5}]
