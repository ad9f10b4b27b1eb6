"""Error messages say what is wrong in the API's terms.

An attacker collected: a ``text/plain`` body answered with what the bytes lacked, not
that the body must be JSON; a batch item that is not an object got "Input should be a
valid dictionary or instance of OrderCreate" (a Python class); a garbage bearer token
got PyJWT's "Invalid header string: 'utf-8' codec can't decode...". Each now answers in
JSON's and the API's words, with the status the contract gives (422 invalid field, 401).
"""

from __future__ import annotations

import json

import pytest

from .test_input_types import no_leak

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_body_that_is_not_json_is_told_to_be_json(client):
    token, _ = await client.user("messages")
    admin = await client.admin()
    market = await client.market()
    order = json.dumps({"market_id": market, "outcome": "yes", "side": "buy",
                        "price": "0.02", "quantity": 1})
    for path, credential, body in (("/orders", token, order), ("/onramp", token, '{"amount": "1"}'),
                                   ("/admin/events", admin, '{"title": "Plain"}')):
        for content_type in ("text/plain", "application/x-www-form-urlencoded",
                             "text/plain; charset=utf-8", "application/xml"):
            r = await client.http.post(path, content=body, headers={
                **client.auth(credential), "Content-Type": content_type})
            assert r.status_code == 422, (path, content_type, r.text)
            error = r.json()["error"]
            assert error["code"] == "invalid_field"
            assert "must be JSON" in error["message"], error
            assert "Content-Type: application/json" in error["message"], error
            no_leak(error["message"])
    r = await client.http.get("/balance", headers=client.auth(token))
    assert r.json()["total"] == "1000.0000"  # nothing applied
    # JSON without a content type, or as application/*+json, is read as before.
    r = await client.http.post("/onramp", content='{"amount": "1"}', headers={
        **client.auth(token), "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


async def test_batch_items_and_bodies_are_described_in_json_terms(client):
    token, _ = await client.user("messages-batch")
    market = await client.market()
    order = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.02",
             "quantity": 1}
    r = await client.http.post("/orders/batch", headers=client.auth(token), json={
        "orders": [5, [], "x", None, {**order, "market_id": "1"}, {**order, "side": "up"},
                   {k: v for k, v in order.items() if k != "quantity"}, {**order, "x": 1}]})
    assert r.status_code == 200, r.text
    messages = [item["error"]["message"] for item in r.json()["results"]]
    assert messages[:4] == ["order: must be a JSON object"] * 4
    assert messages[4] == "market_id: must be a JSON integer (not a string, boolean or decimal)"
    assert messages[5] == "side: must be 'buy' or 'sell'"
    assert messages[6] == "quantity: is required"
    assert messages[7] == "x: is not a field of this request"
    for message in messages:
        no_leak(message)
    for body in ([order], 5, "order"):
        r = await client.http.post("/orders", headers=client.auth(token), json=body)
        assert r.status_code == 422
        assert r.json()["error"]["message"] == "body: must be a JSON object"


async def test_a_garbage_token_is_a_malformed_token(client):
    for credential in (b"__4.e30.sig", b"\xff\xfe\xfd", b"x.y.z", b"a.b"):
        for method, path in (("GET", "/balance"), ("POST", "/orders"), ("GET", "/orders")):
            r = await client.http.request(method, path, json={} if method == "POST" else None,
                                          headers={"Authorization": b"Bearer " + credential})
            assert r.status_code == 401, r.text
            message = r.json()["error"]["message"]
            assert message.startswith("malformed token"), message
            no_leak(message)

