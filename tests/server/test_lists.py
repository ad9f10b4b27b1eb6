"""The database lists over HTTP, on the embedded exchange and the deployment: pages at
every offset put together are the whole list, in order, with the exact total and the
filters applied; the queries run on the lists' own threads, not the default executor
the read barrier and /health share. (The queries themselves, their plans and a
hypothesis property over random histories: tests/db/test_lists.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

from pmarket.server import views
from pmarket.server.routes import lists

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def pages(client, path: str, token: str | None, limit: int, **params) -> tuple[list, int]:
    """Every page of ``path`` at ``limit`` put together, and the total each page gave."""
    items, offset, totals = [], 0, set()
    headers = client.auth(token) if token else {}
    while True:
        r = await client.http.get(path, params={"limit": limit, "offset": offset, **params},
                                  headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        totals.add(body["total"])
        items += body["items"]
        if not body["items"]:
            break
        assert len(body["items"]) == min(limit, body["total"] - offset)
        offset += limit
    assert len(totals) == 1
    return items, totals.pop()


async def test_history_pages_are_the_whole_list_in_order(client):
    market, other = await client.market(), await client.market()
    trader, _ = await client.user("history", cash="1000")
    maker, _ = await client.user("maker", cash="1000")
    placed = []
    for k in range(9):  # on two markets; some trade, some rest, some cancel at once
        m = market if k % 3 else other
        await client.order(maker, m, "no", "buy", "0.50", 1)
        placed.append((await client.order(trader, m, "yes", "buy", "0.50", 1))["order"]["id"])
        placed.append((await client.order(trader, m, "yes", "buy", "0.01", 1,
                                          time_in_force="ioc"))["order"]["id"])
        placed.append((await client.order(trader, m, "yes", "buy", "0.02", 1))["order"]["id"])
    newest_first = sorted(placed, reverse=True)
    for limit in (1, 4, 7, 500):
        orders, total = await pages(client, "/orders", trader, limit, status="all")
        assert [o["id"] for o in orders] == newest_first and total == 27
        mine, total = await pages(client, "/orders", trader, limit, status="all",
                                  market_id=other)
        assert [o["id"] for o in mine] == [o["id"] for o in orders if o["market_id"] == other]
        trades, total = await pages(client, "/trades", trader, limit)
        assert total == 9 and [t["id"] for t in trades] == sorted(
            (t["id"] for t in trades), reverse=True)
        assert {t["role"] for t in trades} == {"taker"}
        made, total = await pages(client, "/trades", maker, limit)
        assert [t["id"] for t in made] == [t["id"] for t in trades]
        assert {t["role"] for t in made} == {"maker"} and total == 9
        public, total = await pages(client, f"/markets/{market}/trades", None, limit)
        assert [t["id"] for t in public] == [t["id"] for t in trades
                                             if t["market_id"] == market] and total == 6
        candles, total = await pages(client, f"/markets/{market}/candles", None, limit)
        assert total == len(candles) >= 1
        assert sum(c["volume"] for c in candles) == 6
    r = await client.http.get("/orders", params={"status": "all", "offset": 27},
                              headers=client.auth(trader))
    assert r.json() == {"items": [], "total": 27}
    r = await client.http.get("/markets/999999/trades")
    assert r.status_code == 404


async def test_list_queries_run_on_their_own_threads(client, monkeypatch):
    """Not on the default executor: a flood of deep pages must not hold up the read
    barrier's progress polls, credential look-ups and /health's database checks."""
    names = []
    render = views.order_row

    def spy(o, tick):
        names.append(threading.current_thread().name)
        return render(o, tick)

    monkeypatch.setattr(views, "order_row", spy)
    market = await client.market()
    trader, _ = await client.user("threads")
    await client.order(trader, market, "yes", "buy", "0.01", 1, time_in_force="ioc")
    r = await client.http.get("/orders", params={"status": "all"},
                              headers=client.auth(trader))
    assert r.json()["total"] == 1
    assert names and all(n.startswith("pmarket-lists") for n in names), names
    assert lists.LIST_THREADS == 2


async def test_one_list_read_in_flight_per_user():
    """A user's list reads run one after the other; another user's beside them."""
    runtime = SimpleNamespace(db=SimpleNamespace(connect=contextlib.nullcontext))
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    lock = threading.Lock()

    def query(key):
        def run(_conn):
            with lock:
                running[key] = running.get(key, 0) + 1
                most[key] = max(most.get(key, 0), running[key])
                most["all"] = max(most.get("all", 0), sum(running.values()))
            time.sleep(0.05)
            with lock:
                running[key] -= 1
            return key
        return run

    got = await asyncio.gather(*(lists.read_list(runtime, user, query(user), consistent=False)
                                 for user in ("ann", "ann", "ann", "bob")))
    assert got == ["ann", "ann", "ann", "bob"]
    assert most["ann"] == 1  # ann's three never overlapped one another
    assert most["all"] == 2  # bob's ran beside one of them


async def test_a_cancelled_list_read_keeps_its_users_turn_until_its_query_ends():
    """A client that went away does not free its user's turn while its query still
    runs: sending and disconnecting again and again never runs two queries at once."""
    runtime = SimpleNamespace(db=SimpleNamespace(connect=contextlib.nullcontext))
    started, release, overlap = threading.Event(), threading.Event(), []
    running = []

    def slow(_conn):
        running.append(1)
        overlap.append(len(running))
        started.set()
        release.wait(5)
        running.pop()
        return "slow"

    first = asyncio.create_task(lists.read_list(runtime, "eve", slow, consistent=False))
    await asyncio.to_thread(started.wait, 5)
    first.cancel()
    second = asyncio.create_task(lists.read_list(runtime, "eve", slow, consistent=False))
    await asyncio.sleep(0.1)
    assert overlap == [1] and not second.done()  # waits for the first query to end
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert first.cancelled()
    assert await second == "slow" and overlap == [1, 1]
