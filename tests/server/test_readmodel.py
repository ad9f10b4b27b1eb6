"""Reads from the in-memory read model, over HTTP, on both deployment kinds.

* Every read the model serves answers byte for byte what the database path answers for
  the same state (a seeded random trading session via the API, compared at checkpoints:
  balances, positions with every filter, portfolio, open orders with paging, single
  orders open, closed and foreign, event lists with every filter, events and markets,
  payouts; after resolutions with a winner, with none and void).
* Read-your-writes under concurrency: an order acknowledged on one connection is in the
  next read on another connection of the same server, and those reads never wait for
  the database.
* An open order leaves the model when it is filled, cancelled, expired or resolved.
* A server started later (a restart, or a second server of a deployment) seeds itself
  from the database and answers exactly what the first one does; a replica that
  resynchronises (its group lost) reseeds the read model with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from pmarket.bus import make_bus
from pmarket.server import create_app
from pmarket.server.connections import server_options

from .harness import Client, free_port, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def settled(server) -> int:
    """Wait until the database and the read model hold the same commands; their seq."""
    rt = server.runtime
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rt.barrier.note_write()  # make the barrier look at the stream's head again
        await rt.barrier.for_database()
        seq = rt.readmodel.seq
        if await asyncio.to_thread(rt.barrier.progress.read) == seq \
                and rt.replica.last_seq == seq:
            return seq
        await asyncio.sleep(0.02)
    raise AssertionError("the database and the read model did not settle")


async def answers(http: httpx.AsyncClient, requests: list[tuple[str, str | None]]) -> list:
    out = []
    for path, token in requests:
        r = await http.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
        assert r.status_code < 500, (path, r.text)
        out.append((path, r.status_code, r.content))
    return out


async def compare_paths(server, http: httpx.AsyncClient,
                        requests: list[tuple[str, str | None]]) -> int:
    """Ask everything from memory and from the database for one state; assert equal."""
    rt = server.runtime
    model = rt.readmodel
    for _ in range(20):
        seq = await settled(server)
        assert model.ready, model.problem
        memory = await answers(http, requests)
        rt.readmodel = None  # the routes' switch; the replica still feeds the model
        try:
            database = await answers(http, requests)
        finally:
            rt.readmodel = model
        if model.seq == seq and await asyncio.to_thread(rt.barrier.progress.read) == seq:
            break  # nothing moved in between (an expiry may have)
    else:
        raise AssertionError("the state kept moving while comparing")
    for m, d in zip(memory, database, strict=True):
        assert m == d, f"{m[0]}: memory {m[1]} {m[2]!r} != database {d[1]} {d[2]!r}"
    return len(memory)


class Trading:
    """A seeded random trading session through the API."""

    def __init__(self, client: Client, seed: int):
        self.c, self.rng = client, random.Random(seed)
        self.users: list[tuple[str, int]] = []
        self.events: list[dict] = []
        self.orders: list[tuple[int, str]] = []  # (id, owner's token)

    async def setup(self) -> None:
        c = self.c
        self.users = [await c.user(f"rm{i}", cash="5000") for i in range(4)]
        self.events = [
            await c.event(category="weather"),
            await c.event(["A", "B", "C"], category="sports", tick_size="0.001"),
            await c.event(description="spare"),
        ]
        self.markets = [o["market_id"] for e in self.events for o in e["outcomes"]]
        for token, _ in self.users:
            for m in self.markets[:2]:
                await self.post(f"/markets/{m}/split", token, {"quantity": 30})

    async def post(self, path: str, token: str, body: dict) -> httpx.Response:
        r = await self.c.http.post(path, json=body, headers=self.c.auth(token))
        assert r.status_code < 500, r.text
        return r

    async def step(self) -> None:
        rng, http, c = self.rng, self.c.http, self.c
        token, _ = rng.choice(self.users)
        roll = rng.random()
        if roll < 0.55:
            market = rng.choice(self.markets)
            body = {"market_id": market, "outcome": rng.choice(["yes", "no"]),
                    "side": rng.choice(["buy", "buy", "sell"]), "quantity": rng.randint(1, 9)}
            kind = rng.random()
            if kind < 0.1:
                body["type"] = "market"
            else:
                body["price"] = f"0.{rng.randint(40, 60)}"
                if kind < 0.2:
                    body["time_in_force"] = rng.choice(["ioc", "fok"])
            r = await self.post("/orders", token, body)
            if r.status_code == 201:
                self.orders.append((r.json()["order"]["id"], token))
        elif roll < 0.65 and self.orders:
            oid, owner = rng.choice(self.orders)
            await http.delete(f"/orders/{oid}", headers=c.auth(owner))
        elif roll < 0.72 and self.orders:
            oid, owner = rng.choice(self.orders)
            await http.patch(f"/orders/{oid}", json={"quantity": rng.randint(1, 12)},
                             headers=c.auth(owner))
        elif roll < 0.78:
            m = rng.choice(self.markets)
            await self.post(f"/markets/{m}/{rng.choice(['split', 'merge'])}", token,
                            {"quantity": rng.randint(1, 5)})
        elif roll < 0.84:
            e = self.events[1]
            what = rng.choice(["split", "merge", "convert"])
            body = {"quantity": rng.randint(1, 3)}
            if what == "convert":
                body["outcome_ids"] = [rng.choice(self.markets[1:4])]
            await self.post(f"/events/{e['id']}/{what}", token, body)
        elif roll < 0.9:
            await self.post(rng.choice(["/onramp", "/offramp"]), token,
                            {"amount": str(rng.randint(1, 50))})
        elif roll < 0.95:
            await http.delete("/orders", headers=c.auth(token))
        else:
            e = rng.choice(self.events[:2])
            await http.patch(f"/admin/events/{e['id']}", headers=c.auth(await c.admin()),
                             json={"status": rng.choice(["closed", "active", "active"]),
                                   "category": rng.choice(["weather", "misc"])})

    async def finish(self) -> None:
        """Resolve one event, void another, delete the spare (if untraded; else resolve
        it with no winner: its NO wins)."""
        admin = self.c.auth(await self.c.admin())
        http = self.c.http
        for e in self.events[:2]:
            await http.patch(f"/admin/events/{e['id']}", json={"status": "active"},
                             headers=admin)
        await http.post(f"/admin/events/{self.events[0]['id']}/resolve",
                        json={"winning_outcome_id": self.markets[0]}, headers=admin)
        await http.post(f"/admin/events/{self.events[1]['id']}/resolve", json={"void": True},
                        headers=admin)
        r = await http.delete(f"/admin/events/{self.events[2]['id']}", headers=admin)
        assert r.status_code in (204, 409), r.text
        if r.status_code == 409:
            r = await http.post(f"/admin/events/{self.events[2]['id']}/resolve",
                                json={"winning_outcome_id": None}, headers=admin)
            assert r.status_code == 200, r.text

    def reads(self) -> list[tuple[str, str | None]]:
        """Every read the read model serves, for every user, with every filter."""
        out: list[tuple[str, str | None]] = []
        event_ids = [e["id"] for e in self.events]
        sample = self.rng.sample(self.orders, min(len(self.orders), 25))
        for token, _ in self.users:
            out += [(p, token) for p in (
                "/balance", "/positions", "/portfolio", "/orders?status=open",
                "/positions?limit=1&offset=1", "/orders?status=open&limit=2&offset=1",
                f"/positions?event_id={event_ids[1]}", "/orders?status=open&offset=1000",
                "/payouts", "/payouts?limit=1&offset=1", f"/payouts?event_id={event_ids[1]}")]
            out += [(f"/positions?market_id={m}", token) for m in self.markets]
            out += [(f"/orders?status=open&market_id={m}", token) for m in self.markets]
            out += [(f"/orders/{oid}", token) for oid, _ in sample]
        out += [(p, None) for p in (
            "/events", "/events?category=weather", "/events?category=sports",
            "/events?status=active", "/events?status=closed", "/events?status=resolved",
            "/events?limit=1&offset=1", "/events?offset=100000", "/events?category=none")]
        out += [(f"/events/{e}", None) for e in (*event_ids, 10**9)]
        out += [(f"/markets/{m}", None) for m in (*self.markets, 10**9)]
        return out


async def test_memory_and_database_answer_byte_for_byte(server, client):
    session = Trading(client, seed=11)
    await session.setup()
    compared = await compare_paths(server, client.http, session.reads())
    for _ in range(3):
        for _ in range(45):
            await session.step()
        compared += await compare_paths(server, client.http, session.reads())
    await session.finish()
    compared += await compare_paths(server, client.http, session.reads())
    assert compared > 500
    assert server.runtime.readmodel.ready


async def test_read_your_writes_from_another_connection_without_database_waits(
        server, client, monkeypatch):
    market = await client.market()
    users = [await client.user("ryw", cash="1000") for _ in range(6)]
    rt = server.runtime
    waits = 0
    for_database = rt.barrier.for_database

    async def counted():
        nonlocal waits
        waits += 1
        await for_database()

    monkeypatch.setattr(rt.barrier, "for_database", counted)

    async def trader(token: str) -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=client.auth(token)) as a, \
                httpx.AsyncClient(base_url=server.url, headers=client.auth(token)) as b:
            for i in range(8):
                r = await a.post("/orders", json={"market_id": market, "outcome": "yes",
                                                  "side": "buy", "price": "0.10",
                                                  "quantity": i + 1})
                assert r.status_code == 201, r.text
                oid = r.json()["order"]["id"]
                listed = (await b.get("/orders?status=open")).json()["items"]
                assert oid in [o["id"] for o in listed]
                assert (await b.get(f"/orders/{oid}")).json()["status"] == "open"
                reserved = (await b.get("/balance")).json()["reserved"]
                assert reserved == (await b.get("/portfolio")).json()["balance"]["reserved"]
                assert reserved != "0.0000"
                r = await a.delete(f"/orders/{oid}")
                assert r.status_code == 200, r.text
                listed = (await b.get("/orders?status=open")).json()["items"]
                assert oid not in [o["id"] for o in listed]
        # the cancelled orders are closed: answered by the database (after its wait)

    await asyncio.gather(*(trader(token) for token, _ in users))
    assert waits == 0


async def open_ids(client: Client, token: str) -> list[int]:
    r = await client.http.get("/orders?status=open", headers=client.auth(token))
    return [o["id"] for o in r.json()["items"]]


async def test_an_open_order_leaves_when_filled_cancelled_expired_or_resolved(server,
                                                                             client):
    model = server.runtime.readmodel
    event = await client.event()
    market = event["outcomes"][0]["market_id"]
    (a, _), (b, _) = await client.user("maker"), await client.user("taker")

    async def place(token, **fields):
        body = {"market_id": market, "outcome": "yes", "side": "buy", "price": "0.40",
                "quantity": 2, **fields}
        return (await client.order(token, body.pop("market_id"), body.pop("outcome"),
                                   body.pop("side"), body.pop("price"), body.pop("quantity"),
                                   **body))["order"]["id"]

    filled, cancelled, resolved = await place(a), await place(a), await place(a, price="0.30")
    soon = datetime.now(UTC) + timedelta(seconds=1.5)  # the engine's clock is this one
    expiring = await place(a, price="0.20", time_in_force="gtd",
                           expires_at=soon.isoformat().replace("+00:00", "Z"))
    assert set(await open_ids(client, a)) == {filled, cancelled, resolved, expiring}
    assert {filled, cancelled, resolved, expiring} <= set(model.orders)

    await client.order(b, market, "no", "buy", "0.60", 2)  # fills ``filled``
    await client.http.delete(f"/orders/{cancelled}", headers=client.auth(a))
    assert set(await open_ids(client, a)) == {resolved, expiring}
    deadline = time.monotonic() + 15
    while expiring in await open_ids(client, a):  # the engine's expiry tick
        assert time.monotonic() < deadline, "the gtd order did not expire"
        await asyncio.sleep(0.1)
    r = await client.http.post(f"/admin/events/{event['id']}/resolve",
                               json={"winning_outcome_id": market},
                               headers=client.auth(await client.admin()))
    assert r.status_code == 200, r.text
    assert await open_ids(client, a) == []
    assert not {filled, cancelled, resolved, expiring} & set(model.orders)
    statuses = {}
    for oid in (filled, cancelled, resolved, expiring):
        r = await client.http.get(f"/orders/{oid}", headers=client.auth(a))
        statuses[oid] = r.json()["status"]
    assert statuses == {filled: "filled", cancelled: "cancelled", resolved: "cancelled",
                        expiring: "expired"}


async def test_health_reports_the_read_model(server, client):
    r = await client.http.get("/health")
    component = r.json()["components"]["readmodel"]
    assert component["status"] == "ok"
    assert component["detail"].startswith("applied up to seq")


@contextlib.asynccontextmanager
async def second_server(settings):
    """Another server process's runtime on the same bus and database (no services)."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                            loop="none", lifespan="on", **server_options(app))
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}", app
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 15)


async def trade_and_read(client: Client, seed: int) -> tuple[list, list]:
    """Trade a while; every read and its answer once settled."""
    session = Trading(client, seed=seed)
    await session.setup()
    for _ in range(40):
        await session.step()
    await settled(client.server)
    reads = session.reads()
    return reads, await answers(client.http, reads)


async def test_a_restarted_exchange_reseeds_and_answers_the_same(tmp_path):
    first = await start_server("embedded", tmp_path)
    try:
        client = Client(first)
        reads, before = await trade_and_read(client, seed=5)
        await client.aclose()
    finally:
        await first.stop()
    again = await start_server("embedded", tmp_path)  # same database and snapshots
    try:
        model = again.runtime.readmodel
        assert model.ready and model.seeds == 1 and model.seq > 0
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as http:
            after = await answers(http, reads)
    finally:
        await again.stop()
    assert after == before


async def test_a_second_server_of_a_deployment_seeds_and_answers_the_same(server, client):
    if server.kind != "deployment":
        pytest.skip("an embedded exchange is one server")
    reads, before = await trade_and_read(client, seed=6)
    async with second_server(server.settings) as (url, app):
        model = app.state.runtime.readmodel
        assert model.ready and model.seeds == 1
        deadline = time.monotonic() + 10
        while model.seq < server.runtime.readmodel.seq:
            assert time.monotonic() < deadline, "the second server did not catch up"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            after = await answers(http, reads)
    assert after == before


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_replica_resync_reseeds_the_read_model(tmp_path):
    """The server's group vanishes (reaped while it stalled): the replica resynchronises
    from the database, the read model with it, and both answer as the database does."""
    srv = await start_server("deployment", tmp_path)
    client = Client(srv)
    bus = make_bus(srv.settings.redis_url, prefix=srv.settings.bus_prefix)
    try:
        session = Trading(client, seed=9)
        await session.setup()
        for _ in range(20):
            await session.step()
        model = srv.runtime.readmodel
        assert model.seeds == 1
        assert await bus.delete_group(bus.events_stream(), srv.runtime.group)
        token, _ = session.users[0]
        market = session.markets[0]
        late = (await client.order(token, market, "yes", "buy", "0.11", 1))["order"]["id"]
        replica = srv.runtime.replica
        deadline = time.monotonic() + 20
        # ``resyncs`` counts a seed installed; the replica follows the stream (and reads
        # are served) once it has also moved its group past that seed.
        while replica.resyncs < 1 or not replica.running or not model.ready:
            assert time.monotonic() < deadline, "no resync"
            await asyncio.sleep(0.05)
        assert model.seeds == 2
        assert late in await open_ids(client, token)
        await compare_paths(srv, client.http, session.reads())
    finally:
        await bus.close()
        await client.aclose()
        await srv.stop()
