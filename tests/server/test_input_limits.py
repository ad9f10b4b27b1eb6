"""Input limits at the HTTP edge: every field of every request model, every parameter.

The walkers need no list of fields: request models are found from the OpenAPI
document's request bodies (and every ``In`` model of ``pmarket.api`` must be
one of them), their fields from each model's own JSON schema, the query and path
parameters from the OpenAPI document. So a field or parameter added tomorrow is fuzzed
too. For each one they send what the input limits refuse — NUL, other C0/C1 control
characters, a lone surrogate (JSON ``"\\ud800"``), one character past the maximum
length, a timestamp outside 1970..9999 UTC once its offset is applied or without a
zone, ``"1e999999"``, a 41-character decimal, a JSON ``1e400``, integers past BIGINT —
and expect 422 ``invalid_field`` in the API's error shape naming the field, never a
500, on the embedded exchange (SQLite) and the deployment (Redis + PostgreSQL). Each
request model's base body is first shown to be valid, so a 422 can only come from the
value under test.

The direct tests below name the cases an attacker found (issue 11), check that the
extremes the limits allow are stored and read back intact, and that a command sent
past the HTTP layer is refused by the engine with the same code.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from pmarket import api
from pmarket.engine import CreateEvent, Outcome, PlaceOrder, Side, TimeInForce
from pmarket.server.errors import ApiError

pytestmark = pytest.mark.asyncio(loop_scope="module")

POISON = {"NUL": "\x00", "SOH": "\x01", "DEL": "\x7f", "C1 NEL": "\x85",
          "lone surrogate": "\ud800"}
BAD_TIMES = {
    "year 10000 after the offset": "9999-12-31T23:59:59-14:00",
    "before 1970": "1969-12-31T23:59:59Z",
    "year 0 after the offset": "0001-01-01T00:00:00+14:00",
    "no time zone": "2030-01-01T00:00:00",
}
RAW = "__raw_json__:"  # a value spliced into the JSON text as it is (no JSON encoder makes it)
BAD_DECIMALS = {"exponent 1e999999": "1e999999", "exponent 1e400000": "1e400000",
                "41 characters": "1" * 41, "NaN": "NaN", "JSON number 1e400": RAW + "1e400"}
BAD_INTS = {"2**63": 2**63, "10**30": 10**30}
# Ids and integers are JSON integers only, booleans JSON true/false only, timestamps ISO
# 8601 strings with a zone only (docs/API-ADDITIONS.md, "Input limits").
WRONG_INTS = {"true": True, "false": False, 'string "1"': "1", 'string " 1"': " 1",
              "1.0": RAW + "1.0", "1.5": 1.5, "1e0": RAW + "1e0", "array": [1],
              "object": {"id": 1}}
WRONG_BOOLS = {'string "yes"': "yes", 'string "true"': "true", "1": 1, "0": 0,
               "null": None, "array": [True]}
WRONG_TIMES = {"number 1": 1, 'string "99999999999"': "99999999999",
               "123456789012345.67": 123456789012345.67, "true": True,
               "date only": "2030-01-01", "object": {"t": 1}}
WRONG_PATH_IDS = {"+1": "+1", "leading space": "%201", "Arabic-Indic one": "%D9%A1",
                  "1.0": "1.0", "1_0": "1_0", "0x1": "0x1", "-1": "-1"}
WRONG_QUERY_INTS = {"+1": "+1", "leading space": " 1", "Arabic-Indic one": "\u0661",
                    "1.0": "1.0", "1_0": "1_0", "-1": "-1", "true": "true"}
PASSWORD = "tangerine orbit lantern"


def encode(body: Any) -> bytes:
    """JSON with escapes for everything non-ASCII (so a lone surrogate travels as
    ``\\ud800``, exactly as an attacker sends it), raw values spliced in."""
    text = json.dumps(body, ensure_ascii=True)
    while RAW in text:
        start = text.index('"' + RAW)
        end = text.index('"', start + 1)
        text = text[:start] + text[start + 1 + len(RAW):end] + text[end + 1:]
    return text.encode()


async def send(client, method: str, path: str, body: Any = None, token: str | None = None,
               params: str = ""):
    headers = client.auth(token) if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return await client.http.request(method, path + params, headers=headers,
                                     content=None if body is None else encode(body))


def assert_refused(r, where: tuple, what: str) -> None:
    """422 naming the field; in a batch (``{"results": [...]}``), the item's own error."""
    if r.status_code == 200 and isinstance(r.json().get("results"), list):
        index = next(i for i, key in enumerate(where) if isinstance(key, int))
        error = r.json()["results"][where[index]]["error"]
        name = ".".join(str(p) for p in where[index + 1:])
        assert error["code"] == "invalid_field" and name in error["message"], f"{what}: {error}"
        return
    assert_invalid_field(r, ".".join(str(p) for p in where), what)


def assert_invalid_field(r, name: str, what: str) -> None:
    assert r.status_code == 422, f"{what}: {r.status_code} {r.text}"
    error = r.json()["error"]
    assert error["code"] == "invalid_field" and isinstance(error["message"], str), what
    assert name in error["message"], f"{what}: the message does not name {name}: {error}"


# --- request bodies -------------------------------------------------------------------


def request_models(openapi: dict) -> dict[str, list[tuple[str, str]]]:
    """Each request body model's name -> its (method, path) operations."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                found.setdefault(ref.rsplit("/", 1)[1], []).append((method.upper(), path))
    return found


def _resolve(schema: dict, defs: dict) -> dict:
    if "$ref" in schema:
        return defs[schema["$ref"].rsplit("/", 1)[1]]
    options = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(options) == 1:
        return _resolve(options[0], defs)
    return schema


def field_cases(schema: dict, defs: dict, base: Any, where: tuple) -> list[tuple]:
    """(location, label, bad value) for every leaf field under ``schema``."""
    schema = _resolve(schema, defs)
    types = {s.get("type") for s in schema.get("anyOf", ())}
    if schema.get("type") == "object" or "properties" in schema:
        cases = []
        for name, prop in schema["properties"].items():
            value = base.get(name) if isinstance(base, dict) else None
            cases += field_cases(prop, defs, value, (*where, name))
        return cases
    if schema.get("type") == "array":
        item = base[0] if isinstance(base, list) and base else None
        return field_cases(schema["items"], defs, item, (*where, 0))
    if {"string", "number"} <= types:
        return [(where, label, value) for label, value in BAD_DECIMALS.items()]
    if schema.get("type") == "string" and schema.get("format") == "date-time":
        return [(where, label, value) for label, value in {**BAD_TIMES, **WRONG_TIMES}.items()]
    if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        assert "maxLength" in schema, f"text field {where} has no maximum length"
        text = base if isinstance(base, str) and base else "ab"
        cases = [(where, f"{label} in text", text[:1] + char + text[1:])
                 for label, char in POISON.items()]
        return [*cases, (where, "one past the maximum length", "x" * (schema["maxLength"] + 1))]
    if schema.get("type") == "integer":
        return [(where, label, value) for label, value in {**BAD_INTS, **WRONG_INTS}.items()]
    if schema.get("type") == "boolean":
        return [(where, label, value) for label, value in WRONG_BOOLS.items()]
    return []  # enumerations: the schema itself admits nothing else


def with_value(base: Any, where: tuple, value: Any) -> Any:
    """A deep copy of ``base`` with the field at ``where`` set to ``value``."""
    body = json.loads(json.dumps(base))
    target = body
    for key, after in zip(where, (*where[1:], None), strict=True):
        if after is None:
            break
        if isinstance(target, dict) and key not in target:
            target[key] = [] if isinstance(after, int) else {}
        if isinstance(target, list) and key == len(target):
            target.append([] if isinstance(after, int) else {})
        target = target[key]
    if isinstance(target, list) and where[-1] == len(target):
        target.append(value)
    else:
        target[where[-1]] = value
    return body


class World:
    """What the base bodies and paths refer to: a funded user, events, an open order."""

    async def build(self, client) -> World:
        self.token, self.user_id = await client.user("limits", cash="1000")
        self.admin = await client.admin()
        event = await client.event(["A", "B"])
        self.event_id = event["id"]
        self.outcomes = [o["id"] for o in event["outcomes"]]
        self.market = self.outcomes[0]
        order = await client.order(self.token, self.market, "yes", "buy", "0.01", 1)
        self.order_id = order["order"]["id"]
        return self

    def base(self, model: str) -> dict:
        order = {"market_id": self.market, "outcome": "yes", "side": "buy", "price": "0.01",
                 "quantity": 1}
        return {
            "SignUp": {"email": f"limits-{uuid.uuid4().hex[:8]}@example.com", "name": "Ann",
                       "password": PASSWORD},
            "SignIn": {"email": "nobody@example.com", "password": PASSWORD},
            "AmountIn": {"amount": "1"},
            "OrderCreate": order,
            "OrderBatch": {"orders": [order]},
            "OrderModify": {"price": "0.02"},
            "QuantityIn": {"quantity": 1},
            "ConvertIn": {"outcome_ids": [self.outcomes[0]], "quantity": 1},
            "EventCreate": {"title": "Limits"},
            "EventUpdate": {"title": "Limits renamed"},
            "EventResolve": {"void": True},
            "HeartbeatIn": {"timeout_s": 300},
            "ApiKeyCreate": {"name": "bot", "scopes": ["read"]},
        }[model]

    async def path(self, client, template: str) -> str:
        event_id = self.event_id
        if template.startswith("/admin/events/{event_id}"):
            event_id = (await client.event(["X", "Y"]))["id"]  # resolve/edit a throwaway
        return template.format(market_id=self.market, event_id=event_id,
                               order_id=self.order_id)

    def token_for(self, path: str) -> str | None:
        if path.startswith("/auth/"):
            return None
        return self.admin if path.startswith("/admin/") else self.token


async def test_every_field_of_every_request_model_refuses_what_the_limits_refuse(client):
    openapi = (await client.http.get("/openapi.json")).json()
    defs = openapi["components"]["schemas"]
    models = request_models(openapi)
    declared = {cls.__name__ for cls in vars(api).values()
                if isinstance(cls, type) and issubclass(cls, api.In) and cls is not api.In}
    assert declared <= set(models), f"request models without a route: {declared - set(models)}"
    world = await World().build(client)
    sent = 0
    fuzzed: set[tuple[str, str, str]] = set()
    for model, operations in models.items():
        base = world.base(model)
        cases = field_cases(defs[model], defs, base, ())
        assert cases, f"{model}: no field was fuzzed"
        for method, template in operations:
            path = await world.path(client, template)
            token = world.token_for(path)
            r = await send(client, method, path, base, token)
            assert r.status_code < 500 and r.status_code not in (400, 422), \
                f"{model} base body is not valid at {method} {template}: {r.text}"
            for where, label, value in cases:
                fuzzed.add((model, str(where[-1]), label))
                path = await world.path(client, template)
                r = await send(client, method, path, with_value(base, where, value), token)
                assert_refused(r, where, f"{method} {template} {where} = {label}")
                sent += 1
            for key in ("a\x00b", "\ud800", "x\x85"):  # field *names* are client text too
                r = await send(client, method, path, {**base, key: 1}, token)
                assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field"
    assert sent > 100
    for expected in (("OrderCreate", "market_id", "true"), ("OrderCreate", "market_id",
                                                             'string " 1"'),
                     ("OrderCreate", "post_only", 'string "yes"'),
                     ("OrderCreate", "expires_at", 'string "99999999999"'),
                     ("EventCreate", "close_time", "number 1"),
                     ("EventUpdate", "close_time", "123456789012345.67"),
                     ("EventResolve", "void", "1"), ("EventResolve", "winning_outcome_id", "1.0"),
                     ("ConvertIn", "0", "true"), ("HeartbeatIn", "timeout_s", 'string "1"')):
        assert expected in fuzzed, f"{expected} was not fuzzed"


def parameter_cases(param: dict) -> list[tuple[str, Any]]:
    """(label, bad value) for a query or path parameter."""
    schema = _resolve(param["schema"], {})
    if schema.get("type") == "integer":
        plain = WRONG_PATH_IDS if param["in"] == "path" else WRONG_QUERY_INTS
        return [*BAD_INTS.items(), *plain.items()]
    if param["in"] != "query" or schema.get("type") != "string":
        return []
    if schema.get("format") == "date-time":
        return list(BAD_TIMES.items())
    if "enum" in schema or "const" in schema:
        return []
    assert "maxLength" in schema, f"query parameter {param['name']} has no maximum length"
    # A URL carries UTF-8 only: a lone surrogate cannot be sent in one.
    cases = [(label, f"a{char}b") for label, char in POISON.items() if label != "lone surrogate"]
    return [*cases, ("one past the maximum length", "x" * (schema["maxLength"] + 1))]


async def test_every_query_and_path_parameter_refuses_what_the_limits_refuse(client):
    openapi = (await client.http.get("/openapi.json")).json()
    world = await World().build(client)
    checked = set()
    for template, operations in openapi["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                for label, value in parameter_cases(param):
                    name = param["name"]
                    if param["in"] == "path":
                        path = await world.path(client, template.replace(
                            "{" + name + "}", str(value)))
                        query = ""
                    else:
                        path = await world.path(client, template)
                        query = "?" + str(httpx.QueryParams({name: value}))
                    r = await send(client, method.upper(), path, None, world.token_for(path),
                                   params=query)
                    assert_invalid_field(r, name, f"{method.upper()} {template} {name}={label}")
                    checked.add((template, name))
    for expected in (("/markets/{market_id}/candles", "start"), ("/events", "q"),
                     ("/events", "category"), ("/orders/{order_id}", "order_id"),
                     ("/admin/users/{user_id}/disable", "user_id"), ("/orders", "market_id"),
                     ("/api-keys/{key_id}", "key_id"), ("/positions", "limit")):
        assert expected in checked, f"{expected} was not fuzzed"


# --- the cases an attacker found (issue 11) ---------------------------------------------


async def test_the_named_attacks_are_422_never_500(client):
    world = await World().build(client)
    user, admin = client.auth(world.token), client.auth(world.admin)
    order = {"market_id": world.market, "outcome": "yes", "side": "buy", "price": "0.01",
             "quantity": 1}
    r = await client.http.post("/orders", headers=user, json={
        **order, "time_in_force": "gtd", "expires_at": "9999-12-31T23:59:59-14:00"})
    assert_invalid_field(r, "expires_at", "gtd expiry in year 10000 UTC")
    assert "9999-12-31" in r.json()["error"]["message"]
    r = await send(client, "POST", "/orders", {**order, "client_order_id": "a\x00b"},
                   world.token)
    assert_invalid_field(r, "client_order_id", "NUL in client_order_id")
    assert "U+0000" in r.json()["error"]["message"]
    r = await client.http.post("/admin/events", headers=admin, json={
        "title": "Late", "close_time": "9999-12-31T23:59:59-00:01"})
    assert_invalid_field(r, "close_time", "close_time past 9999")
    r = await client.http.patch(f"/admin/events/{world.event_id}", headers=admin, json={
        "close_time": "10000-01-01T00:00:00Z"})
    assert_invalid_field(r, "close_time", "close_time in year 10000")
    r = await send(client, "POST", "/admin/events", {"title": "Nul\x00title"}, world.admin)
    assert_invalid_field(r, "title", "NUL in an event title")
    r = await client.http.get(f"/markets/{world.market}/candles",
                              params={"start": "9999-12-31T23:59:59-14:00"})
    assert_invalid_field(r, "start", "candles start past 9999")
    for path in ("/auth/signup", "/auth/signin", "/auth/admin/signin"):
        body = {"email": "nul\x00@example.com", "name": "N", "password": PASSWORD}
        if path != "/auth/signup":
            del body["name"]
        r = await send(client, "POST", path, body)
        assert_invalid_field(r, "email", f"NUL in the email of {path}")
        r = await send(client, "POST", path, {**body, "email": "ok@example.com",
                                              "password": "tangerine\x00orbit"})
        assert_invalid_field(r, "password", f"NUL in the password of {path}")
    r = await send(client, "POST", "/auth/signup", {
        "email": f"n-{uuid.uuid4().hex[:6]}@example.com", "name": "A\x00n",
        "password": PASSWORD})
    assert_invalid_field(r, "name", "NUL in a user name")
    for amount in ("1e999999", "1e400000", RAW + "1e999999", "1" * 41):
        started = time.perf_counter()
        r = await send(client, "POST", "/onramp", {"amount": amount}, world.token)
        assert_invalid_field(r, "amount", f"amount {amount}")
        assert time.perf_counter() - started < 5, "the amount reached Decimal arithmetic"
    r = await client.http.get("/balance", headers=user)
    assert r.json()["total"] == "1000.0000"  # nothing was applied


async def test_a_json_integer_too_long_to_parse_is_a_4xx(client):
    world = await World().build(client)
    r = await send(client, "POST", "/onramp", {"amount": RAW + "9" * 5000}, world.token)
    assert 400 <= r.status_code < 500 and "error" in r.json()


async def test_a_json_number_is_taken_at_its_exact_value_never_rounded(client):
    """A JSON number off the grid is refused even where a float would round it onto the
    grid (``0.30000000000000001`` is 0.3 as a float), on the fast path for orders, in a
    batch and in every other body; a number on the grid is taken exactly."""
    world = await World().build(client)
    order = {"market_id": world.market, "outcome": "yes", "side": "buy", "quantity": 1}
    for price in ("0.30000000000000001", "0.2999999999999999999"):
        r = await send(client, "POST", "/orders", {**order, "price": RAW + price},
                       world.token)
        assert_invalid_field(r, "price", f"JSON price {price}")
        r = await send(client, "POST", "/orders/batch",
                       {"orders": [{**order, "price": RAW + price}]}, world.token)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["error"]["code"] == "invalid_field", r.text
    r = await send(client, "POST", "/onramp", {"amount": RAW + "10000000.00000000001"},
                   world.token)
    assert_invalid_field(r, "amount", "a JSON amount that a float rounds onto the grid")
    r = await send(client, "POST", "/orders", {**order, "price": RAW + "0.3"}, world.token)
    assert r.status_code == 201 and r.json()["order"]["price"] == "0.30", r.text
    r = await send(client, "POST", "/onramp", {"amount": RAW + "0.0001"}, world.token)
    assert r.status_code == 200, r.text
    r = await client.http.get("/balance", headers=client.auth(world.token))
    assert r.json()["total"] == "1000.0001"


async def test_the_extremes_the_limits_allow_are_stored_and_read_back(client):
    world = await World().build(client)
    admin, user = world.admin, world.token
    title = ("\U0001f468\u200d\U0001f469\u200d\U0001f467 \u00a0Ω\U0010fffd" * 100)[:500]
    body = {"title": title, "description": "é" * 10_000, "category": "\u200e" * 100,
            "slug": "a-0" * 66 + "zz", "close_time": "9999-12-31T23:59:59.999Z",
            "outcomes": ["\U0001f600" * 200, "B" * 200], "tick_size": "0.0001"}
    r = await client.http.post(  # as UTF-8, not escaped: the body fits the 64 KiB limit
        "/admin/events", headers={**client.auth(admin), "Content-Type": "application/json"},
        content=json.dumps(body, ensure_ascii=False).encode())
    assert r.status_code == 201, r.text
    event = r.json()
    r = await client.http.get(f"/events/{event['id']}")
    stored = r.json()
    assert (stored["title"], stored["description"], stored["category"], stored["slug"]) == \
        (title, body["description"], body["category"], body["slug"])
    assert stored["close_time"].startswith("9999-12-31T23:59:59.999")
    assert [o["name"] for o in stored["outcomes"]] == body["outcomes"]
    market = stored["outcomes"][0]["market_id"]
    coid = " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~AZaz" + "x" * 17
    assert len(coid) == 64
    r = await send(client, "POST", "/orders", {
        "market_id": market, "outcome": "yes", "side": "buy", "price": "0.0001",
        "quantity": 1, "time_in_force": "gtd", "expires_at": "9999-12-31T23:59:59.999+00:00",
        "client_order_id": coid}, user)
    assert r.status_code == 201, r.text
    oid = r.json()["order"]["id"]
    r = await client.http.get(f"/orders/{oid}", headers=client.auth(user))
    assert r.status_code == 200 and r.json()["client_order_id"] == coid
    assert r.json()["expires_at"].startswith("9999-12-31T23:59:59.999")
    r = await client.http.get(f"/markets/{market}/candles", params={
        "start": "1970-01-01T00:00:00Z", "end": "9999-12-31T23:59:59.999Z"})
    assert r.status_code == 200, r.text


async def test_a_command_past_the_http_layer_is_refused_by_the_engine_as_422(client, server):
    """The engine applies the same limits: a command sent straight to it (as Redis, the
    simulator or a future client would) is rejected with ``invalid_field``, which the
    gateway maps to 422."""
    world = await World().build(client)
    gateway = server.runtime.gateway
    order = dict(user_id=world.user_id, market_id=world.market, outcome=Outcome.YES,
                 side=Side.BUY, price=100, quantity=1)
    for command in (
        PlaceOrder(**order, client_order_id="a\x00b"),
        PlaceOrder(**order, client_order_id="é"),
        PlaceOrder(**order, client_order_id="x" * 65),
        PlaceOrder(**order, tif=TimeInForce.GTD, expires_at_ms=253_402_300_800_000),
        CreateEvent(title="Nul\x00title"),
        CreateEvent(title="ok", outcomes=("A", "B\x01")),
        CreateEvent(title="ok", close_time_ms=253_402_300_800_000),
        CreateEvent(title="ok", category="c" * 101),
    ):
        with pytest.raises(ApiError) as raised:
            await gateway.send(command)
        assert (raised.value.status, raised.value.code) == (422, "invalid_field"), command
