"""Public market data: events (search, filters), markets, books, trades, candles."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_events_list_search_and_filters(client):
    word = uuid.uuid4().hex[:8]
    e = await client.event(["Red", "Blue"], title=f"Colour {word} final", category="sport")
    r = await client.http.get(f"/events?q={word}")
    assert [x["id"] for x in r.json()["items"]] == [e["id"]]
    assert [o["name"] for o in r.json()["items"][0]["outcomes"]] == ["Red", "Blue"]
    r = await client.http.get("/events?category=sport&status=active&limit=500")
    assert e["id"] in [x["id"] for x in r.json()["items"]]
    r = await client.http.get("/events?limit=1&offset=0")
    assert len(r.json()["items"]) == 1 and r.json()["total"] >= 1
    assert (await client.http.get("/events?limit=501")).status_code == 422
    r = await client.http.get(f"/events/{e['id']}")
    assert r.json()["title"] == f"Colour {word} final"
    assert (await client.http.get("/events/99999999")).status_code == 404


async def test_market_summary_trades_and_candles(client):
    market = await client.market(tick_size="0.001")
    a, _ = await client.user()
    b, _ = await client.user()
    await client.order(a, market, "yes", "sell", "0.5", 1, expect=409)
    await client.order(a, market, "yes", "buy", "0.455", 3)
    await client.order(b, market, "no", "buy", "0.545", 2)
    r = await client.http.get(f"/markets/{market}")
    m = r.json()
    assert m["tick_size"] == "0.001" and m["last_price"] == "0.455"
    assert m["best_bid"] == "0.455" and m["volume"] == 2 and m["open_interest"] == 2
    r = await client.http.get(f"/markets/{market}/trades")
    (t,) = r.json()["items"]
    assert t["price"] == "0.455" and t["taker_side"] == "sell" and t["quantity"] == 2
    r = await client.http.get(f"/markets/{market}/candles?interval=1m")
    (c,) = r.json()["items"]
    assert c["open"] == c["close"] == "0.455" and c["volume"] == 2
    r = await client.http.get(f"/markets/{market}/candles?interval=7m")
    assert r.status_code == 422
    for path in ("", "/orderbook", "/trades", "/candles"):
        assert (await client.http.get(f"/markets/99999999{path}")).status_code == 404


async def test_books_depth_views_and_event_book(client):
    event = await client.event(["X", "Y"])
    mx, my = (o["market_id"] for o in event["outcomes"])
    t, _ = await client.user()
    await client.order(t, mx, "yes", "buy", "0.30", 1)
    await client.order(t, mx, "yes", "buy", "0.20", 2)
    await client.order(t, mx, "no", "buy", "0.40", 3)  # a YES ask at 0.60
    await client.order(t, my, "yes", "buy", "0.50", 1)
    await client.order(t, my, "no", "buy", "0.40", 1)
    r = await client.http.get(f"/markets/{mx}/orderbook?depth=1")
    book = r.json()
    assert book["bids"] == [{"price": "0.30", "quantity": 1}]
    assert book["mid"] == "0.45" and book["spread"] == "0.30"
    r = await client.http.get(f"/markets/{mx}/orderbook?view=no")
    assert r.json()["bids"] == [{"price": "0.40", "quantity": 3}]
    assert r.json()["asks"] == [{"price": "0.70", "quantity": 1}, {"price": "0.80",
                                                                   "quantity": 2}]
    r = await client.http.get(f"/events/{event['id']}/orderbook")
    body = r.json()
    assert [o["name"] for o in body["outcomes"]] == ["X", "Y"]
    assert body["implied_probability_sum"] == "1.00"  # 0.45 + 0.55
    assert (await client.http.get("/events/99999999/orderbook")).status_code == 404
