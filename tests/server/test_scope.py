"""What a write changed and what a read shows (``server.scope``), and the read barrier
holding a read back only for the writes it could show.

The class of defect these guard against: a read that skips waiting for a change it
shows (stale read-your-writes). So every user id and market id any engine event
carries must be in its scope, whatever the event's kind (checked over the events of a
whole scenario, every kind the engine emits), and the barrier waits for every write
whose scope touches the read."""

from __future__ import annotations

import asyncio

import pytest

from pmarket.bus import MemoryBus
from pmarket.engine import Engine
from pmarket.engine import commands as c
from pmarket.engine import events as ev
from pmarket.engine.commands import Outcome, Side
from pmarket.server.consistency import ReadBarrier
from pmarket.server.marketdata import MarketState, Replica, Seed
from pmarket.server.scope import EVERY_READER, EVERYTHING, Reader, Scope, scope_of

USD = 10_000


def scenario_events() -> list[ev.EngineEvent]:
    """Every kind of event the engine emits: deposits, orders resting, crossing,
    cancelled, a batch, a duplicate, a rejection, split/merge, a dead-man switch, an
    event created, updated, resolved, and one deleted."""
    eng = Engine()
    out: list[ev.EngineEvent] = []

    def apply(cmd: c.Command) -> None:
        out.extend(eng.apply(cmd))

    apply(c.CreateEvent(title="e", outcomes=("a", "b")))
    apply(c.CreateEvent(title="gone"))
    markets = sorted(eng.markets)
    m1, m2, m3 = markets
    for user in (1, 2, 3):
        apply(c.Deposit(user_id=user, amount=1_000 * USD))
    apply(c.Split(user_id=3, market_id=m1, quantity=10))
    apply(c.PlaceOrder(user_id=1, market_id=m1, outcome=Outcome.YES, side=Side.BUY,
                       price=4000, quantity=5, client_order_id="a"))
    apply(c.PlaceOrder(user_id=1, market_id=m1, outcome=Outcome.YES, side=Side.BUY,
                       price=4000, quantity=5, client_order_id="a"))  # duplicate
    apply(c.PlaceOrder(user_id=2, market_id=m1, outcome=Outcome.NO, side=Side.BUY,
                       price=6000, quantity=3))  # mint against user 1
    apply(c.PlaceOrder(user_id=3, market_id=m1, outcome=Outcome.YES, side=Side.SELL,
                       price=3000, quantity=2))  # transfer to user 1
    apply(c.PlaceBatch(user_id=2, orders=(
        c.PlaceOrder(user_id=2, market_id=m2, outcome=Outcome.YES, side=Side.BUY,
                     price=2000, quantity=1),
        c.PlaceOrder(user_id=2, market_id=m2, outcome=Outcome.YES, side=Side.BUY,
                     price=7, quantity=1))))  # one placed, one rejected
    apply(c.Merge(user_id=3, market_id=m1, quantity=1))
    apply(c.Heartbeat(user_id=2, timeout_ms=5_000))
    apply(c.CancelAll(user_id=1))
    apply(c.Withdraw(user_id=3, amount=USD))
    apply(c.UpdateEvent(event_id=eng.markets[m1].event.id, title="e2"))
    apply(c.ResolveEvent(event_id=eng.markets[m1].event.id,
                         winning_outcome_id=m1))
    apply(c.DeleteEvent(event_id=eng.markets[m3].event.id))
    apply(c.Expire(ts_ms=10**9))  # fires the dead-man switch
    return out


def _ids(event: ev.EngineEvent, suffix: str) -> list[int]:
    names = ev.LAYOUTS.get(event.kind, ())
    return [getattr(event, n) for n in names
            if n.endswith(suffix) and isinstance(getattr(event, n), int)]


def test_every_user_and_market_an_event_names_is_in_its_scope():
    events = scenario_events()
    kinds = {e.kind for e in events}
    # the scenario covers the kinds that name users or markets (the rest are
    # event-level, and their scope is everything)
    assert {ev.ORDER, ev.FILL, ev.BALANCE, ev.POSITION, ev.BOOK, ev.LEDGER, ev.PAYOUT,
            ev.DEAD_MAN, ev.REJECTED, ev.DUPLICATE, ev.BATCH_ITEM, ev.EVENT,
            ev.RESOLVED, ev.EVENT_DELETED, ev.CLOCK} <= kinds, kinds
    for e in events:
        scope = scope_of([e])
        if e.kind in (ev.BATCH_ITEM, ev.CLOCK):
            assert scope.empty, e  # changes nothing
            continue
        if e.kind in (ev.REJECTED, ev.DUPLICATE):  # answers from the user's state
            assert scope == Scope(frozenset({e.user_id})), e
            continue
        assert not scope.empty, e
        for user in _ids(e, "user_id"):
            assert scope.touches(Reader(user)), (e, user)
        for market in _ids(e, "market_id"):
            assert scope.touches(Reader(markets=(market,))), (e, market)


def test_event_level_changes_and_unknown_kinds_touch_every_read():
    events = scenario_events()
    for e in events:
        if e.kind in (ev.EVENT, ev.RESOLVED, ev.EVENT_DELETED):
            assert scope_of([e]) is EVERYTHING, e
    assert scope_of([ev.Unknown("from_a_newer_version", (1, 2))]) is EVERYTHING
    # a refusal of a command whose user id is not one names no user
    assert scope_of([ev.Rejected("7", "PlaceOrder", "invalid_field", "m", None, None)]).empty


def test_a_scope_touches_only_its_users_and_markets():
    scope = Scope(frozenset({1}), frozenset({7}))
    assert scope.touches(Reader(1)) and scope.touches(Reader(2, (7,)))
    assert scope.touches(Reader(markets=(3, 7))) and scope.touches(EVERY_READER)
    assert not scope.touches(Reader(2)) and not scope.touches(Reader(2, (3, 8)))
    assert not scope.touches(Reader(markets=(3,)))


class CountingBus(MemoryBus):
    """Counts the reads of the event stream's head (what a waiting read does)."""

    heads = 0

    async def last_id(self, stream: str) -> str:
        self.heads += 1
        return await super().last_id(stream)


def _barrier() -> tuple[ReadBarrier, CountingBus]:
    bus = CountingBus()
    replica = Replica(bus, None, group="server-t")  # type: ignore[arg-type]
    replica._install(Seed({1: MarketState(1, 1, "m", 100, "active")}, {1: [1]}, 0, "0"))
    replica.running = True
    return ReadBarrier(bus, replica, None, 0.05), bus  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_read_waits_only_for_the_writes_it_could_show():
    barrier, bus = _barrier()
    barrier.note_write(Scope(frozenset({1}), frozenset({7})))
    barrier.note_write(Scope())  # nothing to wait for
    await barrier.for_replica(Reader(2))  # another user
    await barrier.for_replica(Reader(markets=(8,)))  # another market's book
    await asyncio.sleep(0)  # the background catch-up those reads started
    assert bus.heads == 1  # the catch-up's, not theirs
    barrier.note_write(Scope(frozenset({1}), frozenset({7})))
    for reader in (Reader(1), Reader(markets=(7,)), Reader(2, (7,)), EVERY_READER):
        before = bus.heads
        await barrier.for_replica(reader)
        assert bus.heads == before + 1, reader  # it waited for the stream's head
        barrier.note_write(Scope(frozenset({1}), frozenset({7})))


@pytest.mark.asyncio
async def test_an_event_level_write_and_an_unscoped_one_hold_every_read():
    for scope in (EVERYTHING, None):
        barrier, bus = _barrier()
        if scope is None:
            barrier.note_write()
        else:
            barrier.note_write(scope)
        await barrier.for_replica(Reader(2))
        assert bus.heads == 1


@pytest.mark.asyncio
async def test_the_background_catch_up_spends_the_notes():
    barrier, bus = _barrier()
    barrier.note_write(Scope(frozenset({1})))
    await barrier.for_replica(Reader(2))
    task = barrier._catching_up
    assert task is not None
    await task
    assert barrier._by_user == {}  # caught up with every write: nothing left to wait for
    await barrier.for_replica(Reader(1))
    assert bus.heads == 1  # the catch-up's only
