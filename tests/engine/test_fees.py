"""Taker fees: the formula in integer units, who pays, what a buy holds, the audit.

The taker of each fill pays ``ceil_to_cent(fee_rate x quantity x p x (1 - p))`` (never
more than the fill is worth in the taker's terms), makers pay nothing; a crossing buy
holds its worst-case fee with its cash and gets the unused part back when matching
ends; a sell's fee comes out of its proceeds; every fee lands in the fee account.
"""

from fractions import Fraction
from math import ceil

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmarket.engine import Engine, ModifyOrder, Split, UpdateEvent
from pmarket.engine.events import as_dict
from pmarket.engine.units import (
    MAX_FEE_RATE,
    SCALE,
    parse_fee_rate,
    taker_fee,
    worst_taker_fee,
)

from .exchange import ALICE, BOB, CAROL, Exchange, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.eid, (ex.mid,) = ex.event(fee_rate="0.07")
    for user in (ALICE, BOB, CAROL):
        ex.fund(user)
        ex.apply(Split(user_id=user, market_id=ex.mid, quantity=100))  # $100 each
    return ex


def fee_account(ex) -> int:
    return ex.engine.treasury.fees


# --- the formula ---------------------------------------------------------------------


def test_the_formula_rounds_up_to_the_cent():
    assert taker_fee(700, 100, usd("0.50"), usd("0.50")) == usd("1.75")
    assert taker_fee(700, 10, usd("0.30"), usd("0.30")) == usd("0.15")  # 0.147
    assert taker_fee(700, 1, usd("0.50"), usd("0.50")) == usd("0.02")  # 0.0175
    assert taker_fee(0, 10**9, usd("0.50"), usd("0.50")) == 0


def test_p_times_one_minus_p_makes_yes_and_no_pay_the_same():
    for p in (usd("0.13"), usd("0.50"), usd("0.87")):
        assert taker_fee(700, 37, p, p) == taker_fee(700, 37, SCALE - p, SCALE - p)


def test_a_sub_cent_fill_never_pays_more_than_it_is_worth():
    # 0.25 x 1 x 0.001 x 0.999 = 0.00025 rounds up to 0.01, but the share is worth 0.001
    assert taker_fee(MAX_FEE_RATE, 1, usd("0.001"), usd("0.001")) == usd("0.001")
    assert taker_fee(MAX_FEE_RATE, 1, usd("0.999"), usd("0.001")) == usd("0.001")


@given(rate=st.integers(0, MAX_FEE_RATE), qty=st.integers(1, 10**9),
       price=st.integers(1, SCALE - 1))
def test_the_formula_equals_exact_fractions(rate, qty, price):
    p = Fraction(price, SCALE)
    exact = Fraction(rate, SCALE) * qty * p * (1 - p)
    cents = ceil(exact * 100)
    assert taker_fee(rate, qty, price, price) == min(cents * 100, qty * price)


@given(rate=st.integers(0, MAX_FEE_RATE), limit=st.integers(1, SCALE - 1),
       fills=st.lists(st.tuples(st.integers(1, 50), st.integers(1, SCALE - 1)),
                      min_size=1, max_size=20))
def test_no_sequence_of_fills_costs_more_than_the_worst_case(rate, limit, fills):
    fills = [(q, min(p, limit)) for q, p in fills]  # a buy fills at or below its limit
    qty = sum(q for q, _ in fills)
    assert sum(taker_fee(rate, q, p, p) for q, p in fills) <= \
        worst_taker_fee(rate, qty, limit)


def test_the_worst_case_is_reached_by_single_shares_at_the_peak():
    assert worst_taker_fee(700, 10, usd("0.60")) == 10 * taker_fee(700, 1, 5000, 5000)
    assert worst_taker_fee(700, 10, usd("0.20")) == 10 * taker_fee(700, 1, 2000, 2000)


def test_fee_rates_parse_exactly_and_stay_within_a_quarter():
    assert parse_fee_rate("0.07") == 700 and parse_fee_rate(0) == 0
    assert parse_fee_rate("0.25") == MAX_FEE_RATE
    for bad in ("0.2501", "-0.01", "0.00001", "1e-2", True):
        with pytest.raises(ValueError):
            parse_fee_rate(bad)


# --- who pays, and from what --------------------------------------------------------


def test_a_buying_taker_pays_the_fee_and_the_maker_nothing(ex):
    ex.sell_yes(BOB, ex.mid, "0.50")
    bob_before, alice_before = ex.cash(BOB), ex.cash(ALICE)
    ex.buy_yes(ALICE, ex.mid, "0.50")
    (fill,) = ex.fills()
    assert fill["fee"] == usd("0.18")  # 0.07 x 10 x 0.25 = 0.175
    assert ex.cash(ALICE) == (alice_before[0] - usd(5) - usd("0.18"), 0)
    assert ex.cash(BOB) == (bob_before[0] + usd(5), 0)
    assert fee_account(ex) == usd("0.18")


def test_a_selling_taker_pays_out_of_its_proceeds(ex):
    ex.buy_yes(BOB, ex.mid, "0.40")
    before = ex.cash(ALICE)
    ex.sell_yes(ALICE, ex.mid, "0.40", qty=10)
    (fill,) = ex.fills()
    assert fill["fee"] == usd("0.17")  # 0.07 x 10 x 0.24 = 0.168
    assert ex.cash(ALICE) == (before[0] + usd(4) - usd("0.17"), 0)
    assert ex.holding(BOB, ex.mid)[0] == 110


@pytest.mark.parametrize("taker, maker, kind", [
    ("buy_yes", "sell_yes", "transfer_yes"), ("buy_yes", "buy_no", "mint"),
    ("sell_no", "sell_yes", "merge"), ("sell_no", "buy_no", "transfer_no"),
    ("buy_no", "buy_yes", "mint"), ("sell_yes", "sell_no", "merge"),
])
def test_every_kind_of_trade_charges_the_same_at_the_same_price(ex, taker, maker, kind):
    yes_price = usd("0.30")

    def own(action):
        return "0.30" if action.endswith("yes") else "0.70"

    getattr(ex, maker)(BOB, ex.mid, own(maker), qty=7)
    getattr(ex, taker)(ALICE, ex.mid, own(taker), qty=7)
    (fill,) = ex.fills()
    assert (fill["settlement"], fill["price"]) == (kind, yes_price)
    assert fill["fee"] == usd("0.11")  # 0.07 x 7 x 0.21 = 0.1029


def test_a_buy_holds_its_worst_case_fee_only_while_it_takes(ex):
    ex.sell_yes(BOB, ex.mid, "0.40", qty=5)
    before = ex.cash(ALICE)[0]
    ex.buy_yes(ALICE, ex.mid, "0.60", qty=20)  # 5 fill at 0.40, 15 rest at 0.60
    (fill,) = ex.fills()
    assert fill["fee"] == usd("0.09")  # 0.07 x 5 x 0.24 = 0.084
    # what rests holds exactly its price, no fee: it will be a maker
    assert ex.cash(ALICE) == (before - usd(2) - usd("0.09") - usd(9), usd(9))


def test_cash_for_the_price_but_not_the_worst_case_fee_is_refused(ex):
    ex.sell_yes(BOB, ex.mid, "0.50", qty=100)
    poor = 9
    ex.fund(poor, "50")
    ex.buy_yes(poor, ex.mid, "0.50", qty=100)  # $50 + up to 100 x $0.02
    assert ex.rejection() == "insufficient_cash"
    ex.buy_yes(poor, ex.mid, "0.49", qty=100)  # does not cross: no fee to hold
    assert ex.rejection() is None and ex.cash(poor) == (usd(1), usd(49))


def test_the_worst_case_hold_covers_a_sweep_of_single_shares(ex):
    for _ in range(10):
        ex.sell_yes(BOB, ex.mid, "0.50", qty=1)
    rich = 9
    ex.fund(rich, "5.20")  # 10 x (0.50 + 0.02): exactly enough
    ex.buy_yes(rich, ex.mid, "0.50", qty=10)
    fills = ex.fills()
    assert [f["fee"] for f in fills] == [usd("0.02")] * 10
    assert ex.cash(rich) == (0, 0)


def test_a_market_order_takes_with_its_fees(ex):
    ex.buy_no(BOB, ex.mid, "0.20", qty=10)  # a YES ask at 0.80
    before = ex.cash(ALICE)[0]
    ex.buy_yes(ALICE, ex.mid, None, qty=10, type="market")
    (fill,) = ex.fills()
    assert fill["fee"] == usd("0.12")  # 0.07 x 10 x 0.16 = 0.112
    assert ex.cash(ALICE) == (before - usd(8) - usd("0.12"), 0)


def test_a_modification_that_crosses_pays_as_a_taker(ex):
    ex.sell_yes(BOB, ex.mid, "0.60", qty=10)
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=10)
    oid = ex.placed()["order_id"]
    before = sum(ex.cash(ALICE))
    ex.apply(ModifyOrder(user_id=ALICE, order_id=oid, price=usd("0.60")))
    (fill,) = ex.fills()
    assert fill["fee"] == usd("0.17")  # 0.07 x 10 x 0.24 = 0.168
    assert sum(ex.cash(ALICE)) == before - usd(6) - usd("0.17")


def test_no_fee_without_a_rate():
    ex = Exchange()
    mid = ex.market()
    ex.fund(ALICE)
    ex.fund(BOB)
    ex.buy_no(BOB, mid, "0.50")
    ex.buy_yes(ALICE, mid, "0.50")
    assert [f["fee"] for f in ex.fills()] == [0]
    assert ex.engine.treasury.fees == 0


# --- the rate, the audit, snapshots -----------------------------------------------------


def test_a_new_rate_applies_to_later_fills_and_is_checked(ex):
    ex.apply(UpdateEvent(event_id=ex.eid, fee_rate=usd("0.25")))
    assert as_dict(ex.last[-1])["fee_rate"] == usd("0.25")
    ex.sell_yes(BOB, ex.mid, "0.50")
    ex.buy_yes(ALICE, ex.mid, "0.50")
    assert ex.fills()[0]["fee"] == usd("0.63")  # 0.25 x 10 x 0.25 = 0.625
    for bad in (MAX_FEE_RATE + 1, -1, "0.1"):
        ex.apply(UpdateEvent(event_id=ex.eid, fee_rate=bad))
        assert ex.rejection() == "invalid_field"
    assert ex.engine.events[ex.eid].fee_rate == MAX_FEE_RATE


def test_the_audit_counts_fees_per_event_and_overall(ex):
    other_eid, (other,) = ex.event(fee_rate="0.01")
    ex.apply(Split(user_id=BOB, market_id=other, quantity=10))
    ex.sell_yes(BOB, ex.mid, "0.50")
    ex.buy_yes(ALICE, ex.mid, "0.50")
    ex.sell_yes(BOB, other, "0.50")
    ex.buy_yes(ALICE, other, "0.50")  # 0.01 x 10 x 0.25 = 0.025 -> 0.03
    report = ex.engine.audit()
    assert report.ok and report.difference == 0
    assert report.fees == usd("0.21")
    assert (ex.engine.events[ex.eid].fees, ex.engine.events[other_eid].fees) == \
        (usd("0.18"), usd("0.03"))


def test_snapshots_carry_fee_rates_and_fees(ex):
    ex.sell_yes(BOB, ex.mid, "0.50")
    ex.buy_yes(ALICE, ex.mid, "0.50")
    restored = Engine.restore(orjson.loads(orjson.dumps(ex.engine.snapshot())))
    assert restored.digest() == ex.engine.digest()
    assert (restored.events[ex.eid].fee_rate, restored.events[ex.eid].fees,
            restored.treasury.fees) == (700, usd("0.18"), usd("0.18"))


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_snapshot_from_before_fees_restores_without_them(version):
    ex = Exchange()
    ex.market()
    old = ex.engine.snapshot()
    old["version"] = version
    for event in old["events"]:
        del event["fee_rate"], event["fees"]
    restored = Engine.restore(old)
    assert [e.fee_rate for e in restored.events.values()] == [0]
    assert restored.audit().ok
