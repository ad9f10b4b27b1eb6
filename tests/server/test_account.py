"""Account and collateral endpoints: balance, ramps, positions, portfolio, split/merge."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_onramp_offramp_and_balance(client):
    token, _ = await client.user(cash=None)
    r = await client.http.post("/onramp", json={"amount": 12.5}, headers=client.auth(token))
    assert r.json() == {"available": "12.5000", "reserved": "0.0000", "total": "12.5000"}
    r = await client.http.post("/offramp", json={"amount": "20"}, headers=client.auth(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_cash"
    r = await client.http.post("/offramp", json={"amount": "2.5"}, headers=client.auth(token))
    assert r.status_code == 200 and r.json()["available"] == "10.0000"
    r = await client.http.get("/balance", headers=client.auth(token))
    assert r.json()["total"] == "10.0000"


async def test_positions_and_portfolio_after_a_trade(client):
    market = await client.market()
    buyer, _ = await client.user()
    seller, _ = await client.user()
    await client.order(seller, market, "no", "buy", "0.70", 10)
    await client.order(buyer, market, "yes", "buy", "0.30", 10)
    r = await client.http.get("/positions", headers=client.auth(buyer))
    (pos,) = r.json()["items"]
    assert pos["market_id"] == market and pos["yes_quantity"] == 10
    assert pos["avg_cost_yes"] == "0.3000" and pos["mark_price"] == "0.3000"
    assert pos["value"] == "3.0000" and pos["unrealized_pnl"] == "0.0000"
    r = await client.http.get(f"/positions?market_id={market + 1000}",
                              headers=client.auth(buyer))
    assert r.json() == {"items": [], "total": 0}
    r = await client.http.get("/portfolio", headers=client.auth(buyer))
    body = r.json()
    assert body["balance"]["total"] == "997.0000" and body["positions_value"] == "3.0000"
    assert body["total_value"] == "1000.0000" and body["pnl"] == "0.0000"


async def test_market_split_and_merge(client):
    market = await client.market()
    token, _ = await client.user()
    r = await client.http.post(f"/markets/{market}/split", json={"quantity": 5},
                               headers=client.auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["available"] == "995.0000"
    assert r.json()["position"]["yes_quantity"] == 5 and r.json()["position"]["no_quantity"] == 5
    r = await client.http.post(f"/markets/{market}/merge", json={"quantity": 6},
                               headers=client.auth(token))
    assert r.status_code == 409
    r = await client.http.post(f"/markets/{market}/merge", json={"quantity": 5},
                               headers=client.auth(token))
    assert r.json()["balance"]["available"] == "1000.0000"
    r = await client.http.post("/markets/999999/split", json={"quantity": 1},
                               headers=client.auth(token))
    assert r.status_code == 404


async def test_event_split_and_merge_only_for_multi_outcome_events(client):
    multi = await client.event(["A", "B", "C"])
    single = await client.event()
    token, _ = await client.user()
    r = await client.http.post(f"/events/{multi['id']}/split", json={"quantity": 2},
                               headers=client.auth(token))
    assert r.status_code == 200, r.text
    assert [p["yes_quantity"] for p in r.json()["positions"]] == [2, 2, 2]
    r = await client.http.post(f"/events/{multi['id']}/merge", json={"quantity": 2},
                               headers=client.auth(token))
    assert r.status_code == 200 and r.json()["balance"]["available"] == "1000.0000"
    r = await client.http.post(f"/events/{single['id']}/split", json={"quantity": 1},
                               headers=client.auth(token))
    assert r.status_code == 409


async def test_event_convert_no_shares_into_yes_of_the_other_outcomes(client):
    event = await client.event(["A", "B", "C"])
    a, b, c = (o["market_id"] for o in event["outcomes"])
    single = await client.event()
    token, _ = await client.user()
    url = f"/events/{event['id']}/convert"
    for m in (a, b):
        r = await client.http.post(f"/markets/{m}/split", json={"quantity": 3},
                                   headers=client.auth(token))
        assert r.status_code == 200, r.text
    r = await client.http.post(url, json={"outcome_ids": [a, b], "quantity": 3},
                               headers=client.auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    # $6 into two splits, $3 back: (k - 1) = 1 dollar per unit for k = 2 outcomes.
    assert body["balance"]["available"] == "997.0000"
    held = {p["market_id"]: (p["yes_quantity"], p["no_quantity"]) for p in body["positions"]}
    assert held == {a: (3, 0), b: (3, 0), c: (3, 0)}
    # Not enough free NO any more.
    r = await client.http.post(url, json={"outcome_ids": [a], "quantity": 1},
                               headers=client.auth(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_shares"
    # Outcome ids that are not this event's, or repeated: 422.
    for ids in ([a, a], [single["outcomes"][0]["market_id"]]):
        r = await client.http.post(url, json={"outcome_ids": ids, "quantity": 1},
                                   headers=client.auth(token))
        assert r.status_code == 422, (ids, r.text)
        assert r.json()["error"]["code"] == "unknown_outcome"
    for bad in ({"outcome_ids": [], "quantity": 1}, {"outcome_ids": [a], "quantity": 0},
                {"outcome_ids": [a]}):
        r = await client.http.post(url, json=bad, headers=client.auth(token))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_field"
    r = await client.http.post(f"/events/{single['id']}/convert",
                               json={"outcome_ids": [single["outcomes"][0]["market_id"]],
                                     "quantity": 1}, headers=client.auth(token))
    assert r.status_code == 409 and r.json()["error"]["code"] == "single_outcome_event"
    r = await client.http.post("/events/999999/convert", json={"outcome_ids": [a],
                               "quantity": 1}, headers=client.auth(token))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_event"
    r = await client.http.post(url, json={"outcome_ids": [a], "quantity": 1})
    assert r.status_code == 401
