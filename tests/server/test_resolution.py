"""Resolution in the API's objects, and what it paid: on both deployment kinds.

* An event says who won (``resolution``, each outcome's ``result``), a market its
  ``result``; both are null until the event resolves: with a winner, with none (a
  single-outcome event's NO won) and void.
* A settled position is marked at what a YES share paid (1, 0, 1/N), never at the last
  trade; the portfolio's P&L is the realised P&L of what was paid.
* ``GET /payouts`` lists what each resolution paid, newest first, with its YES and NO
  shares; filtered by event, paged, only one's own; every answer also from the database.
"""

from __future__ import annotations

import pytest

from .harness import Client
from .test_readmodel import compare_paths

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def resolve(client: Client, event_id: int, **body) -> dict:
    r = await client.http.post(f"/admin/events/{event_id}/resolve", json=body,
                               headers=client.auth(await client.admin()))
    assert r.status_code == 200, r.text
    return r.json()["event"]


async def get(client: Client, path: str, token: str | None = None):
    r = await client.http.get(path, headers=client.auth(token) if token else {})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_winner_is_shown_and_settled_positions_are_marked_at_their_payout(
        server, client):
    event = await client.event()
    market = event["outcomes"][0]["market_id"]
    assert event["resolution"] is None and event["outcomes"][0]["result"] is None
    (alice, _), (bob, _) = await client.user("alice"), await client.user("bob")
    await client.order(alice, market, "yes", "buy", "0.60", 10)
    await client.order(bob, market, "no", "buy", "0.40", 10)  # mint at 0.60
    await client.order(alice, market, "yes", "buy", "0.99", 1)  # last trade stays 0.60
    before = await get(client, "/positions", alice)
    assert before["items"][0]["settled"] is False
    assert before["items"][0]["mark_price"] == "0.6000"

    resolved = await resolve(client, event["id"], winning_outcome_id=market)
    assert resolved["resolution"]["winning_outcome_id"] == market
    assert resolved["resolution"]["void"] is False
    assert resolved["resolution"]["resolved_at"].endswith("Z")
    assert resolved["outcomes"][0]["result"] == "won"
    assert (await get(client, f"/events/{event['id']}")) == resolved
    assert (await get(client, f"/markets/{market}"))["result"] == "yes"

    for token, pnl in ((alice, "4.0000"), (bob, "-4.0000")):
        (position,) = (await get(client, "/positions", token))["items"]
        assert position["settled"] is True
        assert position["mark_price"] == "1.0000"
        assert (position["yes_quantity"], position["no_quantity"]) == (0, 0)
        assert position["value"] == "0.0000" and position["unrealized_pnl"] == "0.0000"
        assert position["realized_pnl"] == pnl
        portfolio = await get(client, "/portfolio", token)
        assert portfolio["pnl"] == pnl
        assert portfolio["total_value"] == portfolio["balance"]["total"]
    assert (await get(client, "/payouts", alice))["items"] == [{
        "event_id": event["id"], "market_id": market, "outcome_name": "Yes",
        "yes_quantity": 10, "no_quantity": 0, "amount": "10.0000",
        "paid_at": resolved["resolution"]["resolved_at"]}]
    (paid,) = (await get(client, "/payouts", bob))["items"]
    assert (paid["yes_quantity"], paid["no_quantity"], paid["amount"]) == (0, 10, "0.0000")
    await compare_paths(server, client.http, [
        (p, t) for t in (alice, bob) for p in ("/positions", "/portfolio", "/payouts")]
        + [(f"/events/{event['id']}", None), (f"/markets/{market}", None)])


async def test_no_winner_and_void_resolutions(server, client):
    single = await client.event()
    multi = await client.event(["A", "B", "C"])
    s_market = single["outcomes"][0]["market_id"]
    a, b, c = (o["market_id"] for o in multi["outcomes"])
    token, _ = await client.user("carol")
    for path, body in ((f"/markets/{s_market}/split", {"quantity": 4}),
                       (f"/events/{multi['id']}/split", {"quantity": 3}),
                       (f"/markets/{a}/split", {"quantity": 1})):
        r = await client.http.post(path, json=body, headers=client.auth(token))
        assert r.status_code == 200, r.text

    resolved = await resolve(client, single["id"], winning_outcome_id=None)
    assert resolved["resolution"]["winning_outcome_id"] is None
    assert resolved["resolution"]["void"] is False
    assert resolved["outcomes"][0]["result"] == "lost"
    assert (await get(client, f"/markets/{s_market}"))["result"] == "no"

    voided = await resolve(client, multi["id"], void=True)
    assert voided["resolution"]["winning_outcome_id"] is None
    assert voided["resolution"]["void"] is True
    assert [o["result"] for o in voided["outcomes"]] == ["void"] * 3
    assert {(await get(client, f"/markets/{m}"))["result"] for m in (a, b, c)} == {"void"}

    marks = {p["market_id"]: (p["mark_price"], p["settled"])
             for p in (await get(client, "/positions", token))["items"]}
    expected = {s_market: ("0.0000", True), a: ("0.3333", True), b: ("0.3333", True),
                c: ("0.3333", True)}
    # (a position paid exactly its cost has no P&L left to show, and is not listed)
    assert marks.items() <= expected.items() and {s_market, a} <= set(marks)
    paid = (await get(client, "/payouts", token))["items"]
    # newest first: the void's three positions (in outcome order, reversed), then the NO
    assert [(p["market_id"], p["yes_quantity"], p["no_quantity"], p["amount"])
            for p in paid] == [(c, 3, 0, "1.0000"), (b, 3, 0, "1.0000"),
                               (a, 4, 1, "2.0000"), (s_market, 4, 4, "4.0000")]
    page = await get(client, f"/payouts?event_id={multi['id']}&limit=2&offset=1", token)
    assert page["total"] == 3 and [p["market_id"] for p in page["items"]] == [b, a]
    assert (await get(client, f"/payouts?event_id={single['id']}", token))["total"] == 1
    other, _ = await client.user("dave")
    assert await get(client, "/payouts", other) == {"items": [], "total": 0}
    await compare_paths(server, client.http, [
        (f"/payouts?event_id={multi['id']}&limit=2&offset=1", token),
        ("/payouts", token), ("/positions", token), ("/portfolio", token),
        (f"/events/{multi['id']}", None), (f"/events/{single['id']}", None)])


async def test_a_void_yes_no_question_marks_both_sides_at_half(server, client):
    event = await client.event()
    market = event["outcomes"][0]["market_id"]
    (ann, _), (bob, _) = await client.user("ann"), await client.user("bob")
    await client.order(ann, market, "yes", "buy", "0.70", 3)
    await client.order(bob, market, "no", "buy", "0.30", 3)  # mint at 0.70
    voided = await resolve(client, event["id"], void=True)
    assert voided["resolution"]["void"] is True
    assert voided["outcomes"][0]["result"] == "void"
    assert (await get(client, f"/markets/{market}"))["result"] == "void"
    for token, pnl, sides in ((ann, "-0.6000", (3, 0)), (bob, "0.6000", (0, 3))):
        (position,) = (await get(client, "/positions", token))["items"]
        assert (position["settled"], position["mark_price"], position["realized_pnl"]) == (
            True, "0.5000", pnl)
        (paid,) = (await get(client, "/payouts", token))["items"]
        assert (paid["yes_quantity"], paid["no_quantity"], paid["amount"]) == (
            *sides, "1.5000")


async def test_payouts_need_a_user_token_and_a_valid_filter(client):
    assert (await client.http.get("/payouts")).status_code == 401
    admin = client.auth(await client.admin())
    assert (await client.http.get("/payouts", headers=admin)).status_code in (401, 403)
    token, _ = await client.user("erin")
    for bad in ("event_id=0", "event_id=x", "limit=0", "limit=501", "offset=-1"):
        r = await client.http.get(f"/payouts?{bad}", headers=client.auth(token))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_field"
