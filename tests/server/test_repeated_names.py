"""No request body or WebSocket frame may name a member twice (``exactjson``).

An outside probe sent ``{"price": "0.10", ..., "price": "0.90"}``: the server took the
last price, while many clients' JSON libraries (and a reviewing human) take the first.
Now every JSON the server parses is refused with the repeated name (400
``malformed_json``), on the FastAPI routes, on the orjson fast order path and over the
WebSocket, and nothing is applied. The walk covers every route with a JSON body the
OpenAPI document declares, so a new route is covered too.
"""

from __future__ import annotations

import json

import orjson
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st

from pmarket.server.exactjson import loads_strict, may_repeat_names
from tests.sim.server import ServerThread

from .test_input_types import World

# --- the parse --------------------------------------------------------------------------

NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.text(max_size=8), st.sampled_from(['":', '" :', '\\":', "a\":b"]))
DOCUMENTS = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)), max_leaves=12)


PLAIN = st.recursive(
    st.one_of(st.integers(), st.text("abc xyz", max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text("abcdef_", max_size=5), inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=400, deadline=None, database=None)
@given(document=DOCUMENTS, spaced=st.booleans())
def test_a_document_without_repeated_names_parses_as_before(document, spaced):
    """Whatever the names and strings hold (quotes and colons too), the strict parse
    gives what orjson gives: only a repeated name is refused."""
    raw = json.dumps(document, separators=(", ", " : ") if spaced else (",", ":")).encode()
    assert loads_strict(raw) == orjson.loads(raw) == document


@settings(max_examples=200, deadline=None, database=None)
@given(document=PLAIN, spaced=st.booleans())
def test_an_ordinary_body_stays_on_the_fast_path(document, spaced):
    raw = json.dumps(document, separators=(", ", " : ") if spaced else (",", ":")).encode()
    assert not may_repeat_names(raw, orjson.loads(raw))


@settings(max_examples=400, deadline=None, database=None)
@given(document=st.dictionaries(NAMES, DOCUMENTS, min_size=1, max_size=4),
       data=st.data(), spaced=st.booleans(), nested=st.booleans())
def test_a_repeated_name_anywhere_is_caught_by_both_parses(document, data, spaced, nested):
    name = data.draw(st.sampled_from(sorted(document)))
    separator = " : " if spaced else ":"
    inner = json.dumps(document, separators=(",", separator))
    repeated = inner[:-1] + f",{json.dumps(name)}{separator}{json.dumps('again')}}}"
    raw = (f'{{"orders": [{repeated}]}}' if nested else repeated).encode()
    assert may_repeat_names(raw, orjson.loads(raw))  # the fast path gives it up
    with pytest.raises(json.JSONDecodeError) as caught:
        loads_strict(raw)
    assert repr(name) in caught.value.msg and "more than once" in caught.value.msg


def test_the_count_takes_any_depth_orjson_takes():
    deep = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert not may_repeat_names(deep, orjson.loads(deep))
    deep = b'{"a": ' + b'{"b": ' * 1000 + b"1" + b"}" * 1000 + b"}"
    assert not may_repeat_names(deep, orjson.loads(deep))


# --- every route, the fast path, the WebSocket ------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = ServerThread(tmp_path_factory.mktemp("names")).start()
    try:
        w = World(server.url)
        yield w
        w.http.close()
    finally:
        server.stop()


def json_routes(world: World) -> list[tuple[str, str]]:
    openapi = world.http.get("/openapi.json").json()
    return sorted((method.upper(), path) for path, operations in openapi["paths"].items()
                  for method, op in operations.items()
                  if "application/json" in op.get("requestBody", {}).get("content", {}))


def test_every_route_with_a_json_body_refuses_a_repeated_name(world):
    routes = json_routes(world)
    assert ("POST", "/orders") in routes and ("POST", "/onramp") in routes
    for method, path in routes:
        for raw in (b'{"quantity": 1, "quantity": 2}', b'{"orders": [{"a": 1, "a": 2}]}'):
            r = world.send_raw(method, path, raw)
            assert r.status_code == 400, (method, path, raw, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "malformed_json", (method, path, error)
            assert "more than once" in error["message"], (method, path, error)


@pytest.mark.parametrize("raw", [
    b'{"market_id": %d, "outcome": "yes", "side": "buy", "price": "0.10", "quantity": 1,'
    b' "price": "0.90"}',
    b'{"market_id": %d, "outcome": "yes", "side": "buy", "price" : "0.10", "quantity": 1,'
    b' "price"\t:"0.90"}',
    b'{"market_id": %d, "outcome": "yes", "side": "sell", "outcome": "no", "side": "buy",'
    b' "price": "0.10", "quantity": 1}',
], ids=["price", "spaced", "two-names"])
def test_an_order_with_a_repeated_name_is_refused_and_nothing_is_placed(world, raw):
    auth = world.auth(world.token)
    before = (world.http.get("/orders", params={"status": "open"}, headers=auth).json(),
              world.http.get("/balance", headers=auth).json())
    r = world.send_raw("POST", "/orders", raw % world.market)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed_json"
    assert "appears more than once" in r.json()["error"]["message"]
    after = (world.http.get("/orders", params={"status": "open"}, headers=auth).json(),
             world.http.get("/balance", headers=auth).json())
    assert after == before


def test_a_deeply_nested_order_body_is_a_clear_error(world):
    """orjson takes 1,024 levels; the name count walks them without recursing, and the
    route refuses the body (not a 500)."""
    raw = b'{"market_id": %d, "outcome": "yes", "side": "buy", "price": "0.01", "quantity": 1,'
    raw += b' "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = world.send_raw("POST", "/orders", raw % world.market)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "malformed_json",
        "message": "request body is not valid JSON: arrays or objects nest too deeply "
                   "(at character 0)"}


def test_a_single_name_order_still_takes_the_fast_path(world):
    raw = b'{"market_id": %d, "outcome": "yes", "side": "buy", "price": "0.01", "quantity": 1}'
    r = world.send_raw("POST", "/orders", raw % world.market)
    assert r.status_code == 201, r.text


async def test_a_websocket_frame_with_a_repeated_name_is_an_error(world):
    url = str(world.http.base_url).replace("http://", "ws://").rstrip("/") + "/ws"
    async with websockets.connect(url) as ws:
        await ws.send('{"op": "subscribe", "channels": ["book:1"], "op": "unsubscribe"}')
        message = orjson.loads(await ws.recv())
        assert message["type"] == "error"
        assert message["data"]["code"] == "malformed_json"
        assert "'op' appears more than once" in message["data"]["message"]
        await ws.send('{"op": "dance"}')  # the connection stays open, frames answered
        assert orjson.loads(await ws.recv())["data"]["code"] == "invalid_op"


def test_other_malformed_json_says_what_and_where(world):
    r = world.send_raw("POST", "/onramp", b'{"amount": }')
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "malformed_json",
        "message": "request body is not valid JSON: Expecting value (at character 11)"}
