"""In the embedded exchange the gateway and the replica take the engine's events as it
kept them (``Bus.decoded``) instead of decoding its reply and delivery; a deployment's
bus crosses processes and keeps nothing. Answers are the same either way (the rest of
the suite runs on both kinds)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_embedded_servers_readers_take_the_engines_events_undecoded(server,
                                                                              client):
    token, _ = await client.user(cash="100")
    market = await client.market()
    memo = server.runtime.gateway.bus.decoded
    before = memo.taken if memo is not None else 0
    order = await client.order(token, market, "yes", "buy", "0.40", 5)
    r = await client.http.get(f"/markets/{market}/orderbook")
    assert r.json()["bids"] == [{"price": "0.40", "quantity": 5}]
    r = await client.http.get("/orders", params={"status": "open"},
                              headers=client.auth(token))
    assert [o["id"] for o in r.json()["items"]] == [order["order"]["id"]]
    if server.kind == "embedded":
        assert memo is not None and memo.taken >= before + 2  # the reply and the delivery
    else:
        assert memo is None

