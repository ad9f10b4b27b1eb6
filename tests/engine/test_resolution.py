"""Resolution with a winner, with no winner, void; close, reopen and delete."""

import pytest

from pmarket.engine import (
    DeleteEvent,
    EventStatus,
    ResolveEvent,
    Split,
    SplitEvent,
    UpdateEvent,
    queries,
)
from pmarket.engine.events import EventDeleted, Reason, of_kind

from .exchange import ALICE, BOB, CAROL, Exchange, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.eid, ex.mids = ex.event("Who wins?", ["A", "B", "C"])
    ex.single_eid, (ex.single,) = ex.event("Rain?")
    for user in (ALICE, BOB, CAROL):
        ex.fund(user, 100)
    return ex


def test_winner_pays_yes_of_the_winner_and_no_of_every_loser(ex):
    a, b, _c = ex.mids
    ex.apply(SplitEvent(user_id=ALICE, event_id=ex.eid, quantity=3))  # YES a, b, c
    ex.apply(Split(user_id=BOB, market_id=b, quantity=2))  # YES b + NO b
    ex.buy_yes(CAROL, a, "0.30", qty=5)  # resting, must be cancelled and released
    events = ex.apply(ResolveEvent(event_id=ex.eid, winning_outcome_id=a))
    (resolved,) = of_kind(events, "resolved")
    assert resolved["payouts_total"] == usd(3) + usd(2)
    assert ex.cash(ALICE) == (usd(100), 0)
    assert ex.cash(BOB) == (usd(100), 0)
    assert ex.cash(CAROL) == (usd(100), 0)
    assert all(ex.holding(u, m) == (0, 0, 0, 0) for u in (ALICE, BOB) for m in ex.mids)
    assert ex.engine.audit().collateral == 0


def test_single_outcome_event_may_resolve_with_no_winner(ex):
    ex.buy_yes(ALICE, ex.single, "0.60", qty=10)
    ex.buy_no(BOB, ex.single, "0.40", qty=10)  # mint
    ex.apply(ResolveEvent(event_id=ex.single_eid, winning_outcome_id=None))
    assert ex.cash(BOB)[0] == usd(100) - usd(4) + usd(10)
    assert ex.cash(ALICE)[0] == usd(100) - usd(6)


def test_multi_outcome_event_needs_a_winner_or_void(ex):
    ex.apply(ResolveEvent(event_id=ex.eid))
    assert ex.rejection() == Reason.UNKNOWN_OUTCOME


def test_winner_must_be_an_outcome_of_the_event(ex):
    ex.apply(ResolveEvent(event_id=ex.eid, winning_outcome_id=ex.single))
    assert ex.rejection() == Reason.UNKNOWN_OUTCOME


def test_void_single_outcome_pays_half_per_share(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=3))
    ex.sell_no(ALICE, ex.single, "0.50", qty=3)
    ex.sell_yes(ALICE, ex.single, "0.99", qty=1)
    ex.apply(ResolveEvent(event_id=ex.single_eid, void=True))
    assert ex.cash(ALICE) == (usd(100), 0)


def test_void_with_three_outcomes_rounds_down_and_books_the_remainder(ex):
    a, _b, _c = ex.mids
    ex.apply(SplitEvent(user_id=ALICE, event_id=ex.eid, quantity=1))
    ex.apply(Split(user_id=BOB, market_id=a, quantity=1))
    ex.apply(ResolveEvent(event_id=ex.eid, void=True))
    # Rounded down per position: ALICE's YES of a, b and c pay 3333 units each; BOB's
    # YES + NO of a pay (1 + 2) / 3 of a dollar = exactly 10000 units.
    (resolved,) = of_kind(ex.last, "resolved")
    assert resolved["payouts_total"] == 3 * 3333 + 10000 and resolved["rounding"] == 1
    audit = ex.engine.audit()
    assert audit.ok and audit.rounding == 1


def test_nothing_trades_splits_or_resolves_again_after_resolution(ex):
    ex.apply(ResolveEvent(event_id=ex.single_eid, winning_outcome_id=ex.single))
    ex.buy_yes(ALICE, ex.single, "0.5")
    assert ex.rejection() == Reason.MARKET_NOT_ACTIVE
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=1))
    assert ex.rejection() == Reason.MARKET_NOT_ACTIVE
    ex.apply(ResolveEvent(event_id=ex.single_eid, winning_outcome_id=ex.single))
    assert ex.rejection() == Reason.ALREADY_RESOLVED
    ex.apply(UpdateEvent(event_id=ex.single_eid, status=EventStatus.ACTIVE))
    assert ex.rejection() == Reason.ALREADY_RESOLVED


def test_closing_cancels_open_orders_and_reopening_allows_trading(ex):
    ex.buy_yes(ALICE, ex.single, "0.5")
    ex.apply(UpdateEvent(event_id=ex.single_eid, status=EventStatus.CLOSED))
    (order,) = of_kind(ex.last, "order")
    assert (order["status"], order["reason"]) == ("cancelled", Reason.EVENT_CLOSED)
    assert ex.cash(ALICE) == (usd(100), 0)
    ex.apply(UpdateEvent(event_id=ex.single_eid, status=EventStatus.ACTIVE, title="Rain today?"))
    (event,) = of_kind(ex.last, "event")
    assert (event["status"], event["title"]) == ("active", "Rain today?")
    assert ex.placed(ex.buy_yes(ALICE, ex.single, "0.5"))["status"] == "open"


def test_event_with_shares_outstanding_cannot_be_deleted(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=1))
    ex.apply(DeleteEvent(event_id=ex.single_eid))
    assert ex.rejection() == Reason.EVENT_NOT_DELETABLE


def test_event_that_traded_cannot_be_deleted_even_when_flat(ex):
    ex.buy_yes(ALICE, ex.single, "0.5", qty=1)
    ex.buy_no(BOB, ex.single, "0.5", qty=1)
    ex.sell_yes(ALICE, ex.single, "0.5", qty=1)
    ex.sell_no(BOB, ex.single, "0.5", qty=1)  # merge: nothing held any more
    assert ex.engine.audit().collateral == 0
    ex.apply(DeleteEvent(event_id=ex.single_eid))
    assert ex.rejection() == Reason.EVENT_NOT_DELETABLE


def test_untraded_event_is_deleted_and_its_orders_cancelled(ex):
    ex.buy_yes(ALICE, ex.single, "0.5")
    events = ex.apply(DeleteEvent(event_id=ex.single_eid))
    assert events[-1] == EventDeleted(ex.single_eid)
    assert ex.cash(ALICE) == (usd(100), 0)
    assert ex.single not in ex.engine.markets


def test_each_position_paid_is_reported_with_its_yes_and_no_shares(ex):
    a, b, _c = ex.mids
    ex.apply(SplitEvent(user_id=ALICE, event_id=ex.eid, quantity=3))  # YES a, b, c
    ex.apply(Split(user_id=BOB, market_id=b, quantity=2))  # YES b + NO b
    events = ex.apply(ResolveEvent(event_id=ex.eid, winning_outcome_id=a))
    paid = {(p["user_id"], p["market_id"]): (p["yes"], p["no"], p["amount"])
            for p in of_kind(events, "payout")}
    assert paid == {(ALICE, a): (3, 0, usd(3)), (ALICE, b): (3, 0, 0),
                    (ALICE, _c): (3, 0, 0), (BOB, b): (2, 2, usd(2))}
    ledger = {(e["user_id"], e["market_id"]): e["amount"] for e in of_kind(events, "ledger")}
    assert ledger == {key: amount for key, (_y, _n, amount) in paid.items()}


def test_a_void_payout_says_which_side_the_shares_were_on(ex):
    ex.apply(Split(user_id=ALICE, market_id=ex.single, quantity=3))
    ex.sell_no(ALICE, ex.single, "0.50", qty=1)
    ex.buy_no(BOB, ex.single, "0.50", qty=1)
    events = ex.apply(ResolveEvent(event_id=ex.single_eid, void=True))
    paid = {p["user_id"]: (p["yes"], p["no"], p["amount"]) for p in of_kind(events, "payout")}
    assert paid == {ALICE: (3, 2, usd("2.5")), BOB: (0, 1, usd("0.5"))}


def test_results_and_marks_follow_the_resolution(ex):
    a, b, _c = ex.mids
    assert queries.outcome_result(ex.engine.events[ex.eid].status, a, None, False) is None
    ex.apply(Split(user_id=ALICE, market_id=b, quantity=2))
    events = ex.apply(ResolveEvent(event_id=ex.eid, winning_outcome_id=a))
    e = ex.engine.events[ex.eid]
    assert [queries.outcome_result(e.status, m, e.winning_outcome_id, e.void)
            for m in ex.mids] == ["won", "lost", "lost"]
    assert [queries.market_result(e.status, m, e.winning_outcome_id, e.void)
            for m in ex.mids] == ["yes", "no", "no"]
    for p in of_kind(events, "payout"):  # with a winner, shares pay the mark exactly
        mark = queries.yes_payout(p["market_id"], 3, a, False)
        assert p["amount"] == p["yes"] * mark + p["no"] * (usd(1) - mark)
    ex.apply(ResolveEvent(event_id=ex.single_eid, void=True))
    single = ex.engine.events[ex.single_eid]
    assert queries.market_result(single.status, ex.single, None, single.void) == "void"
    assert queries.yes_payout(ex.single, 1, None, True) == usd("0.5")
    assert queries.yes_payout(a, 3, None, True) == 3333
