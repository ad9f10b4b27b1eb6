"""Minimal cases of engine bugs found by the reference-model tests.

Each test states the behaviour DESIGN (or the engine's own documented contract) asks
for. While a bug stands its test is ``xfail(strict=True)``, and ``test_stateful.py`` /
``test_determinism.py`` steer around it; fixing the engine turns it into an XPASS, which
fails the run until the marker and the workaround are removed. The bugs below are fixed
(engine commits 2ecb78e and c33c02b); the tests stay as regression tests.
"""

from __future__ import annotations

import pytest

from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    ResolveEvent,
    SelfTrade,
    Side,
    Split,
    TimeInForce,
)
from pmarket.engine.events import BatchItem, Clock, EngineEvent, OrderState, command_events, of_kind

ALICE, BOB, CAROL = 1, 2, 3
MARKET = 1


def fresh_engine() -> Engine:
    eng = Engine()
    eng.apply(CreateEvent(title="Rain tomorrow?"))  # event 1, market 1
    for user in (ALICE, BOB, CAROL):
        eng.apply(Deposit(user_id=user, amount=1_000_000))
    return eng


def sell_yes(user: int, qty: int, price: int) -> PlaceOrder:
    return PlaceOrder(user_id=user, market_id=MARKET, outcome=Outcome.YES, side=Side.SELL,
                      quantity=qty, price=price)


@pytest.mark.parametrize("stp", [SelfTrade.CANCEL_TAKER, SelfTrade.CANCEL_BOTH])
def test_fok_order_stopped_by_self_trade_prevention_fills_nothing(stp):
    eng = fresh_engine()
    for user in (ALICE, BOB):
        eng.apply(Split(user_id=user, market_id=MARKET, quantity=10))
    eng.apply(sell_yes(BOB, 2, 5000))  # first in the queue at 0.50
    eng.apply(sell_yes(ALICE, 2, 5000))  # Alice's own order, behind Bob's
    eng.apply(sell_yes(BOB, 5, 5100))

    events = eng.apply(PlaceOrder(user_id=ALICE, market_id=MARKET, outcome=Outcome.YES,
                                  side=Side.BUY, quantity=4, price=5100, tif=TimeInForce.FOK,
                                  stp=stp))

    # Matching would stop at Alice's own order after 2 of 4: fill-or-kill must kill.
    assert of_kind(events, "fill") == []
    order = of_kind(events, "order")[0]
    assert (order["status"], order["filled"]) == ("cancelled", 0)
    assert eng.balance(ALICE) == (1_000_000 - 10 * 10_000, 0)
    assert eng.book(MARKET).asks == [(5000, 4), (5100, 5)]


def test_restored_engine_resolves_with_the_same_events():
    eng = fresh_engine()
    eng.apply(Split(user_id=CAROL, market_id=MARKET, quantity=1))  # Carol holds first
    eng.apply(Split(user_id=ALICE, market_id=MARKET, quantity=2))
    restored = Engine.restore(eng.snapshot())
    assert restored.digest() == eng.digest()

    resolve = ResolveEvent(event_id=1, void=True)
    assert restored.apply(resolve) == eng.apply(resolve)


def test_placement_reports_its_own_order_first_when_older_orders_expire():
    eng = fresh_engine()
    eng.apply(PlaceOrder(user_id=ALICE, market_id=MARKET, outcome=Outcome.YES, side=Side.BUY,
                         quantity=1, price=4000, tif=TimeInForce.GTD, expires_at_ms=5))

    events = eng.apply(PlaceOrder(user_id=BOB, market_id=MARKET, outcome=Outcome.YES,
                                  side=Side.BUY, quantity=1, price=4000, ts_ms=10))

    assert {o["order_id"]: o["status"] for o in of_kind(events, "order")} == \
        {1: "expired", 2: "open"}
    # The expiry is reported first, closed by a clock marker; then the placement.
    assert events.index(Clock(10, 1)) < events.index(order_event(events, 2))
    own = of_kind(command_events(events), "order")
    assert [o["order_id"] for o in own] == [2]


def order_event(events: list[EngineEvent], order_id: int) -> OrderState:
    return next(e for e in events if e.kind == "order" and e.order_id == order_id)


def test_batch_sections_hold_only_their_own_orders_when_older_orders_expire():
    eng = fresh_engine()
    eng.apply(PlaceOrder(user_id=ALICE, market_id=MARKET, outcome=Outcome.YES, side=Side.BUY,
                         quantity=1, price=4000, tif=TimeInForce.GTD, expires_at_ms=5))
    item = PlaceOrder(user_id=BOB, market_id=MARKET, outcome=Outcome.YES, side=Side.BUY,
                      quantity=1, price=4000)

    events = eng.apply(PlaceBatch(user_id=BOB, orders=(item,), ts_ms=10))

    section = events[events.index(BatchItem(0)) + 1:]
    assert [o["order_id"] for o in of_kind(section, "order")] == [2]
