"""The per-account balance limit: one user's deposits cannot starve everyone else's."""

from __future__ import annotations

import pytest
import pytest_asyncio

from pmarket.engine.units import SCALE

from .harness import Client, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capped(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("capped"),
                             max_user_balance=100 * SCALE)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def test_a_deposit_past_the_limit_is_409_and_others_still_deposit(capped):
    whale, _ = await capped.user(cash="100")
    r = await capped.http.post("/onramp", json={"amount": "0.01"}, headers=capped.auth(whale))
    assert r.status_code == 409 and r.json()["error"]["code"] == "balance_limit"
    assert "100.0000" in r.json()["error"]["message"]
    balance = (await capped.http.get("/balance", headers=capped.auth(whale))).json()
    assert balance["total"] == "100.0000"
    other, _ = await capped.user(cash="100")
    assert (await capped.http.get("/balance", headers=capped.auth(other))).json()["total"] \
        == "100.0000"
