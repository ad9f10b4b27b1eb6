"""Every rejection is data with a reason code, and changes nothing."""

import pytest

from pmarket.engine import (
    CreateEvent,
    Deposit,
    EventStatus,
    Outcome,
    PlaceOrder,
    Side,
    Split,
    UpdateEvent,
    Withdraw,
)
from pmarket.engine.commands import Command
from pmarket.engine.events import Reason

from .exchange import ALICE, BOB, Exchange, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.mid = ex.market()
    ex.fund(ALICE, 10)
    return ex


def rejected_without_change(ex, cmd_or_events) -> str:
    before = ex.engine.digest()
    events = cmd_or_events() if callable(cmd_or_events) else ex.apply(cmd_or_events)
    assert [e.kind for e in events] == ["rejected"], events
    assert ex.engine.digest() == before
    return events[0].reason


@pytest.mark.parametrize(("price", "tick"), [("0", "0.01"), ("1", "0.01"), ("0.005", "0.01"),
                                             ("0.0005", "0.001"), ("1.2", "0.0001")])
def test_price_off_the_grid_or_out_of_range_is_rejected(price, tick):
    ex = Exchange()
    mid = ex.market(tick=tick)
    ex.fund(ALICE)
    assert rejected_without_change(ex, lambda: ex.buy_yes(ALICE, mid, price)) == \
        Reason.INVALID_PRICE


def test_fine_ticks_accept_prices_on_their_grid():
    ex = Exchange()
    fine = ex.market(tick="0.001")
    finest = ex.market(tick="0.0001")
    ex.fund(ALICE)
    ex.fund(BOB)
    ex.buy_yes(ALICE, fine, "0.123")
    ex.buy_no(BOB, fine, "0.877")  # YES ask at 0.123
    assert ex.fills()[0]["price"] == usd("0.123")
    ex.buy_yes(ALICE, finest, "0.0001", qty=1)
    ex.buy_yes(ALICE, finest, "0.9999", qty=1)
    assert ex.levels(finest)[0] == [(usd("0.9999"), 1), (usd("0.0001"), 1)]


@pytest.mark.parametrize("qty", [0, -1, 10**12])
def test_bad_quantity_is_rejected(ex, qty):
    assert rejected_without_change(ex, lambda: ex.buy_yes(ALICE, ex.mid, "0.5", qty=qty)) == \
        Reason.INVALID_QUANTITY


def test_insufficient_cash_is_rejected(ex):
    assert rejected_without_change(ex, lambda: ex.buy_yes(ALICE, ex.mid, "0.5", qty=21)) == \
        Reason.INSUFFICIENT_CASH


def test_selling_shares_not_held_is_rejected(ex):
    assert rejected_without_change(ex, lambda: ex.sell_yes(ALICE, ex.mid, "0.5")) == \
        Reason.INSUFFICIENT_SHARES


def test_selling_shares_already_reserved_is_rejected(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.mid, quantity=5))
    ex.sell_no(ALICE, ex.mid, "0.4", qty=5)
    assert rejected_without_change(ex, lambda: ex.sell_no(ALICE, ex.mid, "0.4", qty=1)) == \
        Reason.INSUFFICIENT_SHARES


def test_unknown_market_is_rejected(ex):
    assert rejected_without_change(ex, lambda: ex.buy_yes(ALICE, 999, "0.5")) == \
        Reason.UNKNOWN_MARKET


def test_order_in_a_closed_market_is_rejected(ex):
    ex.apply(UpdateEvent(event_id=1, status=EventStatus.CLOSED))
    assert rejected_without_change(ex, lambda: ex.buy_yes(ALICE, ex.mid, "0.5")) == \
        Reason.MARKET_NOT_ACTIVE


def test_limit_order_without_price_is_rejected(ex):
    cmd = PlaceOrder(user_id=ALICE, market_id=ex.mid, outcome=Outcome.YES, side=Side.BUY,
                     quantity=1)
    assert rejected_without_change(ex, cmd) == Reason.INVALID_PRICE


@pytest.mark.parametrize("amount", [0, -5, 10**16])
def test_bad_deposit_or_withdrawal_amount_is_rejected(ex, amount):
    assert rejected_without_change(ex, Deposit(user_id=ALICE, amount=amount)) == \
        Reason.INVALID_AMOUNT
    assert rejected_without_change(ex, Withdraw(user_id=ALICE, amount=amount)) == \
        Reason.INVALID_AMOUNT


def test_withdrawal_beyond_available_cash_is_rejected(ex):
    ex.buy_yes(ALICE, ex.mid, "0.5", qty=10)  # reserves 5 of 10
    assert rejected_without_change(ex, Withdraw(user_id=ALICE, amount=usd(6))) == \
        Reason.INSUFFICIENT_CASH
    ex.apply(Withdraw(user_id=ALICE, amount=usd(5)))
    assert ex.cash(ALICE) == (0, usd(5))


def test_withdrawal_by_unknown_user_is_rejected(ex):
    assert rejected_without_change(ex, Withdraw(user_id=77, amount=1)) == \
        Reason.INSUFFICIENT_CASH


@pytest.mark.parametrize("kwargs", [{"title": " "}, {"title": "x", "tick": 50},
                                    {"title": "x", "outcomes": ("A", "A")},
                                    {"title": "x", "outcomes": ("A", "")}])
def test_invalid_event_is_rejected(ex, kwargs):
    assert rejected_without_change(ex, CreateEvent(**kwargs)) == Reason.INVALID_EVENT


def test_replayed_sequence_number_is_not_applied_twice(ex):
    ex.apply(Deposit(user_id=BOB, amount=100, seq=7))
    assert rejected_without_change(ex, Deposit(user_id=BOB, amount=100, seq=7)) == \
        Reason.DUPLICATE_COMMAND
    assert rejected_without_change(ex, Deposit(user_id=BOB, amount=100, seq=3)) == \
        Reason.DUPLICATE_COMMAND
    assert ex.cash(BOB) == (100, 0)


def test_unknown_command_type_is_a_loud_error(ex):
    # The bare base class: command classes are native when compiled, so no other class
    # than the engine's own can be made a command there.
    with pytest.raises(TypeError, match="not an engine command"):
        ex.engine.apply(Command(seq=1))
