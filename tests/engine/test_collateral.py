"""Deposits, withdrawals, split/merge of markets and events, and convert."""

import pytest

from pmarket.engine import Convert, Deposit, Merge, MergeEvent, Split, SplitEvent, Withdraw
from pmarket.engine.events import Reason, of_kind

from .exchange import ALICE, BOB, Exchange, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.eid, ex.mids = ex.event("Who wins?", ["A", "B", "C"])
    ex.single = ex.market()
    ex.fund(ALICE, 100)
    return ex


def test_deposit_and_withdrawal_cross_the_boundary_and_are_ledgered(ex):
    events = ex.apply(Withdraw(user_id=ALICE, amount=usd(30)))
    (entry,) = of_kind(events, "ledger")
    assert (entry["entry_kind"], entry["amount"]) == ("withdrawal", -usd(30))
    audit = ex.engine.audit()
    assert (audit.deposits, audit.withdrawals, audit.user_cash) == (usd(100), usd(30), usd(70))


def test_split_turns_cash_into_a_yes_no_pair_and_merge_turns_it_back(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=7))
    assert ex.holding(ALICE, ex.single) == (7, 7, 0, 0)
    assert ex.cash(ALICE)[0] == usd(93) and ex.engine.audit().collateral == usd(7)
    ex.apply(Merge(user_id=ALICE, market_id=ex.single, quantity=3))
    assert ex.holding(ALICE, ex.single) == (4, 4, 0, 0)
    assert ex.cash(ALICE)[0] == usd(96) and ex.engine.audit().collateral == usd(4)


def test_split_needs_cash_and_merge_needs_free_pairs(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=101))
    assert ex.rejection() == Reason.INSUFFICIENT_CASH
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=5))
    ex.sell_yes(ALICE, ex.single, "0.9", qty=3)
    ex.apply(Merge(user_id=ALICE, market_id=ex.single, quantity=3))
    assert ex.rejection() == Reason.INSUFFICIENT_SHARES
    ex.apply(Merge(user_id=ALICE, market_id=ex.single, quantity=2))
    assert ex.holding(ALICE, ex.single) == (3, 3, 3, 0)


def test_event_split_gives_one_yes_of_every_outcome_per_dollar(ex):
    ex.apply(SplitEvent(user_id=ALICE, event_id=ex.eid, quantity=4))
    assert [ex.holding(ALICE, m) for m in ex.mids] == [(4, 0, 0, 0)] * 3
    assert ex.cash(ALICE)[0] == usd(96)
    ex.apply(MergeEvent(user_id=ALICE, event_id=ex.eid, quantity=4))
    assert [ex.holding(ALICE, m) for m in ex.mids] == [(0, 0, 0, 0)] * 3
    assert ex.cash(ALICE)[0] == usd(100)


def test_event_merge_needs_every_outcome(ex):
    ex.apply(SplitEvent(user_id=ALICE, event_id=ex.eid, quantity=2))
    ex.sell_yes(ALICE, ex.mids[1], "0.5", qty=1)
    ex.apply(MergeEvent(user_id=ALICE, event_id=ex.eid, quantity=2))
    assert ex.rejection() == Reason.INSUFFICIENT_SHARES


def test_event_level_operations_do_not_exist_for_single_outcome_events(ex):
    single_event = ex.engine.market_view(ex.single).event_id
    for cmd in (SplitEvent(user_id=ALICE, event_id=single_event, quantity=1),
                MergeEvent(user_id=ALICE, event_id=single_event, quantity=1),
                Convert(user_id=ALICE, event_id=single_event, outcome_ids=(ex.single,),
                        quantity=1)):
        ex.apply(cmd)
        assert ex.rejection() == Reason.SINGLE_OUTCOME_EVENT


def test_convert_one_no_into_yes_of_every_other_outcome(ex):
    a, _b, _c = ex.mids
    ex.apply(Split(user_id=ALICE, market_id=a, quantity=5))
    ex.apply(Convert(user_id=ALICE, event_id=ex.eid, outcome_ids=(a,), quantity=5))
    assert [ex.holding(ALICE, m) for m in ex.mids] == [(5, 0, 0, 0), (5, 0, 0, 0),
                                                       (5, 0, 0, 0)]
    assert ex.cash(ALICE)[0] == usd(95)


def test_convert_several_nos_pays_the_cash_difference(ex):
    a, b, _c = ex.mids
    ex.apply(Split(user_id=ALICE, market_id=a, quantity=2))
    ex.apply(Split(user_id=ALICE, market_id=b, quantity=2))
    ex.apply(Convert(user_id=ALICE, event_id=ex.eid, outcome_ids=(a, b), quantity=2))
    (entry,) = of_kind(ex.last, "ledger")
    assert (entry["entry_kind"], entry["amount"]) == ("convert", usd(2))
    assert [ex.holding(ALICE, m) for m in ex.mids] == [(2, 0, 0, 0), (2, 0, 0, 0),
                                                       (2, 0, 0, 0)]
    assert ex.cash(ALICE)[0] == usd(98)


def test_convert_needs_free_nos_and_distinct_outcomes_of_the_event(ex):
    a, _b, _ = ex.mids
    ex.apply(Convert(user_id=ALICE, event_id=ex.eid, outcome_ids=(a,), quantity=1))
    assert ex.rejection() == Reason.INSUFFICIENT_SHARES
    ex.apply(Convert(user_id=ALICE, event_id=ex.eid, outcome_ids=(a, a), quantity=1))
    assert ex.rejection() == Reason.UNKNOWN_OUTCOME
    ex.apply(Convert(user_id=ALICE, event_id=ex.eid, outcome_ids=(ex.single,), quantity=1))
    assert ex.rejection() == Reason.UNKNOWN_OUTCOME


def test_deposit_creates_the_account(ex):
    assert ex.cash(BOB) == (0, 0)
    ex.apply(Deposit(user_id=BOB, amount=1))
    assert ex.cash(BOB) == (1, 0)
