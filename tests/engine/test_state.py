"""Snapshots, digests, determinism and the queries over state."""

import random

from pmarket.engine import Engine, Split
from pmarket.engine.events import LAYOUTS, from_wire, to_wire

from .exchange import ALICE, BOB, CAROL, Exchange, usd


def busy_exchange() -> Exchange:
    ex = Exchange()
    mid = ex.market()
    fine = ex.market(tick="0.001")
    for user in (ALICE, BOB, CAROL):
        ex.fund(user)
        ex.apply(Split(user_id=user, market_id=mid, quantity=50))
    rng = random.Random(4)
    for k in range(300):
        user = rng.choice((ALICE, BOB, CAROL))
        market, tick = rng.choice(((mid, 100), (fine, 10)))
        price = f"{rng.randint(30, 70) * tick / 10_000:.4f}"
        side = rng.choice(("buy", "sell")) if market == mid else "buy"
        outcome = rng.choice(("yes", "no"))
        kw = {"tif": "gtd", "expires_at_ms": k + 50} if k % 7 == 0 else {}
        ex.now = k
        ex.order(user, market, side, outcome, price, qty=rng.randint(1, 20), **kw)
    return ex


def test_every_event_matches_its_layout():
    ex = busy_exchange()
    kinds = {event.kind for event in ex.log}
    assert {"order", "fill", "balance", "position", "book", "ledger", "event"} <= kinds
    for event in ex.log:
        row = to_wire(event)
        assert len(row) == len(LAYOUTS[event.kind]) + 1, event
        # each field named by its layout is the attribute of that name
        assert [getattr(event, name) for name in LAYOUTS[event.kind]] == list(row[1:])
        assert from_wire(list(row)) == event


def test_restored_snapshot_has_the_same_digest_and_behaves_the_same():
    ex = busy_exchange()
    copy = Engine.restore(ex.engine.snapshot())
    assert copy.digest() == ex.engine.digest()
    follow = Exchange()
    follow.engine = copy
    for other in (ex, follow):
        other.now = 400
        other.buy_yes(ALICE, 1, "0.70", qty=40)
        other.sell_no(BOB, 1, "0.20", qty=5)
    assert copy.digest() == ex.engine.digest()
    assert follow.last == ex.last


def test_digest_changes_when_state_changes():
    ex = busy_exchange()
    before = ex.engine.digest()
    ex.fund(ALICE, "0.0001")
    assert ex.engine.digest() != before


def test_open_orders_and_positions_are_reported_in_owner_terms():
    ex = Exchange()
    mid = ex.market()
    ex.fund(ALICE)
    ex.buy_no(ALICE, mid, "0.30", qty=4)
    (order,) = ex.engine.open_orders(ALICE)
    assert (order.outcome, order.side, order.price, order.quantity) == ("no", "buy", usd("0.30"),
                                                                        4)
    assert ex.levels(mid) == ([], [(usd("0.70"), 4)])


def test_market_view_reports_prices_volume_and_open_interest():
    ex = Exchange()
    mid = ex.market()
    ex.fund(ALICE)
    ex.fund(BOB)
    ex.buy_yes(ALICE, mid, "0.60", qty=5)
    ex.buy_no(BOB, mid, "0.45", qty=3)
    ex.buy_no(BOB, mid, "0.30", qty=1)
    view = ex.engine.market_view(mid)
    assert (view.last_price, view.volume, view.open_interest) == (usd("0.60"), 3, 3)
    assert (view.best_bid, view.best_ask) == (usd("0.60"), usd("0.70"))


def test_audit_reports_a_broken_invariant():
    ex = busy_exchange()
    ex.engine.accounts[ALICE].available += 1
    audit = ex.engine.audit()
    assert not audit.ok and audit.difference == -1
    assert any("money invariant" in p for p in audit.problems)
