"""Trading endpoints: place, batch, modify, cancel, cancel-all, reads of one's orders."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_limit_orders_cross_and_both_sides_see_their_own_terms(client):
    market = await client.market()
    maker, _ = await client.user("maker")
    taker, _ = await client.user("taker")
    bid = await client.order(maker, market, "yes", "buy", "0.40", 10)
    assert bid["order"]["status"] == "open" and bid["trades"] == []
    res = await client.order(taker, market, "no", "buy", "0.60", 4)
    assert res["order"]["status"] == "filled"
    (trade,) = res["trades"]
    assert trade["price"] == "0.60" and trade["role"] == "taker" and trade["kind"] == "mint"
    assert trade["outcome"] == "no" and trade["side"] == "buy" and trade["quantity"] == 4
    r = await client.http.get(f"/orders/{bid['order']['id']}", headers=client.auth(maker))
    assert r.json()["filled_quantity"] == 4 and r.json()["status"] == "partially_filled"
    r = await client.http.get("/trades", headers=client.auth(maker))
    (mine,) = r.json()["items"]
    assert mine["role"] == "maker" and mine["price"] == "0.40" and mine["outcome"] == "yes"
    book = (await client.http.get(f"/markets/{market}/orderbook")).json()
    assert book["bids"] == [{"price": "0.40", "quantity": 6}] and book["last_price"] == "0.40"
    no_view = (await client.http.get(f"/markets/{market}/orderbook?view=no")).json()
    assert no_view["asks"] == [{"price": "0.60", "quantity": 6}]
    assert no_view["last_price"] == "0.60"


async def test_ioc_without_liquidity_is_201_cancelled(client):
    market = await client.market()
    token, _ = await client.user()
    res = await client.order(token, market, "yes", "buy", "0.50", 5, time_in_force="ioc")
    assert res["order"]["status"] == "cancelled"
    res = await client.http.post("/orders", json={
        "market_id": market, "outcome": "yes", "side": "buy", "type": "market",
        "quantity": 3}, headers=client.auth(token))
    assert res.status_code == 201 and res.json()["order"]["status"] == "cancelled"


async def test_order_rejections_map_to_status_codes(client):
    market = await client.market()
    poor, _ = await client.user(cash="1")
    await client.order(poor, market, "yes", "buy", "0.50", 100, expect=409)
    await client.order(poor, market, "yes", "sell", "0.50", 1, expect=409)
    await client.order(poor, market, "yes", "buy", "0.505", 1, expect=422)
    await client.order(poor, market, "yes", "buy", "1.5", 1, expect=422)
    await client.order(poor, 10**9, "yes", "buy", "0.5", 1, expect=404)
    await client.order(poor, market, "yes", "buy", 0.5, 1)  # a JSON number is fine
    rich, _ = await client.user()
    await client.order(rich, market, "no", "buy", "0.5", 1, post_only=True, expect=409)


async def test_client_order_id_makes_placement_idempotent(client):
    market = await client.market()
    token, _ = await client.user()
    first = await client.order(token, market, "yes", "buy", "0.3", 2, client_order_id="abc")
    again = await client.order(token, market, "yes", "buy", "0.3", 2, client_order_id="abc")
    assert again["order"]["id"] == first["order"]["id"]
    r = await client.http.get("/orders?status=open", headers=client.auth(token))
    assert r.json()["total"] == 1
    # the same id with other parameters is a mistake, never the old order (API.md)
    r = await client.http.post("/orders", headers=client.auth(token), json={
        "market_id": market, "outcome": "yes", "side": "buy", "price": "0.31", "quantity": 2,
        "client_order_id": "abc"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "client_order_id_reused"
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={"orders": [
        {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.30",
         "quantity": 2, "client_order_id": "abc"},
        {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.30",
         "quantity": 3, "client_order_id": "abc"}]})
    assert r.status_code == 200, r.text
    first_item, second_item = r.json()["results"]
    assert first_item["order"]["id"] == first["order"]["id"]
    assert second_item["error"]["code"] == "client_order_id_reused"
    r = await client.http.get("/orders?status=open", headers=client.auth(token))
    assert r.json()["total"] == 1


async def test_batch_returns_each_result_in_request_order(client):
    market = await client.market()
    token, _ = await client.user()
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={"orders": [
        {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.2", "quantity": 1},
        {"market_id": market, "outcome": "yes", "side": "sell", "price": "0.9", "quantity": 1},
        {"market_id": market, "outcome": "no", "side": "buy", "price": "0.3", "quantity": 2},
        {"market_id": market, "outcome": "no", "side": "buy", "quantity": 2},
    ]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["order"]["price"] == "0.20"
    assert results[1]["error"]["code"] == "insufficient_shares"
    assert results[2]["order"]["outcome"] == "no"
    assert results[3]["error"]["code"] == "invalid_field"
    too_many = {"orders": [{"market_id": market, "outcome": "yes", "side": "buy",
                            "price": "0.2", "quantity": 1}] * 21}
    r = await client.http.post("/orders/batch", headers=client.auth(token), json=too_many)
    assert r.status_code == 422


async def test_an_invalid_batch_item_gets_its_own_error_and_the_others_go_through(client):
    market = await client.market()
    token, _ = await client.user()
    good = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.2",
            "quantity": 1}
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={"orders": [
        good,
        {**good, "price": "0.123456"},          # not exact to the unit
        {**good, "market_id": 2**61},           # unknown market (an engine rejection)
        {key: v for key, v in good.items() if key != "side"},   # a missing field
        {**good, "colour": "red"},              # an unknown field
        "not an order",
        {**good, "quantity": 2},
    ]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [("order" in x, (x.get("error") or {}).get("code")) for x in results] == [
        (True, None), (False, "invalid_field"), (False, "unknown_market"),
        (False, "invalid_field"), (False, "invalid_field"), (False, "invalid_field"),
        (True, None)]
    assert "side" in results[3]["error"]["message"]
    assert results[6]["order"]["quantity"] == 2
    for envelope in ({}, {"orders": "x"}, {"orders": []}, [good], {"orders": [good],
                                                                  "extra": 1}):
        r = await client.http.post("/orders/batch", headers=client.auth(token),
                                   json=envelope)
        assert r.status_code == 422, envelope


async def test_modify_and_cancel_own_orders_only(client):
    market = await client.market()
    owner, _ = await client.user()
    other, _ = await client.user()
    oid = (await client.order(owner, market, "yes", "buy", "0.3", 5))["order"]["id"]
    r = await client.http.patch(f"/orders/{oid}", json={"price": "0.35", "quantity": 7},
                                headers=client.auth(owner))
    assert r.status_code == 200 and r.json()["order"]["price"] == "0.35"
    assert r.json()["order"]["quantity"] == 7
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.http.request(method, f"/orders/{oid}", headers=client.auth(other),
                                      json={"price": "0.4"} if method == "PATCH" else None)
        assert r.status_code == 404, (method, r.text)
        assert r.json()["error"]["code"] == "not_found"
    r = await client.http.delete(f"/orders/{oid}", headers=client.auth(owner))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.http.delete(f"/orders/{oid}", headers=client.auth(owner))
    assert r.status_code == 409
    r = await client.http.get("/balance", headers=client.auth(owner))
    assert r.json() == {"available": "1000.0000", "reserved": "0.0000", "total": "1000.0000"}


async def test_cancel_all_optionally_by_market(client):
    m1, m2 = await client.market(), await client.market()
    token, _ = await client.user()
    a = (await client.order(token, m1, "yes", "buy", "0.1", 1))["order"]["id"]
    b = (await client.order(token, m2, "yes", "buy", "0.1", 1))["order"]["id"]
    r = await client.http.delete(f"/orders?market_id={m1}", headers=client.auth(token))
    assert r.json() == {"cancelled": [a]}
    r = await client.http.delete("/orders", headers=client.auth(token))
    assert r.json() == {"cancelled": [b]}
    r = await client.http.get("/orders?status=open", headers=client.auth(token))
    assert r.json() == {"items": [], "total": 0}


async def test_fifty_concurrent_whole_balance_withdrawals_exactly_one_succeeds(client):
    token, _ = await client.user(cash="500")
    results = await asyncio.gather(*(client.http.post(
        "/offramp", json={"amount": "500"}, headers=client.auth(token)) for _ in range(50)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 1 and codes.count(409) == 49
    r = await client.http.get("/balance", headers=client.auth(token))
    assert r.json()["total"] == "0.0000"


async def test_self_trade_prevention_modes(client):
    market = await client.market()
    token, _ = await client.user()

    async def rest_and_cross(stp):
        resting = await client.order(token, market, "no", "buy", "0.50", 5)
        extra = {} if stp is None else {"stp": stp}
        taker = await client.order(token, market, "yes", "buy", "0.50", 5, **extra)
        assert taker["trades"] == []
        r = await client.http.get(f"/orders/{resting['order']['id']}",
                                  headers=client.auth(token))
        status = (r.json()["status"], taker["order"]["status"])
        await client.http.delete("/orders", headers=client.auth(token))
        return status

    assert await rest_and_cross(None) == ("cancelled", "open")
    assert await rest_and_cross("cancel_resting") == ("cancelled", "open")
    assert await rest_and_cross("cancel_taker") == ("open", "cancelled")
    assert await rest_and_cross("cancel_both") == ("cancelled", "cancelled")
    r = await client.http.post("/orders", headers=client.auth(token), json={
        "market_id": market, "outcome": "yes", "side": "buy", "price": "0.5",
        "quantity": 1, "stp": "cancel_everything"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field", r.text


async def test_batch_items_carry_their_own_self_trade_mode(client):
    market = await client.market()
    token, _ = await client.user()
    item = {"market_id": market, "outcome": "no", "side": "buy", "price": "0.5",
            "quantity": 2}
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={"orders": [
        item, {**item, "outcome": "yes", "stp": "cancel_taker"},
        {**item, "outcome": "yes", "stp": "cancel_both"}]})
    assert r.status_code == 200, r.text
    first, second, third = (res["order"] for res in r.json()["results"])
    assert second["status"] == "cancelled" and third["status"] == "cancelled"
    r = await client.http.get(f"/orders/{first['id']}", headers=client.auth(token))
    assert r.json()["status"] == "cancelled"
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={
        "orders": [{**item, "stp": "nope"}]})
    assert r.status_code == 200
    assert r.json()["results"][0]["error"]["code"] == "invalid_field"


async def test_an_account_holds_at_most_the_open_orders_the_server_allows(server, client,
                                                                         monkeypatch):
    """``PMARKET_MAX_OPEN_ORDERS``: a placement at the limit is 409 ``open_order_limit``
    (a batch item gets it as its error, the others stand), and a cancellation makes
    room again. Bounds what one account holds and what one cancel-all undoes."""
    monkeypatch.setattr(server.runtime, "settings",
                        replace(server.runtime.settings, max_open_orders=3))
    market = await client.market()
    token, _ = await client.user("capped")
    first = (await client.order(token, market, "yes", "buy", "0.10", 1))["order"]["id"]
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={"orders": [
        {"market_id": market, "outcome": "yes", "side": "buy", "price": p, "quantity": 1}
        for p in ("0.11", "0.12", "0.13")]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [("order" in x) for x in results] == [True, True, False]
    assert results[2]["error"]["code"] == "open_order_limit"
    r = await client.http.post("/orders", headers=client.auth(token), json={
        "market_id": market, "outcome": "yes", "side": "buy", "price": "0.14", "quantity": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "open_order_limit", r.text
    assert "at most 3" in r.json()["error"]["message"]
    assert (await client.http.delete(f"/orders/{first}", headers=client.auth(token))
            ).status_code == 200
    await client.order(token, market, "yes", "buy", "0.14", 1)
