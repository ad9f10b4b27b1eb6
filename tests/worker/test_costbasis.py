"""Cost basis and realised P&L: the rules of pmarket.worker.costbasis, and their totals."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from pmarket.db import LedgerEntry, Position
from pmarket.engine.units import SCALE
from pmarket.worker.costbasis import (
    NO,
    YES,
    Holding,
    allocate,
    apply_fill,
    convert,
    merge,
    payout,
    split,
    split_event,
)
from tests.dbfixtures import Database

from .helpers import project, rows
from .scenario import full_session, random_session


def test_buys_raise_cost_and_sales_realise_against_average_cost():
    h = Holding((1, 1))
    h.buy(YES, 10, 10 * 4000)
    h.buy(YES, 10, 10 * 6000)
    assert h.cost[YES] == 100_000  # average 0.50
    h.dispose(YES, 5, 5 * 7000)
    assert (h.qty[YES], h.cost[YES], h.pnl[YES]) == (15, 75_000, 35_000 - 25_000)
    h.dispose(YES, 15, 15 * 3000)
    assert (h.qty[YES], h.cost[YES], h.pnl[YES]) == (0, 0, 10_000 + 45_000 - 75_000)


def test_each_fill_kind_books_both_sides_at_their_own_price():
    bid, ask = Holding((1, 1)), Holding((2, 1))
    apply_fill(bid, ask, "mint", 4000, 3)
    assert (bid.qty[YES], bid.cost[YES], ask.qty[NO], ask.cost[NO]) == (3, 12_000, 3, 18_000)
    apply_fill(ask, bid, "merge", 5000, 1)  # YES bid = the NO seller
    assert (ask.qty[NO], ask.pnl[NO]) == (2, 5000 - 6000)
    assert (bid.qty[YES], bid.pnl[YES]) == (2, 5000 - 4000)
    apply_fill(ask, bid, "transfer_no", 4500, 2)  # ask (buy NO) from the NO holder
    assert (ask.qty[NO], bid.qty[NO], bid.cost[NO]) == (0, 2, 11_000)


def test_a_takers_fee_adds_to_what_it_buys_and_comes_off_what_it_sells():
    bid, ask = Holding((1, 1)), Holding((2, 1))
    apply_fill(bid, ask, "mint", 5000, 10, fee=1800, taker_bid=True)  # the bid takes
    assert (bid.cost[YES], ask.cost[NO]) == (50_000 + 1800, 50_000)
    apply_fill(bid, ask, "mint", 5000, 10, fee=1800, taker_bid=False)  # the ask takes
    assert (bid.cost[YES], ask.cost[NO]) == (101_800, 100_000 + 1800)
    buyer = Holding((3, 1))
    apply_fill(buyer, bid, "transfer_yes", 6000, 20, fee=1700, taker_bid=False)
    assert bid.pnl[YES] == 20 * 6000 - 1700 - 101_800  # the selling taker's proceeds
    assert buyer.cost[YES] == 20 * 6000  # the maker paid nothing


def test_split_divides_the_dollar_by_the_last_price():
    h = Holding((1, 1))
    split(h, 10, 7000)
    assert (h.cost[YES], h.cost[NO]) == (70_000, 30_000)
    fresh = Holding((1, 2))
    split(fresh, 3, None)  # never traded: half each
    assert (fresh.cost[YES], fresh.cost[NO]) == (15_000, 15_000)
    merge(h, 10, 7000)
    assert h.qty == [0, 0] and h.pnl == [0, 0]


def test_event_split_follows_outcome_prices_and_is_exact():
    holdings = [Holding((1, m)) for m in (1, 2, 3)]
    split_event(holdings, 1, [None, 5000, 2000])  # one outcome never traded: equal
    assert [h.cost[YES] for h in holdings] == [3334, 3333, 3333]
    split_event(holdings, 1, [5000, 3000, 2000])
    assert [h.cost[YES] for h in holdings] == [3334 + 5000, 3333 + 3000, 3333 + 2000]


def test_convert_carries_the_no_cost_over_to_the_new_yes_shares():
    chosen, others = [Holding((1, 1))], [Holding((1, 2)), Holding((1, 3))]
    chosen[0].buy(NO, 4, 4 * 7000)
    convert(chosen, others, 4, released=0)
    assert chosen[0].qty[NO] == 0 and chosen[0].pnl[NO] == 0
    assert [h.cost[YES] for h in others] == [14_000, 14_000]


def test_convert_realises_cash_released_beyond_the_cost():
    chosen = [Holding((1, 1)), Holding((1, 2))]
    for h in chosen:
        h.buy(NO, 1, 2000)
    other = Holding((1, 3))
    convert(chosen, [other], 1, released=SCALE)  # 2 NOs -> 1 YES of the third + $1
    assert sum(h.pnl[NO] for h in chosen) == SCALE - 4000
    assert other.cost[YES] == 0


def test_payout_realises_every_share_at_what_it_pays():
    won, lost = Holding((1, 1)), Holding((1, 2))
    won.buy(YES, 10, 40_000)
    lost.buy(NO, 5, 10_000)
    payout(won, 10 * SCALE, won=True, void=False, outcomes=2)
    payout(lost, 5 * SCALE, won=False, void=False, outcomes=2)
    assert (won.pnl[YES], lost.pnl[NO]) == (60_000, 40_000)
    void = Holding((1, 3))
    void.buy(YES, 3, 3000)
    void.buy(NO, 1, 8000)
    amount = (3 * SCALE + 1 * SCALE * 2) // 3
    payout(void, amount, won=False, void=True, outcomes=3)
    assert void.qty == [0, 0] and sum(void.pnl) == amount - 11_000


@given(st.integers(0, 10**15), st.lists(st.integers(-5, 10**6), min_size=1, max_size=12))
def test_allocate_always_sums_to_the_whole(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    assert all(p >= 0 for p in parts)


def _realised_by_user(database: Database) -> dict[int, int]:
    return dict(rows(database, sa.select(
        Position.user_id, sa.func.sum(Position.yes_realized_pnl + Position.no_realized_pnl))
        .group_by(Position.user_id)))


def _net_deposits(database: Database) -> dict[int, int]:
    return dict(rows(database, sa.select(LedgerEntry.user_id, sa.func.sum(LedgerEntry.amount))
                     .where(LedgerEntry.kind.in_(("deposit", "withdrawal")))
                     .group_by(LedgerEntry.user_id)))


def test_once_everything_is_resolved_realised_pnl_is_each_users_cash_gain(database):
    r = full_session()
    project(database, r.deliveries)
    deposits = _net_deposits(database)
    realised = _realised_by_user(database)
    assert realised == {u: sum(r.engine.balance(u)) - deposits[u] for u in deposits}
    assert rows(database, sa.select(Position).where(
        (Position.yes_cost != 0) | (Position.no_cost != 0))) == []


def test_realised_plus_cost_of_holdings_accounts_for_every_dollar(database):
    r = random_session(600, seed=21)
    project(database, r.deliveries, batch=100)
    deposits = _net_deposits(database)
    realised = _realised_by_user(database)
    cost = dict(rows(database, sa.select(
        Position.user_id, sa.func.sum(Position.yes_cost + Position.no_cost))
        .group_by(Position.user_id)))
    for user, net in deposits.items():
        # cash = deposits + realised - cost still held: cash paid for held shares is cost.
        assert sum(r.engine.balance(user)) == net + realised[user] - cost[user]
