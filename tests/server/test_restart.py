"""Restarting the embedded server loses nothing; a killed one recovers from its journal."""

from __future__ import annotations

import pytest

from .harness import Client, ServeProcess, start_server

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def _setup(c: Client):
    market = await c.market()
    maker, _ = await c.user("maker")
    taker, _ = await c.user("taker")
    resting = (await c.order(maker, market, "yes", "buy", "0.40", 10))["order"]["id"]
    await c.order(taker, market, "no", "buy", "0.60", 4)
    return market, maker, taker, resting


async def _check(c: Client, market: int, maker: str, taker: str, resting: int) -> None:
    r = await c.http.get(f"/orders/{resting}", headers=c.auth(maker))
    assert r.json()["status"] == "partially_filled" and r.json()["filled_quantity"] == 4
    assert (await c.http.get("/balance", headers=c.auth(maker))).json() == {
        "available": "996.0000", "reserved": "2.4000", "total": "998.4000"}
    pos = (await c.http.get("/positions", headers=c.auth(taker))).json()["items"]
    assert pos[0]["no_quantity"] == 4
    book = (await c.http.get(f"/markets/{market}/orderbook")).json()
    assert book["bids"] == [{"price": "0.40", "quantity": 6}]
    # The resting order still matches after the restart.
    res = await c.order(taker, market, "no", "buy", "0.60", 6)
    assert res["order"]["status"] == "filled"
    r = await c.http.get("/admin/audit", headers=c.auth(await c.admin()))
    assert r.json()["ok"] is True


async def test_clean_restart_keeps_everything(tmp_path):
    srv = await start_server("embedded", tmp_path)
    c = Client(srv)
    market, maker, taker, resting = await _setup(c)
    await c.aclose()
    await srv.stop()
    srv = await start_server("embedded", tmp_path)
    c = Client(srv)
    try:
        await _check(c, market, maker, taker, resting)
    finally:
        await c.aclose()
        await srv.stop()


@pytest.mark.slow
async def test_kill_9_of_pmarket_serve_loses_nothing_acknowledged(tmp_path):
    server = ServeProcess(tmp_path)
    try:
        await server.start(timeout_s=30)
        c = Client(server)  # type: ignore[arg-type]
        market, maker, taker, resting = await _setup(c)
        await c.aclose()
        server.kill()
        await server.start(timeout_s=30)
        c = Client(server)  # type: ignore[arg-type]
        try:
            await _check(c, market, maker, taker, resting)
        finally:
            await c.aclose()
    finally:
        server.kill()
