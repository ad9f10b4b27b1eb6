"""The four settlement kinds, at the maker's price, with improvement to the taker."""

import pytest

from pmarket.engine import Split

from .exchange import ALICE, BOB, Exchange, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.mid = ex.market()
    ex.fund(ALICE)
    ex.fund(BOB)
    return ex


def test_buy_yes_against_sell_yes_transfers_yes_shares_and_cash(ex):
    ex.apply(Split(user_id=BOB, market_id=ex.mid, quantity=10))
    ex.sell_yes(BOB, ex.mid, "0.60")
    ex.buy_yes(ALICE, ex.mid, "0.60")
    (fill,) = ex.fills()
    assert (fill["settlement"], fill["price"], fill["quantity"]) == \
        ("transfer_yes", usd("0.60"), 10)
    assert ex.holding(ALICE, ex.mid) == (10, 0, 0, 0)
    assert ex.holding(BOB, ex.mid) == (0, 10, 0, 0)
    assert ex.cash(ALICE) == (usd(1000) - usd(6), 0)
    assert ex.cash(BOB) == (usd(1000) - usd(10) + usd(6), 0)


def test_buy_yes_against_buy_no_mints_a_pair_and_locks_one_dollar(ex):
    ex.buy_no(BOB, ex.mid, "0.45")  # rests as a YES ask at 0.55
    ex.buy_yes(ALICE, ex.mid, "0.55", qty=4)
    (fill,) = ex.fills()
    assert fill["settlement"] == "mint" and fill["price"] == usd("0.55")
    assert ex.holding(ALICE, ex.mid) == (4, 0, 0, 0)
    assert ex.holding(BOB, ex.mid) == (0, 4, 0, 0)
    assert ex.engine.audit().collateral == usd(4)


def test_sell_no_against_sell_yes_merges_the_pair_and_releases_collateral(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.mid, quantity=10))
    ex.apply(Split(user_id=BOB, market_id=ex.mid, quantity=10))
    ex.sell_yes(BOB, ex.mid, "0.70", qty=5)
    ex.sell_no(ALICE, ex.mid, "0.30", qty=5)  # bid at 0.70
    (fill,) = ex.fills()
    assert fill["settlement"] == "merge"
    assert ex.holding(ALICE, ex.mid) == (10, 5, 0, 0)
    assert ex.holding(BOB, ex.mid) == (5, 10, 0, 0)
    assert ex.cash(ALICE)[0] == usd(1000) - usd(10) + usd("1.50")
    assert ex.cash(BOB)[0] == usd(1000) - usd(10) + usd("3.50")
    assert ex.engine.audit().collateral == usd(15)


def test_sell_no_against_buy_no_transfers_no_shares(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.mid, quantity=10))
    ex.sell_no(ALICE, ex.mid, "0.40")  # bid at 0.60
    ex.buy_no(BOB, ex.mid, "0.40")  # ask at 0.60
    (fill,) = ex.fills()
    assert fill["settlement"] == "transfer_no"
    assert ex.holding(BOB, ex.mid) == (0, 10, 0, 0)
    assert ex.cash(BOB) == (usd(1000) - usd(4), 0)
    assert ex.cash(ALICE)[0] == usd(1000) - usd(10) + usd(4)


def test_trade_executes_at_maker_price_and_taker_keeps_the_improvement(ex):
    ex.buy_no(BOB, ex.mid, "0.50")  # ask at 0.50
    ex.buy_yes(ALICE, ex.mid, "0.65")
    (fill,) = ex.fills()
    assert fill["price"] == usd("0.50")
    assert ex.cash(ALICE) == (usd(1000) - usd(5), 0)  # reserved 6.50, paid 5.00


def test_no_taker_gets_price_improvement_in_its_own_terms(ex):
    ex.buy_yes(ALICE, ex.mid, "0.70")  # bid 0.70
    ex.buy_no(BOB, ex.mid, "0.40")  # ask at 0.60 crosses the 0.70 bid
    (fill,) = ex.fills()
    assert fill["price"] == usd("0.70") and fill["taker_side"] == "sell"
    order = ex.placed()
    assert (order["outcome"], order["side"], order["price"]) == ("no", "buy", usd("0.40"))
    assert ex.cash(BOB) == (usd(1000) - usd(3), 0)  # paid 0.30 per NO, not 0.40


def test_taker_walks_levels_in_price_then_time_priority(ex):
    ex.fund(3)
    ex.apply(Split(user_id=BOB, market_id=ex.mid, quantity=30))
    ex.apply(Split(user_id=3, market_id=ex.mid, quantity=30))
    first = ex.placed(ex.sell_yes(BOB, ex.mid, "0.52", qty=5))["order_id"]
    second = ex.placed(ex.sell_yes(3, ex.mid, "0.52", qty=5))["order_id"]
    best = ex.placed(ex.sell_yes(3, ex.mid, "0.51", qty=5))["order_id"]
    ex.buy_yes(ALICE, ex.mid, "0.52", qty=12)
    fills = ex.fills()
    assert [f["maker_order_id"] for f in fills] == [best, first, second]
    assert [f["quantity"] for f in fills] == [5, 5, 2]
    assert [f["price"] for f in fills] == [usd("0.51"), usd("0.52"), usd("0.52")]
    assert ex.levels(ex.mid) == ([], [(usd("0.52"), 3)])


def test_no_view_of_the_book_swaps_sides(ex):
    ex.buy_yes(ALICE, ex.mid, "0.40", qty=3)
    ex.buy_no(BOB, ex.mid, "0.45", qty=7)  # YES ask at 0.55
    assert ex.levels(ex.mid, "yes") == ([(usd("0.40"), 3)], [(usd("0.55"), 7)])
    assert ex.levels(ex.mid, "no") == ([(usd("0.45"), 7)], [(usd("0.60"), 3)])
    view = ex.engine.book(ex.mid, "no")
    assert (view.best_bid, view.best_ask, view.spread) == (usd("0.45"), usd("0.60"), usd("0.15"))
    assert ex.engine.book(ex.mid).mid_x2 == usd("0.95")
