"""The one conversion from engine events to API objects (``pmarket.api.convert``)."""

from __future__ import annotations

import pytest

from pmarket.api import convert
from pmarket.engine import CreateEvent, Deposit, Engine, Outcome, PlaceOrder, Side
from pmarket.engine.events import BalanceState, DeadManState, Fill, OrderState, Rejected
from pmarket.sim.inprocess_target import InProcessTarget
from pmarket.sim.values import OrderRequest


def _trade() -> tuple[Fill, OrderState, OrderState]:
    """A mint at 0.60 / 0.40 with a 7% fee: the fill, the YES bid (maker), the NO taker."""
    eng = Engine()
    eng.apply(CreateEvent(title="Rain?", tick=100, fee_rate=700, ts_ms=1_000))
    for user in (1, 2):
        eng.apply(Deposit(user_id=user, amount=10**8, ts_ms=1_000))
    (maker, *_) = eng.apply(PlaceOrder(user_id=1, market_id=1, outcome=Outcome.YES,
                                       side=Side.BUY, price=6_000, quantity=10, ts_ms=2_000))
    events = eng.apply(PlaceOrder(user_id=2, market_id=1, outcome=Outcome.NO, side=Side.BUY,
                                  price=4_000, quantity=10, ts_ms=3_000))
    fill = next(e for e in events if isinstance(e, Fill))
    taker = next(e for e in events if isinstance(e, OrderState) and e.user_id == 2)
    assert isinstance(maker, OrderState)
    return fill, maker, taker


def test_an_order_is_in_its_owners_terms_with_iso_times():
    _fill, _maker, taker = _trade()
    order = convert.order(taker, 100)
    assert (order["outcome"], order["side"], order["price"]) == ("no", "buy", "0.40")
    assert (order["quantity"], order["filled_quantity"], order["remaining_quantity"]) == \
        (10, 10, 0)
    assert order["status"] == "filled" and order["type"] == "limit"
    assert order["created_at"] == "1970-01-01T00:00:03Z"


def test_a_fill_is_each_owners_trade_and_only_the_taker_pays():
    fill, maker, taker = _trade()
    mine = convert.own_trade(fill, taker, "taker", 100)
    theirs = convert.own_trade(fill, maker, "maker", 100)
    assert (mine["price"], mine["outcome"], mine["kind"]) == ("0.40", "no", "mint")
    assert (theirs["price"], theirs["outcome"]) == ("0.60", "yes")
    assert mine["fee"] == "0.1700" and theirs["fee"] == "0.0000"  # 7% x 10 x .6 x .4
    public = convert.public_trade(fill, 100)
    assert (public["price"], public["taker_side"]) == ("0.60", "sell")


def test_balances_switches_and_rejections():
    assert convert.balance(BalanceState(1, 12_500, 2_500)) == {
        "available": "1.2500", "reserved": "0.2500", "total": "1.5000"}
    assert convert.dead_man(DeadManState(1, 5_000, 15_000, None)) == {
        "expires_at": "1970-01-01T00:00:05Z", "timeout_s": 15, "fired_at": None}
    assert convert.rejection(Rejected(1, "PlaceOrder", "insufficient_cash", "no cash",
                                      None, None)) == ("insufficient_cash", "no cash")
    with pytest.raises(ValueError, match="outside"):
        convert.iso_ms(-1)


def test_the_simulator_reports_the_orders_the_server_would():
    target = InProcessTarget()
    info = target.create_event("Rain?", [], "0.01")
    user = target.signup("ann")
    target.deposit(user, "100")
    market = info.markets["Yes"]
    placed = target.place(user, OrderRequest(market_id=market, outcome="no", side="buy",
                                             quantity=3, price="0.35"))
    (event,) = target.engine.open_orders(user.id)
    api = convert.order(event, 100)
    assert placed.order is not None
    got = placed.order
    assert (got.id, got.market_id, got.outcome, got.side, got.type, got.price,
            got.quantity, got.filled_quantity, got.status, got.time_in_force) == (
        api["id"], api["market_id"], api["outcome"], api["side"], api["type"],
        api["price"], api["quantity"], api["filled_quantity"], api["status"],
        api["time_in_force"])
