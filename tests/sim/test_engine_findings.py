"""Engine behaviour the simulator found to contradict DESIGN.md (fixes belong to the engine).

Each test is the smallest command sequence showing the problem, marked ``xfail(strict)``
so that it starts failing — and must be unmarked — as soon as the engine is fixed.
"""

from __future__ import annotations

import pytest

from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    Outcome,
    PlaceOrder,
    SelfTrade,
    Side,
    Split,
    TimeInForce,
)
from pmarket.engine.events import of_kind


def _book_with_own_order_between_others(stp: SelfTrade) -> list[dict]:
    """Asks: bob 3 @ 0.50, ann 5 @ 0.51, bob 5 @ 0.52; ann sends a fok buy of 8 @ 0.52."""
    eng = Engine()
    eng.apply(CreateEvent(title="Will it rain?"))
    for user in (1, 2):
        eng.apply(Deposit(user_id=user, amount=1_000_000))
        eng.apply(Split(user_id=user, market_id=1, quantity=20))
    for user, price, qty in ((2, 5_000, 3), (1, 5_100, 5), (2, 5_200, 5)):
        eng.apply(PlaceOrder(user_id=user, market_id=1, outcome=Outcome.YES, side=Side.SELL,
                             quantity=qty, price=price))
    events = eng.apply(PlaceOrder(user_id=1, market_id=1, outcome=Outcome.YES, side=Side.BUY,
                                  quantity=8, price=5_200, tif=TimeInForce.FOK, stp=stp))
    assert eng.audit().ok
    return events


@pytest.mark.parametrize("stp", [SelfTrade.CANCEL_TAKER, SelfTrade.CANCEL_BOTH])
@pytest.mark.xfail(strict=True, reason=(
    "engine: a fok order whose self-trade prevention stops it midway is partly filled "
    "(3 of 8 here); DESIGN §3 fok fills completely or not at all"))
def test_fok_stopped_by_self_trade_prevention_fills_nothing(stp):
    events = _book_with_own_order_between_others(stp)
    assert of_kind(events, "fill") == []
    assert of_kind(events, "order")[0]["filled"] == 0
