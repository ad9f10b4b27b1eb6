"""Every answer of the server is exactly one of the API's objects (``pmarket.api``).

The hot routes build plain dicts instead of models (``views``, the read model, the
fast paths); here each answer is read into its model and written back, and must come out
the same JSON: no field missing, none extra (a private helper key, a renamed field), no
value the model would read differently (a float for a price, a time without its zone).
Each answer is also checked against its model's JSON schema as the OpenAPI document
publishes it (serialization mode), so a field the document requires is never missing.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from pmarket import api

pytestmark = pytest.mark.asyncio(loop_scope="module")


def exactly(model: type[api.Out], body: Any, sparse: bool = False) -> None:
    """``body`` is ``model``'s JSON, field for field (``sparse``: fields left out are
    fine, as in a batch item that has an order or an error)."""
    again = model.model_validate(body).model_dump(mode="json", exclude_unset=sparse)
    assert again == body, f"{model.__name__}: {body}"
    published = model.model_json_schema(mode="serialization")
    try:
        jsonschema_rs.validate(published, body)
    except jsonschema_rs.ValidationError as exc:
        raise AssertionError(
            f"{model.__name__} against its published schema: {exc}: {body}") from None


async def test_every_answer_reads_and_writes_back_as_its_api_object(client):
    http, admin = client.http, client.auth(await client.admin())
    event = await client.event(outcomes=["Ann", "Bob"], fee_rate="0.07")
    exactly(api.Event, event)
    market = event["outcomes"][0]["market_id"]
    maker, _ = await client.user("maker")
    taker, taker_id = await client.user("taker")
    exactly(api.OrderResult, await client.order(maker, market, "no", "buy", "0.60", 30))
    placed = await client.order(taker, market, "yes", "buy", "0.40", 10)
    exactly(api.OrderResult, placed)
    assert placed["trades"], "the order should have traded"
    resting = await client.order(taker, market, "yes", "buy", "0.10", 5)
    me = client.auth(taker)

    answers: list[tuple[type[api.Out], Any]] = [
        (api.Me, (await http.get("/me", headers=me)).json()),
        (api.Balance, (await http.get("/balance", headers=me)).json()),
        (api.Page[api.Position], (await http.get("/positions", headers=me)).json()),
        (api.Portfolio, (await http.get("/portfolio", headers=me)).json()),
        (api.Page[api.Trade], (await http.get("/trades", headers=me)).json()),
        (api.Page[api.Order], (await http.get("/orders", headers=me)).json()),
        (api.Page[api.Order], (await http.get("/orders?status=open", headers=me)).json()),
        (api.Order, (await http.get(f"/orders/{resting['order']['id']}", headers=me)).json()),
        (api.Page[api.Event], (await http.get("/events")).json()),
        (api.Event, (await http.get(f"/events/{event['id']}")).json()),
        (api.EventBook, (await http.get(f"/events/{event['id']}/orderbook")).json()),
        (api.Market, (await http.get(f"/markets/{market}")).json()),
        (api.Book, (await http.get(f"/markets/{market}/orderbook")).json()),
        (api.Book, (await http.get(f"/markets/{market}/orderbook?view=no")).json()),
        (api.Page[api.PublicTrade], (await http.get(f"/markets/{market}/trades")).json()),
        (api.Page[api.Candle], (await http.get(f"/markets/{market}/candles")).json()),
        (api.SplitResult, (await http.post(f"/markets/{market}/split", json={"quantity": 2},
                                           headers=me)).json()),
        (api.EventSplitResult, (await http.post(f"/events/{event['id']}/split",
                                                json={"quantity": 2}, headers=me)).json()),
        (api.Heartbeat, (await http.post("/heartbeat", json={"timeout_s": 30},
                                         headers=me)).json()),
        (api.ApiKeyCreated, (await http.post("/api-keys", json={
            "name": "bot", "scopes": ["read"]}, headers=me)).json()),
        (api.Page[api.ApiKey], (await http.get("/api-keys", headers=me)).json()),
        (api.Order, (await http.delete(f"/orders/{resting['order']['id']}",
                                       headers=me)).json()),
        (api.Cancelled, (await http.delete("/orders", headers=me)).json()),
        (api.Page[api.AdminUser], (await http.get("/admin/users", headers=admin)).json()),
        (api.AdminUser, (await http.post(f"/admin/users/{taker_id}/disable",
                                         headers=admin)).json()),
        (api.Fees, (await http.get("/admin/fees", headers=admin)).json()),
        (api.Audit, (await http.get("/admin/audit", headers=admin)).json()),
        (api.Resolution, (await http.post(f"/admin/events/{event['id']}/resolve", json={
            "winning_outcome_id": event["outcomes"][0]["id"]}, headers=admin)).json()),
        (api.Page[api.Payout], (await http.get("/payouts", headers=client.auth(maker))).json()),
        (api.Error, (await http.get("/orders/999999999", headers=client.auth(maker))).json()),
    ]
    for model, body in answers:
        exactly(model, body)
    assert any(model is api.Page[api.Payout] and body["items"] for model, body in answers)

    other, _ = await client.user("batcher")
    fresh = await client.market()
    batch = (await http.post("/orders/batch", json={"orders": [
        {"market_id": fresh, "outcome": "yes", "side": "buy", "price": "0.20", "quantity": 1},
        {"market_id": fresh, "outcome": "yes", "side": "buy", "price": "2", "quantity": 1},
    ]}, headers=client.auth(other))).json()
    exactly(api.BatchResult, batch, sparse=True)
    assert "order" in batch["results"][0] and "error" in batch["results"][1]
