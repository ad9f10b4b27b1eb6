"""What /openapi.json documents, the API accepts; /docs and /redoc work offline.

Every default and example in the document (query parameters, request body fields, at any
depth) is sent to its operation, on a valid request otherwise, and must be accepted: a
documented value the API then refuses (like a ``tick_size`` default in internal units)
fails here. The documentation pages load their scripts and styles from the server itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_asyncio

from .harness import Client, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory):
    """The embedded exchange: the document is the same for every kind of deployment."""
    srv = await start_server("embedded", tmp_path_factory.mktemp("openapi"))
    try:
        yield srv
    finally:
        await srv.stop()


def _documented(schema: Any, doc: dict, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (field path, value) a schema documents as a default or an example."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        return _documented(doc["components"]["schemas"][schema["$ref"].split("/")[-1]], doc,
                           path)
    found = [(path, schema["default"])] if "default" in schema else []
    found += [(path, schema["example"])] if "example" in schema else []
    found += [(path, value) for value in schema.get("examples", [])
              if isinstance(schema.get("examples"), list)]
    for name, sub in schema.get("properties", {}).items():
        found += _documented(sub, doc, (*path, name))
    if "items" in schema:
        found += _documented(schema["items"], doc, (*path, 0))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _documented(sub, doc, path)
    return found


def _with(body: Any, path: tuple, value: Any) -> Any:
    """``body`` with the field at ``path`` set to ``value``."""
    if not path:
        return value
    head, *rest = path
    copy = list(body) if isinstance(body, list) else dict(body)
    copy[head] = _with(copy[head] if rest else None, tuple(rest), value)
    return copy


async def _context(client: Client) -> dict:
    """Path parameters and valid request bodies for every operation that takes a body."""
    admin = await client.admin()
    token, user_id = await client.user(cash="100000")
    event = await client.event(outcomes=["A", "B"])
    market = event["outcomes"][0]["market_id"]
    order = await client.order(token, market, "yes", "buy", "0.10", 1)
    order_body = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.10",
                  "quantity": 1}
    return {
        "admin": admin, "token": token,
        "ids": {"market_id": market, "event_id": event["id"], "order_id": order["order"]["id"],
                "user_id": user_id},
        "bodies": {
            "OrderCreate": order_body,
            "OrderBatch": {"orders": [order_body]},
            "EventCreate": {"title": "Documented defaults"},
            "EventResolve": None,  # a fresh event for each: see _send
            "OrderModify": {"quantity": 2},
            "EventUpdate": {},
            "HeartbeatIn": {"timeout_s": 30},
        },
    }


async def _send(client: Client, method: str, path: str, ctx: dict, operation: dict,
                body: Any = None, params: dict | None = None):
    token = ctx["admin"] if path.startswith("/admin") else ctx["token"]
    url = re.sub(r"\{(\w+)\}", lambda m: str(ctx["ids"][m.group(1)]), path)
    if body is not None and path.endswith("/resolve"):  # a fresh event for each resolution
        event = await client.event(outcomes=["A", "B"])
        url = f"/admin/events/{event['id']}/resolve"
        if body.get("winning_outcome_id") is None and not body.get("void"):
            body = {**body, "winning_outcome_id": event["outcomes"][0]["id"]}
    return await client.http.request(method.upper(), url, json=body, params=params,
                                     headers=client.auth(token))


async def test_every_documented_default_and_example_is_accepted(server):
    client = Client(server)
    try:
        doc = (await client.http.get("/openapi.json")).json()
        ctx = await _context(client)
        checked = []
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] != "query":
                        continue
                    for _, value in _documented(parameter.get("schema"), doc):
                        r = await _send(client, method, path, ctx, operation,
                                        params={parameter["name"]: value})
                        assert r.status_code < 400, (method, path, parameter["name"],
                                                     value, r.text)
                        checked.append((path, parameter["name"], value))
                schema = (operation.get("requestBody", {}).get("content", {})
                          .get("application/json", {}).get("schema"))
                documented = _documented(schema, doc)
                if not documented:
                    continue
                name = schema["$ref"].split("/")[-1]
                assert name in ctx["bodies"], f"add a valid {name} body to this test"
                base = ctx["bodies"][name] or {}
                for field, value in documented:
                    r = await _send(client, method, path, ctx, operation,
                                    body=_with(base, field, value))
                    assert r.status_code < 400, (method, path, field, value, r.text)
                    checked.append((path, field, value))
        assert len(checked) >= 20  # the walk found what the document holds
        assert ("/admin/events", ("tick_size",), "0.01") in checked
    finally:
        await client.aclose()


async def test_docs_pages_load_their_assets_from_the_server(server):
    client = Client(server)
    try:
        for page in ("/docs", "/redoc"):
            r = await client.http.get(page)
            assert r.status_code == 200, r.text
            sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
            assets = [s for s in sources if s.endswith((".js", ".css", ".png"))]
            assert assets, r.text
            for asset in assets:
                assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
                loaded = await client.http.get(asset)
                assert loaded.status_code == 200 and len(loaded.content) > 1000, asset
            assert "fonts.googleapis" not in r.text and "cdn." not in r.text
    finally:
        await client.aclose()
