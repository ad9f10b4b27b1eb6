"""The exchange-wide money limit: deposits stop at ``MAX_TOTAL_MONEY``.

The exchange holds Σ deposits - Σ withdrawals (cash, available and reserved, plus
collateral); a deposit that would take that past the limit is rejected and changes
nothing, so no amount in the engine can outgrow a PostgreSQL BIGINT.
"""

import orjson
import pytest

from pmarket.engine import Deposit, Engine, Merge, Split, Withdraw
from pmarket.engine.events import Reason, of_kind
from pmarket.engine.units import MAX_AMOUNT, MAX_TOTAL_MONEY, SCALE, format_money

from .exchange import ALICE, BOB, CAROL, Exchange

BIGINT = 2**63 - 1
SPLIT_PAIRS = 1_000  # $1,000 of Bob's money sits in collateral, not in cash


def room(ex: Exchange) -> int:
    """What may still be deposited, counted from where the money is."""
    audit = ex.engine.audit()
    return MAX_TOTAL_MONEY - (audit.user_cash + audit.collateral + audit.fees + audit.rounding)


@pytest.fixture
def ex():
    """An exchange $1 short of the limit: Alice holds almost all of it, Bob some cash
    and $1,000 of collateral."""
    ex = Exchange()
    ex.mid = ex.market()
    ex.fund(BOB, 5_000)
    ex.apply(Split(user_id=BOB, market_id=ex.mid, quantity=SPLIT_PAIRS))
    while room(ex) > MAX_AMOUNT + SCALE:
        ex.apply(Deposit(user_id=ALICE, amount=MAX_AMOUNT))
    ex.apply(Deposit(user_id=ALICE, amount=room(ex) - SCALE))
    assert room(ex) == SCALE == MAX_TOTAL_MONEY - ex.engine.treasury.held
    return ex


def test_the_limit_keeps_every_amount_inside_a_bigint():
    assert MAX_AMOUNT < MAX_TOTAL_MONEY < BIGINT


def test_deposit_up_to_exactly_the_limit_is_accepted(ex):
    events = ex.apply(Deposit(user_id=CAROL, amount=SCALE))
    assert of_kind(events, "rejected") == []
    assert ex.cash(CAROL) == (SCALE, 0)
    assert ex.engine.treasury.held == MAX_TOTAL_MONEY
    audit = ex.engine.audit()
    assert audit.ok and audit.user_cash + audit.collateral == MAX_TOTAL_MONEY
    assert audit.collateral == SPLIT_PAIRS * SCALE
    assert max(a.available + a.reserved for a in ex.engine.accounts.values()) <= BIGINT


def test_deposit_one_unit_over_the_limit_is_rejected_and_changes_nothing(ex):
    before = ex.engine.digest()
    events = ex.apply(Deposit(user_id=CAROL, amount=SCALE + 1))
    assert [e.kind for e in events] == ["rejected"]
    (rejected,) = of_kind(events, "rejected")
    assert (rejected["user_id"], rejected["command"], rejected["reason"]) == \
        (CAROL, "Deposit", Reason.EXCHANGE_MONEY_LIMIT)
    assert format_money(SCALE + 1) in rejected["message"]  # dollars, not units
    assert format_money(MAX_TOTAL_MONEY) in rejected["message"]
    assert ex.engine.digest() == before
    assert CAROL not in ex.engine.accounts


def test_the_limit_counts_collateral_as_well_as_cash(ex):
    assert MAX_TOTAL_MONEY - ex.engine.audit().user_cash == (1 + SPLIT_PAIRS) * SCALE
    ex.apply(Deposit(user_id=CAROL, amount=2 * SCALE))
    assert ex.rejection() == Reason.EXCHANGE_MONEY_LIMIT
    # Merging moves Bob's $1,000 from collateral back to cash: the room stays $1.
    ex.apply(Merge(user_id=BOB, market_id=ex.mid, quantity=SPLIT_PAIRS))
    assert ex.engine.audit().collateral == 0 and room(ex) == SCALE
    ex.apply(Deposit(user_id=CAROL, amount=2 * SCALE))
    assert ex.rejection() == Reason.EXCHANGE_MONEY_LIMIT


def test_withdrawals_free_room_for_deposits_again(ex):
    ex.apply(Deposit(user_id=CAROL, amount=MAX_AMOUNT))
    assert ex.rejection() == Reason.EXCHANGE_MONEY_LIMIT
    ex.apply(Withdraw(user_id=ALICE, amount=MAX_AMOUNT))
    assert room(ex) == MAX_AMOUNT + SCALE
    ex.apply(Deposit(user_id=CAROL, amount=MAX_AMOUNT))
    assert ex.rejection() is None and ex.cash(CAROL) == (MAX_AMOUNT, 0)
    ex.apply(Deposit(user_id=CAROL, amount=SCALE + 1))
    assert ex.rejection() == Reason.EXCHANGE_MONEY_LIMIT


def test_the_money_held_survives_snapshot_and_restore(ex):
    data = orjson.loads(orjson.dumps(ex.engine.snapshot()))
    restored = Exchange()
    restored.engine = Engine.restore(data)
    assert restored.engine.treasury.held == ex.engine.treasury.held
    assert restored.engine.digest() == ex.engine.digest()
    restored.apply(Deposit(user_id=CAROL, amount=SCALE + 1))
    assert restored.rejection() == Reason.EXCHANGE_MONEY_LIMIT
    restored.apply(Deposit(user_id=CAROL, amount=SCALE))
    assert restored.rejection() is None
    assert restored.engine.treasury.held == MAX_TOTAL_MONEY


def test_audit_reports_money_held_over_the_limit():
    ex = Exchange()
    ex.fund(ALICE, 1)
    # Only a state that never came from commands can be over the limit.
    ex.engine.accounts[ALICE].available += MAX_TOTAL_MONEY
    ex.engine.treasury.deposits += MAX_TOTAL_MONEY
    audit = ex.engine.audit()
    assert not audit.ok and audit.difference == 0
    assert any("MAX_TOTAL_MONEY" in p for p in audit.problems)


# --- the per-account limit the server stamps on deposits ------------------------------


def test_a_deposit_past_the_accounts_limit_is_refused_and_changes_nothing():
    ex = Exchange()
    ex.fund(ALICE, 90)
    before = ex.engine.audit()
    events = ex.apply(Deposit(user_id=ALICE, amount=11 * SCALE, max_balance=100 * SCALE))
    [rejected] = of_kind(events, "rejected")
    assert rejected["reason"] == Reason.BALANCE_LIMIT
    assert "$100" in rejected["message"] or "100.0000" in rejected["message"]
    assert ex.engine.audit() == before


def test_reserved_cash_counts_and_exactly_the_limit_is_accepted():
    ex = Exchange()
    mid = ex.market()
    ex.fund(ALICE, 50)
    ex.buy_yes(ALICE, mid, "0.50", 40)           # $20 of the $50 reserved
    assert not of_kind(ex.apply(Deposit(user_id=ALICE, amount=50 * SCALE,
                                        max_balance=100 * SCALE)), "rejected")
    events = ex.apply(Deposit(user_id=ALICE, amount=1, max_balance=100 * SCALE))
    assert of_kind(events, "rejected")[0]["reason"] == Reason.BALANCE_LIMIT


def test_one_account_at_its_limit_leaves_room_for_everyone_else():
    ex = Exchange()
    limit = 1_000_000 * SCALE
    ex.apply(Deposit(user_id=ALICE, amount=limit, max_balance=limit))
    assert of_kind(ex.apply(Deposit(user_id=ALICE, amount=SCALE, max_balance=limit)),
                   "rejected")
    assert not of_kind(ex.apply(Deposit(user_id=BOB, amount=SCALE, max_balance=limit)),
                       "rejected")
