"""Admin endpoints: create, edit, close, resolve, void, delete events; users; audit."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_create_event_validates_and_makes_one_market_per_outcome(client):
    admin = client.auth(await client.admin())
    r = await client.http.post("/admin/events", headers=admin, json={
        "title": "Who wins", "outcomes": ["A", "B"], "tick_size": "0.001",
        "close_time": "2030-01-01T00:00:00Z", "category": "sport"})
    assert r.status_code == 201, r.text
    assert [o["name"] for o in r.json()["outcomes"]] == ["A", "B"]
    assert r.json()["close_time"] == "2030-01-01T00:00:00Z"
    for bad in ({"title": ""}, {"title": "x", "tick_size": "0.05"},
                {"title": "x", "outcomes": ["A", "A"]}, {"title": "x", "evil": 1}):
        assert (await client.http.post("/admin/events", headers=admin, json=bad)
                ).status_code == 422, bad


async def test_closing_cancels_orders_and_reopening_allows_trading(client):
    admin = client.auth(await client.admin())
    event = await client.event()
    market = event["outcomes"][0]["market_id"]
    token, _ = await client.user()
    oid = (await client.order(token, market, "yes", "buy", "0.2", 5))["order"]["id"]
    r = await client.http.patch(f"/admin/events/{event['id']}", headers=admin,
                                json={"status": "closed", "title": "Renamed"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert r.json()["title"] == "Renamed"
    r = await client.http.get(f"/orders/{oid}", headers=client.auth(token))
    assert r.json()["status"] == "cancelled"
    await client.order(token, market, "yes", "buy", "0.2", 5, expect=409)
    r = await client.http.patch(f"/admin/events/{event['id']}", headers=admin,
                                json={"status": "active"})
    assert r.json()["status"] == "active"
    await client.order(token, market, "yes", "buy", "0.2", 5)
    r = await client.http.patch("/admin/events/99999999", headers=admin, json={"title": "x"})
    assert r.status_code == 404


async def test_resolve_pays_winners_and_refuses_twice_or_foreign_outcomes(client):
    admin = client.auth(await client.admin())
    event = await client.event(["A", "B"])
    other = await client.event(["C", "D"])
    a_market = event["outcomes"][0]["market_id"]
    token, _ = await client.user()
    await client.http.post(f"/markets/{a_market}/split", json={"quantity": 3},
                           headers=client.auth(token))
    r = await client.http.post(f"/admin/events/{event['id']}/resolve", headers=admin,
                               json={"winning_outcome_id": other["outcomes"][0]["id"]})
    assert r.status_code == 422
    r = await client.http.post(f"/admin/events/{event['id']}/resolve", headers=admin,
                               json={"winning_outcome_id": a_market})
    assert r.status_code == 200, r.text
    assert r.json()["event"]["status"] == "resolved" and r.json()["payouts_total"] == "3.0000"
    r = await client.http.post(f"/admin/events/{event['id']}/resolve", headers=admin,
                               json={"void": True})
    assert r.status_code == 409
    r = await client.http.get("/balance", headers=client.auth(token))
    assert r.json()["total"] == "1000.0000"


async def test_void_single_outcome_event_pays_half(client):
    admin = client.auth(await client.admin())
    event = await client.event()
    token, _ = await client.user()
    await client.http.post(f"/markets/{event['outcomes'][0]['market_id']}/split",
                           json={"quantity": 2}, headers=client.auth(token))
    r = await client.http.post(f"/admin/events/{event['id']}/resolve", headers=admin,
                               json={"void": True})
    assert r.status_code == 200 and r.json()["payouts_total"] == "2.0000"


async def test_delete_only_untouched_events(client):
    admin = client.auth(await client.admin())
    empty = await client.event()
    r = await client.http.delete(f"/admin/events/{empty['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.http.get(f"/events/{empty['id']}")).status_code == 404
    used = await client.event()
    token, _ = await client.user()
    await client.http.post(f"/markets/{used['outcomes'][0]['market_id']}/split",
                           json={"quantity": 1}, headers=client.auth(token))
    r = await client.http.delete(f"/admin/events/{used['id']}", headers=admin)
    assert r.status_code == 409


async def test_audit_balances_to_the_unit(client):
    market = await client.market()
    a, _ = await client.user()
    b, _ = await client.user()
    await client.order(a, market, "yes", "buy", "0.33", 7)
    await client.order(b, market, "no", "buy", "0.67", 7)
    await client.http.post(f"/markets/{market}/split", json={"quantity": 2},
                           headers=client.auth(a))
    r = await client.http.get("/admin/audit", headers=client.auth(await client.admin()))
    body = r.json()
    assert body["ok"] is True and body["difference"] == "0.0000", body
    assert any(m["market_id"] == market and m["yes_supply"] == 9 for m in body["markets"])
