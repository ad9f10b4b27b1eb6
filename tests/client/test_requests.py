"""The client builds the requests of API.md and reads its answers, over a mock transport."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from pmarket.client import (
    ApiError,
    AsyncClient,
    Client,
    OrderResult,
    OrderSpec,
    ServerUnavailable,
)

ORDER = {
    "id": 7, "client_order_id": "c1", "market_id": 3, "event_id": 2, "outcome": "no",
    "side": "buy", "type": "limit", "price": "0.30", "quantity": 10, "filled_quantity": 4,
    "remaining_quantity": 6, "time_in_force": "gtc", "post_only": False,
    "expires_at": None, "status": "partially_filled",
    "created_at": "2024-05-01T12:00:00Z", "updated_at": "2024-05-01T12:00:01+00:00",
}
TRADE = {"id": 1, "market_id": 3, "order_id": 7, "outcome": "no", "side": "buy",
         "price": "0.30", "quantity": 4, "role": "taker", "kind": "mint", "fee": "0.0000",
         "executed_at": "2024-05-01T12:00:01Z"}
EVENT = {"id": 2, "slug": "rain", "title": "Rain tomorrow?", "description": "",
         "category": "weather", "status": "active", "close_time": None,
         "outcomes": [{"id": 5, "name": "Rain", "market_id": 3, "last_price": "0.57",
                       "best_bid": "0.55", "best_ask": None, "volume": 120}],
         "created_at": "2024-05-01T00:00:00Z"}


class Recorder:
    """A mock server: answers each path from a table and keeps every request."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, object]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.get((request.method, request.url.path),
                                        (404, {"error": {"code": "not_found",
                                                         "message": "No such thing."}}))
        if body is None:
            return httpx.Response(status)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self) -> dict:
        return json.loads(self.last.content)


def client_for(answers: dict) -> tuple[Client, Recorder]:
    rec = Recorder(answers)
    return Client("http://test", transport=httpx.MockTransport(rec)), rec


def test_signup_keeps_the_token_and_sends_it_as_bearer_afterwards():
    api, rec = client_for({
        ("POST", "/auth/signup"): (201, {"token": "T1", "user": {
            "id": 1, "email": "a@x.io", "name": "Ann"}}),
        ("GET", "/balance"): (200, {"available": "10.5000", "reserved": "0", "total": "10.5"}),
    })
    auth = api.signup("a@x.io", "Ann", "pw-long-enough")
    assert auth.token == "T1" and api.user is not None and api.user.name == "Ann"
    assert rec.body() == {"email": "a@x.io", "name": "Ann", "password": "pw-long-enough"}
    assert "authorization" not in rec.last.headers
    bal = api.balance()
    assert rec.last.headers["authorization"] == "Bearer T1"
    assert bal.available == Decimal("10.5") and isinstance(bal.total, Decimal)


def test_admin_signin_reads_the_admin_object_and_marks_the_role():
    api, _ = client_for({("POST", "/auth/admin/signin"): (200, {
        "token": "A", "admin": {"id": 9, "email": "root@x.io", "name": "Root"}})})
    auth = api.admin_signin("root@x.io", "pw")
    assert auth.role == "admin" and auth.user == auth.admin and api.token == "A"


def test_place_order_sends_prices_as_decimal_strings_and_omits_unset_fields():
    api, rec = client_for({("POST", "/orders"): (201, {"order": ORDER, "trades": [TRADE]})})
    result = api.place_order(3, "no", "buy", 10, price=Decimal("0.30"), client_order_id="c1")
    assert rec.body() == {"market_id": 3, "outcome": "no", "side": "buy", "type": "limit",
                          "price": "0.30", "quantity": 10, "client_order_id": "c1"}
    assert result.order.price == Decimal("0.30") and result.order.remaining_quantity == 6
    assert result.order.is_open and result.order.created_at is not None
    assert result.order.created_at.tzinfo is not None
    assert result.trades[0].kind == "mint" and result.trades[0].fee == Decimal(0)


def test_a_float_price_is_refused_before_anything_is_sent():
    api, rec = client_for({})
    with pytest.raises(TypeError):
        api.place_order(3, "yes", "buy", 1, price=0.3)  # type: ignore[arg-type]
    assert rec.requests == []


def test_error_body_becomes_api_error_with_status_code_and_message():
    api, _ = client_for({("POST", "/offramp"): (409, {"error": {
        "code": "insufficient_balance", "message": "Only 5.00 is available."}})})
    with pytest.raises(ApiError) as err:
        api.offramp("10")
    assert (err.value.status, err.value.code) == (409, "insufficient_balance")
    assert err.value.message == "Only 5.00 is available."


def test_an_error_that_is_not_the_api_shape_still_becomes_api_error():
    api, _ = client_for({("GET", "/me"): (502, "Bad gateway"),
                         ("GET", "/balance"): (422, {"detail": [
                             {"loc": ["body", "amount"], "msg": "not on the grid"}]})})
    with pytest.raises(ApiError) as err:
        api.me()
    assert err.value.status == 502 and err.value.code == "http_502"
    with pytest.raises(ApiError) as err:
        api.balance()
    assert err.value.message == "amount: not on the grid"


def test_no_server_is_server_unavailable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    api = Client("http://test", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServerUnavailable):
        api.health()


def test_events_query_carries_search_and_filters_and_reads_items_and_total():
    api, rec = client_for({("GET", "/events"): (200, {"items": [EVENT], "total": 41})})
    page = api.events(q="rain", category="weather", status="active", limit=10, offset=20)
    assert dict(rec.last.url.params) == {"q": "rain", "category": "weather",
                                         "status": "active", "limit": "10", "offset": "20"}
    assert page.total == 41 and len(page) == 1
    outcome = page.items[0].outcomes[0]
    assert outcome.best_ask is None and outcome.last_price == Decimal("0.57")


def test_empty_search_text_is_not_sent():
    api, rec = client_for({("GET", "/events"): (200, {"items": [], "total": 0})})
    api.events(q="", category="")
    assert dict(rec.last.url.params) == {}


def test_orderbook_asks_for_view_and_depth():
    book = {"market_id": 3, "view": "no", "bids": [{"price": "0.45", "quantity": 5}],
            "asks": [], "best_bid": "0.45", "best_ask": None, "mid": None,
            "spread": None, "last_price": None, "sequence": 12}
    api, rec = client_for({("GET", "/markets/3/orderbook"): (200, book)})
    got = api.orderbook(3, view="no", depth=5)
    assert dict(rec.last.url.params) == {"view": "no", "depth": "5"}
    assert got.bids[0].price == Decimal("0.45") and got.sequence == 12


def test_batch_results_keep_request_order_with_errors_in_place():
    api, rec = client_for({("POST", "/orders/batch"): (200, {"results": [
        {"order": ORDER, "trades": []},
        {"error": {"code": "insufficient_balance", "message": "Not enough cash."}}]})})
    results = api.place_batch([OrderSpec(3, "yes", "buy", 1, "0.5"),
                               OrderSpec(3, "yes", "buy", 1000, "0.5")])
    assert len(rec.body()["orders"]) == 2
    assert isinstance(results[0], OrderResult)
    assert isinstance(results[1], ApiError) and results[1].code == "insufficient_balance"


def test_modify_cancel_and_cancel_all_use_the_documented_verbs():
    api, rec = client_for({
        ("PATCH", "/orders/7"): (200, {"order": ORDER, "trades": []}),
        ("DELETE", "/orders/7"): (200, {**ORDER, "status": "cancelled"}),
        ("DELETE", "/orders"): (200, {"cancelled": [7, 8]}),
    })
    api.modify_order(7, quantity=12)
    assert rec.body() == {"quantity": 12}
    assert api.cancel_order(7).status == "cancelled"
    assert api.cancel_all(market_id=3) == [7, 8]
    assert dict(rec.last.url.params) == {"market_id": "3"}


def test_split_and_merge_at_market_and_event_level():
    bal = {"available": "90", "reserved": "0", "total": "90"}
    pos = {"market_id": 3, "event_id": 2, "outcome_id": 5, "outcome_name": "Rain",
           "yes_quantity": 10, "no_quantity": 10, "yes_reserved": 0, "no_reserved": 0,
           "avg_cost_yes": "0.50", "avg_cost_no": "0.50", "mark_price": None,
           "value": "10.00", "unrealized_pnl": "0", "realized_pnl": "0"}
    api, rec = client_for({
        ("POST", "/markets/3/split"): (200, {"balance": bal, "position": pos}),
        ("POST", "/events/2/merge"): (200, {"balance": bal, "positions": [pos]}),
    })
    assert api.split_market(3, 10).position.yes_quantity == 10  # type: ignore[union-attr]
    assert rec.body() == {"quantity": 10}
    assert api.merge_event(2, 1).positions[0].avg_cost_no == Decimal("0.50")


def test_admin_create_resolve_void_and_delete():
    resolution = {"event": {**EVENT, "status": "resolved"}, "payouts_total": "120.00"}
    api, rec = client_for({
        ("POST", "/admin/events"): (201, EVENT),
        ("POST", "/admin/events/2/resolve"): (200, resolution),
        ("DELETE", "/admin/events/2"): (204, None),
    })
    api.create_event("Rain tomorrow?", ["Rain"], category="weather", tick_size="0.001")
    assert rec.body() == {"title": "Rain tomorrow?", "outcomes": ["Rain"],
                          "category": "weather", "tick_size": "0.001"}
    assert api.resolve_event(2, 5).payouts_total == Decimal("120.00")
    assert rec.body() == {"winning_outcome_id": 5}
    api.void_event(2)
    assert rec.body() == {"void": True}
    assert api.delete_event(2) is None


def test_degraded_health_is_a_result_not_an_error():
    api, _ = client_for({("GET", "/health"): (503, {
        "status": "degraded", "components": {"engine": "ok", "database": "down",
                                             "bus": "ok"}})})
    health = api.health()
    assert not health.ok and health.components["database"] == "down"


def test_as_token_acts_as_another_account_on_the_same_connections():
    api, rec = client_for({("GET", "/me"): (200, {"id": 2, "email": "b@x.io",
                                                  "name": "Bob", "role": "user"})})
    bob = api.as_token("TB")
    bob.me()
    assert rec.last.headers["authorization"] == "Bearer TB" and api.token is None


def test_a_malformed_success_body_is_a_bad_response_error():
    api, _ = client_for({("GET", "/balance"): (200, {"available": "x"})})
    with pytest.raises(ApiError) as err:
        api.balance()
    assert err.value.code == "bad_response"


async def test_async_client_mirrors_the_sync_one():
    rec = Recorder({("POST", "/auth/signin"): (200, {"token": "T", "user": {
        "id": 1, "email": "a@x.io", "name": "Ann"}}),
        ("GET", "/markets/3/candles"): (200, {"items": [
            {"start": "2024-05-01T12:00:00Z", "open": "0.5", "high": "0.6",
             "low": "0.4", "close": "0.55", "volume": 30}], "total": 1})})
    async with AsyncClient("http://test", transport=httpx.MockTransport(rec)) as api:
        await api.signin("a@x.io", "pw")
        page = await api.candles(3, interval="5m")
    assert rec.last.headers["authorization"] == "Bearer T"
    assert dict(rec.last.url.params) == {"interval": "5m"}
    assert page.items[0].close == Decimal("0.55")


def test_sync_and_async_clients_offer_the_same_methods():
    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")}

    assert public(Client) - {"__enter__", "__exit__"} == public(AsyncClient) - {"stream"}


def test_stp_is_sent_when_given_on_an_order_and_on_batch_items():
    api, rec = client_for({("POST", "/orders"): (201, {"order": ORDER, "trades": []}),
                           ("POST", "/orders/batch"): (200, {"results": [
                               {"order": ORDER, "trades": []}]})})
    api.place_order(3, "yes", "buy", 1, price="0.5", stp="cancel_taker")
    assert rec.body()["stp"] == "cancel_taker"
    api.place_batch([OrderSpec(3, "yes", "buy", 1, "0.5", stp="cancel_both")])
    assert rec.body()["orders"][0]["stp"] == "cancel_both"
    api.place_order(3, "yes", "buy", 1, price="0.5")
    assert "stp" not in rec.body()


async def test_convert_posts_outcome_ids_and_quantity_on_both_clients():
    bal = {"available": "91", "reserved": "0", "total": "91"}
    answers = {("POST", "/events/2/convert"): (200, {"balance": bal, "positions": []})}
    api, rec = client_for(answers)
    assert api.convert(2, [3, 4], 1).balance.available == Decimal("91")
    assert rec.body() == {"outcome_ids": [3, 4], "quantity": 1}
    rec = Recorder(answers)
    async with AsyncClient("http://test", transport=httpx.MockTransport(rec)) as aapi:
        result = await aapi.convert(2, [4], 5)
    assert rec.body() == {"outcome_ids": [4], "quantity": 5}
    assert result.positions == []


def _limited_then_ok(limited: int, retry_after: str = "0"):
    """A transport answering 429 ``limited`` times, then a balance."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= limited:
            return httpx.Response(429, headers={"Retry-After": retry_after}, json={
                "error": {"code": "rate_limited", "message": "slow down"}})
        return httpx.Response(200, json={"available": "1", "reserved": "0", "total": "1"})

    return handler, calls


def test_rate_limited_calls_are_retried_when_asked_and_raised_when_not():
    handler, calls = _limited_then_ok(2)
    with Client("http://x", "t", rate_limit_retries=2,
                transport=httpx.MockTransport(handler)) as client:
        assert client.balance().total == Decimal("1")
        assert len(calls) == 3
        # as_token keeps the policy
        assert client.as_token("u").rate_limit_retries == 2
    handler, calls = _limited_then_ok(1)
    with Client("http://x", "t", transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(ApiError) as err:
        client.balance()
    assert err.value.status == 429 and len(calls) == 1


def test_a_retry_after_longer_than_the_client_waits_is_raised():
    handler, calls = _limited_then_ok(1, retry_after="3600")
    with Client("http://x", "t", rate_limit_retries=5,
                transport=httpx.MockTransport(handler)) as client, pytest.raises(ApiError):
        client.balance()
    assert len(calls) == 1


async def test_the_async_client_retries_too():
    handler, calls = _limited_then_ok(1)
    async with AsyncClient("http://x", "t", rate_limit_retries=1,
                           transport=httpx.MockTransport(handler)) as client:
        assert (await client.balance()).total == Decimal("1")
    assert len(calls) == 2
