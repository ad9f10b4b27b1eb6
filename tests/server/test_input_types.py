"""Ids, integers, booleans and timestamps take one JSON type each, on every write.

An attacker found ``market_id: true`` and ``" 1"`` placed orders in market 1,
``post_only: "yes"`` was on, and ``close_time``/``expires_at`` took Unix numbers (1,
"99999999999", 123456789012345.67: seconds below 2e10, milliseconds above). The rule
(docs/API-ADDITIONS.md, "Input limits"): ids and integers are JSON integers, booleans
JSON true/false, timestamps ISO 8601 strings with a zone. Here Hypothesis draws, for
every such field of every request body the OpenAPI document declares (found from it, so
a new field is covered too), values of any other JSON type, and sends them to a live
embedded server: each answer is a 422 ``invalid_field`` naming the field (in a batch,
that item's error), never a 500, never applied. ``test_input_limits`` walks the named
values on both kinds of server; ``test_auth_parity`` compares the fast order path.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pmarket import api
from pmarket.server.errors import validation_message
from tests.sim.server import ADMIN_EMAIL, ADMIN_PASSWORD, ServerThread

from .test_input_limits import _resolve, with_value

LEAKS = ("Input should", "instance of", "dictionary", "pydantic", "codec", "Invalid header",
         "Traceback", "OrderCreate")


def no_leak(message: str) -> None:
    """A message in the API's terms: no Python class, no library's wording."""
    for leak in LEAKS:
        assert leak not in message, message


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20),
                        st.integers(-10**12, 10**13).map(str),
                        st.sampled_from([" 1", "1 ", "+1", "\u0661", "1.0", "true", "yes",
                                         "99999999999", "2030-01-01", "1e3"]))
JSON_ANY = st.one_of(JSON_LEAVES, st.lists(JSON_LEAVES, max_size=2),
                     st.dictionaries(st.text(max_size=3), JSON_LEAVES, max_size=2))


def wrong_for(kind: str, optional: bool):
    """JSON values of any type but the field's own (``None`` too unless optional)."""
    if kind == "integer":
        bad = JSON_ANY.filter(lambda v: type(v) is not int)
    elif kind == "boolean":
        bad = JSON_ANY.filter(lambda v: not isinstance(v, bool))
    else:  # a timestamp: never a number, a boolean or an object; strings, not ISO ones
        bad = JSON_ANY.filter(lambda v: not isinstance(v, str) or not (
            len(v) >= 16 and v[4:5] == "-" and v[10:11] in "Tt "))
    return bad.filter(lambda v: v is not None) if optional else bad


def typed_fields(schema: dict, defs: dict, where: tuple = ()) -> list[tuple[tuple, str, bool]]:
    """(location, "integer" | "boolean" | "date-time", optional) of every such field."""
    optional = any(s.get("type") == "null" for s in schema.get("anyOf", ()))
    schema = _resolve(schema, defs)
    if schema.get("type") == "object" or "properties" in schema:
        found = []
        for name, prop in schema["properties"].items():
            found += typed_fields(prop, {**defs, **schema.get("$defs", {})}, (*where, name))
        return found
    if schema.get("type") == "array":
        return typed_fields(schema["items"], defs, (*where, 0))
    if schema.get("type") in ("integer", "boolean"):
        return [(where, schema["type"], optional)]
    if schema.get("type") == "string" and schema.get("format") == "date-time":
        return [(where, "date-time", optional)]
    return []


class World:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=30)
        r = self.http.post("/auth/admin/signin", json={"email": ADMIN_EMAIL,
                                                        "password": ADMIN_PASSWORD})
        self.admin = r.json()["token"]
        r = self.http.post("/auth/signup", json={
            "email": f"types-{uuid.uuid4().hex[:8]}@example.com", "name": "Types",
            "password": "tangerine orbit lantern"})
        self.token = r.json()["token"]
        self.http.post("/onramp", json={"amount": "1000"}, headers=self.auth(self.token))
        r = self.http.post("/admin/events", headers=self.auth(self.admin),
                           json={"title": "Types", "outcomes": ["A", "B"]})
        event = r.json()
        self.event_id, self.market = event["id"], event["outcomes"][0]["market_id"]
        self.outcomes = [o["id"] for o in event["outcomes"]]
        r = self.http.post("/orders", headers=self.auth(self.token), json={
            "market_id": self.market, "outcome": "yes", "side": "buy", "price": "0.01",
            "quantity": 1})
        self.order_id = r.json()["order"]["id"]
        openapi = self.http.get("/openapi.json").json()
        self.defs = openapi["components"]["schemas"]
        order = {"market_id": self.market, "outcome": "yes", "side": "buy", "price": "0.01",
                 "quantity": 1}
        bases = {"OrderCreate": order, "OrderBatch": {"orders": [order]},
                 "OrderModify": {"price": "0.02"}, "QuantityIn": {"quantity": 1},
                 "ConvertIn": {"outcome_ids": [self.outcomes[0]], "quantity": 1},
                 "EventCreate": {"title": "Types"}, "EventUpdate": {"title": "Types"},
                 "EventResolve": {"void": True}, "HeartbeatIn": {"timeout_s": 300}}
        self.cases: list[tuple[str, str, dict, tuple, str, bool]] = []
        for path, operations in openapi["paths"].items():
            for method, op in operations.items():
                ref = op.get("requestBody", {}).get("content", {}).get(
                    "application/json", {}).get("schema", {}).get("$ref")
                if not ref:
                    continue
                model = ref.rsplit("/", 1)[1]
                for where, kind, optional in typed_fields(self.defs[model], self.defs):
                    assert model in bases, f"{model} has a typed field but no base body"
                    self.cases.append((method.upper(), path, bases[model], where, kind,
                                       optional))

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def send(self, method: str, template: str, body: Any) -> httpx.Response:
        return self.send_raw(method, template, json.dumps(body).encode())

    def send_raw(self, method: str, template: str, raw: bytes) -> httpx.Response:
        """``raw`` as a JSON body to the route ``template`` (its ids filled in), with the
        admin's token under ``/admin/``, the user's elsewhere."""
        path = template.format(market_id=self.market, event_id=self.event_id,
                               order_id=self.order_id)
        token = self.admin if path.startswith("/admin/") else self.token
        return self.http.request(method, path, content=raw,
                                 headers={**self.auth(token),
                                          "Content-Type": "application/json"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = ServerThread(tmp_path_factory.mktemp("types")).start()
    try:
        w = World(server.url)
        yield w
        w.http.close()
    finally:
        server.stop()


def test_the_walk_covers_every_class(world):
    found = {(path, str(where[-1]), kind) for _, path, _, where, kind, _ in world.cases}
    for expected in (("/orders", "market_id", "integer"), ("/orders", "post_only", "boolean"),
                     ("/orders", "expires_at", "date-time"),
                     ("/orders/batch", "market_id", "integer"),
                     ("/admin/events", "close_time", "date-time"),
                     ("/admin/events/{event_id}/resolve", "void", "boolean"),
                     ("/events/{event_id}/convert", "0", "integer")):
        assert expected in found, expected


@settings(max_examples=250, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_wrong_typed_id_boolean_or_timestamp_is_a_422_naming_the_field(world, data):
    method, path, base, where, kind, optional = data.draw(st.sampled_from(world.cases))
    value = data.draw(wrong_for(kind, optional), label=f"{path} {where}")
    r = world.send(method, path, with_value(base, where, value))
    name = str(where[-1]) if not isinstance(where[-1], int) else str(where[-2])
    if path == "/orders/batch":
        assert r.status_code == 200, r.text
        error = r.json()["results"][0].get("error")
        assert error and error["code"] == "invalid_field", (value, r.text)
        assert name in error["message"], (value, error)
        return
    assert r.status_code == 422, (method, path, where, value, r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == "invalid_field" and name in error["message"], (value, error)
    no_leak(error["message"])


def test_validation_messages_never_name_python_classes():
    for raw in (5, [], None, "x", {"market_id": True}, {"post_only": "yes"}):
        with pytest.raises(ValidationError) as caught:
            api.OrderCreate.model_validate(raw)
        message = validation_message(caught.value.errors(), "order")
        no_leak(message)
