"""A big delivery (a cancel-all of thousands of orders, an event closing on them) is
decoded and folded in slices, other tasks of the server's loop running between them,
and nobody sees it by halves.

The slicing is observed by counting, not timed: the replica's slicer counts its pauses,
and a ticker task on the same loop counts its turns while the big delivery is folded.
The consistency tests fold with a slice budget of 0 (a pause at every checkpoint), so a
reader is certain to run while the delivery is half-folded.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import orjson
import pytest
import websockets

from pmarket.runtime import slicing
from pmarket.runtime.slicing import Slicer
from pmarket.server import marketdata, readmodel
from pmarket.server.readmodel import serving
from pmarket.server.scope import EVERY_READER
from pmarket.server.scope import Reader as Reads
from tests.server.harness import Clock, iso, pushed_clock

pytestmark = pytest.mark.asyncio(loop_scope="module")

BATCH = 20


async def fill(client, token: str, market: int, n: int, prices: int = 40) -> None:
    """``n`` one-share bids at ``prices`` levels (0.01, 0.02, ...), in batches."""
    for start in range(0, n, BATCH):
        orders = [{"market_id": market, "outcome": "yes", "side": "buy",
                   "price": f"0.{1 + (start + k) % prices:02d}", "quantity": 1}
                  for k in range(min(BATCH, n - start))]
        r = await client.http.post("/orders/batch", json={"orders": orders},
                                   headers=client.auth(token))
        assert r.status_code == 200, r.text
        assert all("order" in x for x in r.json()["results"]), r.text[:300]


class Spy:
    """Counts the loop's turns (a ticker task) and records, for each delivery of at least
    ``size`` events the replica applies, the ticker's turns and the slicer's pauses
    while it was applied."""

    def __init__(self, replica, monkeypatch, size: int):
        self.replica = replica
        self.size = size
        self.ticks = 0
        self.folds: list[tuple[int, int, int]] = []  # (events, ticks, pauses)
        self._task: asyncio.Task | None = None
        original = replica.apply_sliced

        async def apply_sliced(delivery, slicer):
            ticks, pauses = self.ticks, slicer.pauses
            applied = await original(delivery, slicer)
            if len(delivery.events) >= self.size:
                self.folds.append((len(delivery.events), self.ticks - ticks,
                                   slicer.pauses - pauses))
            return applied

        monkeypatch.setattr(replica, "apply_sliced", apply_sliced)

    async def _tick(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Spy:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc) -> None:
        self._task.cancel()



@pytest.fixture(scope="module")
def clock(server) -> Clock:
    return pushed_clock(server.engine_service)



@pytest.fixture
def every_checkpoint(server, monkeypatch):
    """The replica pauses at every checkpoint of every fold (a slice budget of 0)."""
    monkeypatch.setattr(server.runtime.replica, "slicer", Slicer(budget_s=0.0))


async def test_a_10k_cancel_all_is_folded_in_slices_with_the_loop_turning(server, client,
                                                                       monkeypatch):
    """At the real slice budget: the replica folds the cancel-all's delivery in several
    slices and the loop's other tasks run between them; the answer lists every order."""
    n = server.settings.max_open_orders
    assert n == 10_000
    token, _ = await client.user(cash="100000")
    market = await client.market()
    await fill(client, token, market, n)
    with Spy(server.runtime.replica, monkeypatch, n) as spy:
        r = await client.http.delete("/orders", headers=client.auth(token))
        assert r.status_code == 200, r.text
        assert len(r.json()["cancelled"]) == n
        r = await client.http.get("/orders", params={"status": "open"},
                                  headers=client.auth(token))
        assert r.json()["total"] == 0
    [(events, ticks, pauses)] = spy.folds
    assert events > n
    assert pauses >= 2  # decoding and folding 10,000 events is several slices of 2 ms
    assert ticks >= pauses  # at each pause the loop ran the ticker (and the rest)


async def test_the_cancellers_next_reads_see_the_whole_cancel_all(server, client,
                                                                  monkeypatch,
                                                                  every_checkpoint):
    """Read-your-writes across a sliced fold: the first reads after the cancel-all's
    answer see no open order and all the cash, although the fold paused at every
    checkpoint."""
    n = 1000
    token, _ = await client.user(cash="1000")
    market = await client.market()
    await fill(client, token, market, n)
    r = await client.http.get("/balance", headers=client.auth(token))
    assert Decimal(r.json()["reserved"]) > 0
    with Spy(server.runtime.replica, monkeypatch, n) as spy:
        r = await client.http.delete("/orders", headers=client.auth(token))
        assert r.status_code == 200 and len(r.json()["cancelled"]) == n
        r = await client.http.get("/orders", params={"status": "open"},
                                  headers=client.auth(token))
        assert r.json()["total"] == 0, r.text[:300]
        r = await client.http.get("/balance", headers=client.auth(token))
        balance = r.json()
        assert (Decimal(balance["available"]), Decimal(balance["reserved"])) == (
            1000, 0), balance
    [(_, ticks, pauses)] = spy.folds
    assert pauses >= n // slicing.CHUNK and ticks >= pauses


class Reader:
    """Polls the read model (through ``serving``, as the routes do, as a read of
    ``reads``) on every turn of the loop, noting what it sees of each user: (open
    orders, cash reserved)."""

    def __init__(self, runtime, users: list[int], reads: Reads = EVERY_READER):
        self.runtime = runtime
        self.users = users
        self.reads = reads
        self.seen: set[tuple] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _read(self) -> None:
        while not self._stop.is_set():
            model = await serving(self.runtime, self.reads)
            if model is not None:
                self.seen.add(tuple((model.open_orders(uid, None, 1, 0)[0],
                                     model.balance(uid)[1]) for uid in self.users))
            await asyncio.sleep(0)

    async def __aenter__(self) -> Reader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        await self._task


@pytest.mark.parametrize("own", [False, True], ids=["any-read", "the-owners-read"])
async def test_readers_never_see_a_half_folded_mass_cancellation(server, client, clock,
                                                                  monkeypatch,
                                                                  every_checkpoint, own):
    """A dead-man switch fires on 1,000 orders (an engine tick, no write of this
    server's: read-your-writes does not hold readers back). A reader polling while the
    delivery is folded, paused at every checkpoint, sees all the orders and their
    reservation, or none of either: a read that may show anything, and one of the
    owner's own state alike."""
    n = 1000
    token, uid = await client.user(cash="1000")
    market = await client.market()
    await fill(client, token, market, n)
    r = await client.http.post("/heartbeat", json={"timeout_s": 5},
                               headers=client.auth(token))
    assert r.status_code == 200, r.text
    model = await serving(server.runtime)
    full = ((n, model.balance(uid)[1]),)
    assert full[0][1] > 0
    with Spy(server.runtime.replica, monkeypatch, n) as spy:
        async with Reader(server.runtime, [uid], Reads(uid) if own else EVERY_READER
                          ) as reader:
            clock.offset += 6_000  # past the deadline: the next tick fires the switch
            while not spy.folds:
                await asyncio.sleep(0.01)
    [(_, ticks, pauses)] = spy.folds
    assert pauses >= n // slicing.CHUNK and ticks >= pauses  # the reader had turns
    assert full in reader.seen and ((0, 0),) in reader.seen
    assert reader.seen <= {full, ((0, 0),)}, f"read half-folded: {reader.seen}"


async def test_book_subscribers_get_whole_deltas_in_sequence(server, client,
                                                             every_checkpoint):
    """A book subscriber's snapshot and deltas across a sliced cancel-all: sequences
    grow by one, and snapshot plus deltas give the replica's book (empty); a subscriber
    arriving while it is folded gets a snapshot of the whole state."""
    n = 400
    token, _ = await client.user(cash="1000")
    market = await client.market()
    await fill(client, token, market, n, prices=10)
    channel = f"book:{market}"
    async with websockets.connect(server.ws_url()) as early, \
            websockets.connect(server.ws_url()) as late:
        await early.send(orjson.dumps({"op": "subscribe", "channels": [channel]}))
        snapshot = orjson.loads(await early.recv())
        assert snapshot["type"] == "snapshot"
        assert sum(level["quantity"] for level in snapshot["data"]["bids"]) == n
        deleting = asyncio.create_task(client.http.delete("/orders",
                                                          headers=client.auth(token)))
        while not server.runtime.replica.folding and not deleting.done():
            await asyncio.sleep(0)
        await late.send(orjson.dumps({"op": "subscribe", "channels": [channel]}))
        r = await deleting
        assert r.status_code == 200 and len(r.json()["cancelled"]) == n
        book = {level["price"]: level["quantity"] for level in snapshot["data"]["bids"]}
        sequence = snapshot["sequence"]
        while book:
            msg = orjson.loads(await asyncio.wait_for(early.recv(), 10))
            assert (msg["type"], msg["sequence"]) == ("delta", sequence + 1)
            sequence = msg["sequence"]
            for change in msg["data"]["changes"]:
                book[change["price"]] = change["quantity"]
                if not change["quantity"]:
                    del book[change["price"]]
        assert server.runtime.replica.markets[market].sequence == sequence
        first = orjson.loads(await asyncio.wait_for(late.recv(), 10))
        assert first["type"] == "snapshot"
        levels = sum(level["quantity"] for level in first["data"]["bids"])
        assert levels in (0, n)  # before the cancel-all or after it, never between
        if levels:  # subscribed before the delivery: its delta follows
            delta = orjson.loads(await asyncio.wait_for(late.recv(), 10))
            assert delta["sequence"] == first["sequence"] + 1
        with contextlib.suppress(TimeoutError):
            extra = await asyncio.wait_for(early.recv(), 0.2)
            pytest.fail(f"unexpected message {extra[:200]}")


async def test_an_event_closing_on_many_orders_takes_the_same_sliced_path(
        server, client, clock, monkeypatch, every_checkpoint):
    """An event reaching its close time cancels every open order in it (a delivery
    folded by ``Batch.walk``, not the fast path): the same slices, the same
    all-or-nothing view for readers."""
    n = 600
    owners = [await client.user(cash="1000") for _ in range(2)]
    closes = clock() + 60_000
    event = await client.event(title="closes on many orders", close_time=iso(closes))
    market = event["outcomes"][0]["market_id"]
    for token, _ in owners:
        await fill(client, token, market, n // 2)
    users = [uid for _, uid in owners]
    model = await serving(server.runtime)
    before = tuple((n // 2, model.balance(uid)[1]) for uid in users)
    after = ((0, 0),) * 2
    with Spy(server.runtime.replica, monkeypatch, n) as spy:
        async with Reader(server.runtime, users) as reader:
            clock.offset += closes - clock() + 1_000
            while not spy.folds:
                await asyncio.sleep(0.01)
    [(_, ticks, pauses)] = spy.folds
    assert pauses >= n // slicing.CHUNK and ticks >= pauses
    assert before in reader.seen and after in reader.seen
    assert reader.seen <= {before, after}, f"read half-folded: {reader.seen}"


async def test_commands_wait_while_a_big_delivery_is_folded(server, client, clock,
                                                           monkeypatch, every_checkpoint):
    """A write arriving while the replica folds a big delivery in slices is sent to the
    engine once the fold is done (the work it brings would take the fold's turns)."""
    n = 1000
    token, _ = await client.user(cash="1000")
    other, _ = await client.user(cash="10")
    market = await client.market()
    await fill(client, token, market, n)
    r = await client.http.post("/heartbeat", json={"timeout_s": 5},
                               headers=client.auth(token))
    assert r.status_code == 200, r.text
    runtime = server.runtime
    replica = runtime.replica
    sent_while_working = []
    request = runtime.gateway.bus.request

    async def spy(*args, **kwargs):
        sent_while_working.append(replica._working)
        return await request(*args, **kwargs)

    monkeypatch.setattr(runtime.gateway.bus, "request", spy)
    # Checkpoints every 8 events: the fold outlasts the request's way to the gateway.
    monkeypatch.setattr(marketdata, "CHUNK", 8)
    monkeypatch.setattr(readmodel, "CHUNK", 8)
    with Spy(replica, monkeypatch, n) as folds:
        clock.offset += 6_000  # the dead-man switch fires on the next tick
        while not replica.folding:
            await asyncio.sleep(0)
        r = await client.http.post("/onramp", json={"amount": "1"},
                                   headers=client.auth(other))
        assert r.status_code == 200, r.text
        while not folds.folds:
            await asyncio.sleep(0.01)
    assert sent_while_working and not any(sent_while_working)


class LingeringSlicer(Slicer):
    """Pauses at every checkpoint and stays away 2 ms: a fold that outlasts requests."""

    def __init__(self) -> None:
        super().__init__(budget_s=0.0)

    async def pause(self) -> None:
        await super().pause()
        await asyncio.sleep(0.002)


async def test_a_half_folded_delivery_holds_only_the_reads_it_touches(server, client,
                                                                      monkeypatch):
    """Another user's cancel-all of 1,000 orders is folded in slices: meanwhile a third
    user's balance, open orders and portfolio, and the book of a market it did not touch,
    are answered (the fold still going), while the canceller's own state and the book it
    emptied wait for the whole fold and then show all of it."""
    n = 1000
    token, uid = await client.user(cash="1000")
    market = await client.market()
    untouched = await client.market()
    other, _ = await client.user(cash="10")
    await fill(client, token, market, n)
    # The third user's own writes are read back: nothing of theirs is pending now.
    assert (await client.http.get("/balance", headers=client.auth(other))).status_code == 200
    runtime = server.runtime
    replica = runtime.replica
    monkeypatch.setattr(replica, "slicer", LingeringSlicer())
    cancel = asyncio.create_task(client.http.delete("/orders", headers=client.auth(token)))
    while not replica.folding:
        await asyncio.sleep(0)
    for path in ("/balance", "/orders?status=open", "/portfolio",
                 f"/markets/{untouched}/orderbook"):
        r = await client.http.get(path, headers=client.auth(other))
        assert r.status_code == 200, (path, r.text)
        assert replica.folding, f"{path} waited for a fold that does not touch it"
    mine = asyncio.create_task(serving(runtime, Reads(uid)))
    book = asyncio.create_task(runtime.barrier.for_replica(Reads(markets=(market,))))
    await asyncio.sleep(0.02)
    assert replica.folding and not mine.done() and not book.done()
    model = await mine
    await book
    assert model.open_orders(uid, None, 1, 0)[0] == 0 and model.balance(uid)[1] == 0
    assert replica.markets[market].bids == {}
    r = await cancel
    assert r.status_code == 200 and len(r.json()["cancelled"]) == n
