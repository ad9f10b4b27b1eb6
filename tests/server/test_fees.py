"""Fees through the API: event fee rates, Trade.fee, the user channel, P&L, /admin/fees.

Every amount is exact: a 7% event, 10 shares at 0.50, charges its taker
0.07 x 10 x 0.5 x 0.5 = 0.175, rounded up to 0.18; makers pay nothing.
"""

from __future__ import annotations

import dataclasses

import orjson
import pytest
import websockets

from pmarket.server.settings import Settings

from .test_websocket import recv_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_fee_rates_are_set_shown_changed_and_checked(client, server):
    admin = client.auth(await client.admin())
    event = await client.event(fee_rate="0.07")
    assert event["fee_rate"] == "0.07"
    r = await client.http.patch(f"/admin/events/{event['id']}", headers=admin,
                                json={"fee_rate": 0.0125})
    assert r.status_code == 200 and r.json()["fee_rate"] == "0.0125"
    r = await client.http.get(f"/events/{event['id']}")
    assert r.json()["fee_rate"] == "0.0125"
    for bad in ("0.2501", "-0.01", "0.00001", "1e-2", True, "seven"):
        r = await client.http.post("/admin/events", headers=admin,
                                   json={"title": "x", "fee_rate": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field", bad
        r = await client.http.patch(f"/admin/events/{event['id']}", headers=admin,
                                    json={"fee_rate": bad})
        assert r.status_code == 422, bad


async def test_an_event_without_a_rate_gets_the_servers_default(client, server):
    assert (await client.event())["fee_rate"] == "0.00"
    runtime = server.runtime
    saved = runtime.settings
    runtime.settings = dataclasses.replace(saved, fee_rate=300)
    try:
        assert (await client.event())["fee_rate"] == "0.03"
        assert (await client.event(fee_rate="0"))["fee_rate"] == "0.00"
    finally:
        runtime.settings = saved


async def test_the_default_rate_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PMARKET_FEE_RATE", "0.07")
    assert Settings.load().fee_rate == 700
    monkeypatch.setenv("PMARKET_FEE_RATE", "0.3")
    with pytest.raises(ValueError, match="PMARKET_FEE_RATE: fee_rate must be from 0 to"):
        Settings.load()


async def test_the_taker_pays_and_every_view_shows_it(client, server):
    market = await client.market(fee_rate="0.07")
    maker, _ = await client.user()
    taker, _ = await client.user()
    await client.order(maker, market, "no", "buy", "0.50", 10)
    async with websockets.connect(server.ws_url()) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channels": ["user"], "token": taker}))
        result = await client.order(taker, market, "yes", "buy", "0.50", 10)
        fill = await recv_until(ws, lambda m: m["type"] == "fill")
    (trade,) = result["trades"]
    assert (trade["role"], trade["kind"], trade["fee"]) == ("taker", "mint", "0.1800")
    assert fill["data"]["fee"] == "0.1800"
    for token, role, fee in ((taker, "taker", "0.1800"), (maker, "maker", "0.0000")):
        r = await client.http.get("/trades", params={"market_id": market},
                                  headers=client.auth(token))
        assert [(t["role"], t["fee"]) for t in r.json()["items"]] == [(role, fee)]
    r = await client.http.get("/balance", headers=client.auth(taker))
    assert r.json() == {"available": "994.8200", "reserved": "0.0000",
                        "total": "994.8200"}
    r = await client.http.get("/positions", params={"market_id": market},
                              headers=client.auth(taker))
    (pos,) = r.json()["items"]
    assert pos["avg_cost_yes"] == "0.5180"  # (5 + 0.18) / 10: the fee is part of the cost
    assert pos["unrealized_pnl"] == "-0.1800"  # marked at 0.50
    r = await client.http.get("/balance", headers=client.auth(maker))
    assert r.json()["total"] == "995.0000"


async def test_a_selling_taker_pays_from_its_proceeds_and_realises_it(client, server):
    market = await client.market(fee_rate="0.07")
    seller, _ = await client.user()
    buyer, _ = await client.user()
    await client.http.post(f"/markets/{market}/split", json={"quantity": 10},
                           headers=client.auth(seller))
    await client.order(buyer, market, "yes", "buy", "0.40", 10)
    result = await client.order(seller, market, "yes", "sell", "0.40", 10)
    assert result["trades"][0]["fee"] == "0.1700"  # 0.07 x 10 x 0.24 = 0.168
    r = await client.http.get("/balance", headers=client.auth(seller))
    assert r.json()["total"] == "993.8300"  # -10 split +4 proceeds -0.17 fee


async def test_a_buy_needs_cash_for_its_worst_case_fee_when_it_takes(client, server):
    market = await client.market(fee_rate="0.07")
    maker, _ = await client.user()
    taker, _ = await client.user(cash="50")
    await client.order(maker, market, "no", "buy", "0.50", 100)
    r = await client.http.post("/orders", headers=client.auth(taker), json={
        "market_id": market, "outcome": "yes", "side": "buy", "price": "0.50",
        "quantity": 100})
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_cash"
    assert "worst-case fee" in r.json()["error"]["message"]


async def test_admin_fees_and_the_audit_count_every_fee(client, server):
    admin = client.auth(await client.admin())
    event = await client.event(["A", "B"], fee_rate="0.25")
    market = event["outcomes"][0]["market_id"]
    maker, _ = await client.user()
    taker, _ = await client.user()
    await client.order(maker, market, "no", "buy", "0.70", 3)
    await client.order(taker, market, "yes", "buy", "0.30", 3)  # 0.25 x 3 x 0.21 = 0.1575
    r = await client.http.get("/admin/fees", headers=admin)
    assert r.status_code == 200
    fees = r.json()
    assert {"event_id": event["id"], "amount": "0.1600"} in fees["by_event"]
    audit = (await client.http.get("/admin/audit", headers=admin)).json()
    assert audit["ok"] and audit["difference"] == "0.0000"
    assert audit["fees"] == fees["total"]
    assert (await client.http.get("/admin/fees",
                                  headers=client.auth(taker))).status_code == 403
