"""Order types, time in force, post-only, modify, cancel, batch, idempotency, STP, expiry."""

import orjson
import pytest

from pmarket.engine import CancelAll, CancelOrder, Engine, Expire, ModifyOrder, PlaceBatch, Split
from pmarket.engine.events import Clock, Reason

from .exchange import ALICE, BOB, CAROL, Exchange, of_kind, usd


@pytest.fixture
def ex():
    ex = Exchange()
    ex.mid = ex.market()
    for user in (ALICE, BOB, CAROL):
        ex.fund(user)
        ex.apply(Split(user_id=user, market_id=ex.mid, quantity=100))
    return ex


def oid(ex, events=None):
    return ex.placed(events)["order_id"]


# --- limit and market ------------------------------------------------------------------


def test_limit_order_rests_and_reserves_price_times_quantity(ex):
    before = ex.cash(ALICE)[0]
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.42", qty=10))
    assert order["status"] == "open"
    assert ex.cash(ALICE) == (before - usd("4.20"), usd("4.20"))
    assert ex.levels(ex.mid) == ([(usd("0.42"), 10)], [])


def test_sell_order_reserves_shares(ex):
    ex.sell_yes(ALICE, ex.mid, "0.60", qty=30)
    assert ex.holding(ALICE, ex.mid) == (100, 100, 30, 0)
    ex.sell_no(ALICE, ex.mid, "0.50", qty=20)
    assert ex.holding(ALICE, ex.mid) == (100, 100, 30, 20)


def test_market_order_fills_what_it_can_and_never_rests(ex):
    ex.sell_yes(BOB, ex.mid, "0.55", qty=5)
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, None, qty=8, type="market"))
    assert (order["status"], order["filled"], order["reason"]) == ("cancelled", 5,
                                                                     Reason.NOT_FILLED)
    assert ex.levels(ex.mid) == ([], [])
    assert ex.cash(ALICE)[1] == 0


def test_market_order_respects_its_protective_price(ex):
    ex.sell_yes(BOB, ex.mid, "0.55", qty=5)
    ex.sell_yes(CAROL, ex.mid, "0.70", qty=5)
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.60", qty=10, type="market"))
    assert order["filled"] == 5
    assert ex.levels(ex.mid) == ([], [(usd("0.70"), 5)])


def test_market_buy_without_protection_reserves_at_the_worst_price(ex):
    ex.fund(9, "0.98")
    ex.sell_yes(BOB, ex.mid, "0.10", qty=1)
    ex.buy_yes(9, ex.mid, None, qty=1, type="market")
    assert ex.rejection() == Reason.INSUFFICIENT_CASH  # 0.99 to reserve > 0.98
    ex.fund(9, "0.02")
    ex.buy_yes(9, ex.mid, None, qty=1, type="market")
    assert ex.fills()[0]["price"] == usd("0.10")
    assert ex.cash(9) == (usd("0.90"), 0)


def test_market_order_must_not_be_gtd(ex):
    ex.buy_yes(ALICE, ex.mid, None, type="market", tif="gtd", expires_at_ms=10)
    assert ex.rejection() == Reason.INVALID_ORDER


# --- time in force ---------------------------------------------------------------------


def test_ioc_fills_what_crosses_and_cancels_the_rest(ex):
    ex.sell_yes(BOB, ex.mid, "0.50", qty=4)
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.50", qty=10, tif="ioc"))
    assert (order["status"], order["filled"]) == ("cancelled", 4)
    assert ex.cash(ALICE)[1] == 0 and ex.levels(ex.mid)[0] == []


def test_fok_that_cannot_fill_completely_changes_nothing(ex):
    ex.sell_yes(BOB, ex.mid, "0.50", qty=4)
    before = (ex.cash(ALICE), ex.levels(ex.mid))
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.50", qty=5, tif="fok"))
    assert (order["status"], order["filled"]) == ("cancelled", 0)
    assert not ex.fills()
    assert (ex.cash(ALICE), ex.levels(ex.mid)) == before


def test_fok_that_can_fill_fills_across_levels(ex):
    ex.sell_yes(BOB, ex.mid, "0.50", qty=4)
    ex.sell_yes(CAROL, ex.mid, "0.51", qty=4)
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.51", qty=8, tif="fok"))
    assert order["status"] == "filled"


def test_fok_does_not_count_own_resting_orders_as_liquidity(ex):
    ex.sell_yes(ALICE, ex.mid, "0.50", qty=10)
    ex.sell_yes(BOB, ex.mid, "0.50", qty=2)
    assert ex.placed(ex.buy_yes(ALICE, ex.mid, "0.50", qty=5, tif="fok"))["status"] == "cancelled"


def test_gtd_order_expires_when_a_later_command_reaches_its_time(ex):
    first = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.40", tif="gtd", expires_at_ms=1_000))
    ex.now = 999
    ex.apply(Expire())
    assert ex.engine.order(first) is not None
    ex.now = 1_000
    events = ex.apply(Expire())
    expired = of_kind(events, "order")[0]
    assert (expired["order_id"], expired["status"], expired["reason"]) == (first, "expired",
                                                                          Reason.EXPIRED)
    assert ex.cash(ALICE)[1] == 0 and ex.levels(ex.mid) == ([], [])


def test_gtd_expiry_happens_before_the_command_that_carries_the_time(ex):
    ex.buy_yes(ALICE, ex.mid, "0.60", tif="gtd", expires_at_ms=500)
    ex.now = 600
    ex.sell_yes(BOB, ex.mid, "0.60")
    assert not ex.fills()
    assert ex.placed()["status"] in ("expired", "open")
    assert ex.levels(ex.mid) == ([], [(usd("0.60"), 10)])


def test_gtd_needs_a_future_expiry_and_only_gtd_takes_one(ex):
    ex.now = 100
    ex.buy_yes(ALICE, ex.mid, "0.40", tif="gtd", expires_at_ms=100)
    assert ex.rejection() == Reason.INVALID_EXPIRY
    ex.buy_yes(ALICE, ex.mid, "0.40", tif="gtd")
    assert ex.rejection() == Reason.INVALID_EXPIRY
    ex.buy_yes(ALICE, ex.mid, "0.40", expires_at_ms=500)
    assert ex.rejection() == Reason.INVALID_EXPIRY


# --- post only ---------------------------------------------------------------------------


def test_post_only_that_would_cross_is_rejected_and_changes_nothing(ex):
    ex.sell_yes(BOB, ex.mid, "0.50")
    before = ex.cash(ALICE)
    ex.buy_yes(ALICE, ex.mid, "0.50", post_only=True)
    assert ex.rejection() == Reason.POST_ONLY_WOULD_CROSS
    assert ex.cash(ALICE) == before


def test_post_only_that_does_not_cross_rests(ex):
    ex.sell_yes(BOB, ex.mid, "0.50")
    assert ex.placed(ex.buy_yes(ALICE, ex.mid, "0.49", post_only=True))["status"] == "open"


def test_post_only_is_not_allowed_with_ioc(ex):
    ex.buy_yes(ALICE, ex.mid, "0.49", post_only=True, tif="ioc")
    assert ex.rejection() == Reason.INVALID_ORDER


# --- modify -----------------------------------------------------------------------------


def test_modify_quantity_down_keeps_time_priority(ex):
    first = oid(ex, ex.sell_yes(BOB, ex.mid, "0.50", qty=10))
    ex.sell_yes(CAROL, ex.mid, "0.50", qty=10)
    ex.apply(ModifyOrder(user_id=BOB, order_id=first, quantity=6))
    assert ex.placed()["quantity"] == 6
    assert ex.holding(BOB, ex.mid)[2] == 6
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=6)
    assert ex.fills()[0]["maker_order_id"] == first


def test_modify_quantity_up_loses_time_priority(ex):
    first = oid(ex, ex.sell_yes(BOB, ex.mid, "0.50", qty=10))
    second = oid(ex, ex.sell_yes(CAROL, ex.mid, "0.50", qty=10))
    ex.apply(ModifyOrder(user_id=BOB, order_id=first, quantity=12))
    assert ex.holding(BOB, ex.mid)[2] == 12
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=5)
    assert ex.fills()[0]["maker_order_id"] == second


def test_modify_price_loses_priority_and_can_trade_at_once(ex):
    bid = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.40", qty=10))
    ex.sell_yes(BOB, ex.mid, "0.45", qty=4)
    ex.apply(ModifyOrder(user_id=ALICE, order_id=bid, price=usd("0.45")))
    (fill,) = ex.fills()
    assert (fill["taker_order_id"], fill["price"], fill["quantity"]) == (bid, usd("0.45"), 4)
    order = ex.placed()
    assert (order["order_id"], order["status"], order["filled"]) == (bid, "partially_filled", 4)
    assert ex.cash(ALICE)[1] == usd("0.45") * 6


def test_modify_quantity_is_the_new_total_and_must_exceed_what_filled(ex):
    ask = oid(ex, ex.sell_yes(BOB, ex.mid, "0.50", qty=10))
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=4)
    ex.apply(ModifyOrder(user_id=BOB, order_id=ask, quantity=4))
    assert ex.rejection() == Reason.INVALID_QUANTITY
    ex.apply(ModifyOrder(user_id=BOB, order_id=ask, quantity=5))
    order = ex.placed()
    assert (order["quantity"], order["filled"]) == (5, 4)
    assert ex.levels(ex.mid)[1] == [(usd("0.50"), 1)]


def test_modify_that_cannot_be_afforded_leaves_the_order_as_it_was(ex):
    ex.fund(9, "5")
    bid = oid(ex, ex.buy_yes(9, ex.mid, "0.40", qty=10))
    ex.apply(ModifyOrder(user_id=9, order_id=bid, price=usd("0.60")))
    assert ex.rejection() == Reason.INSUFFICIENT_CASH
    assert ex.engine.open_orders(9)[0].price == usd("0.40")
    assert ex.cash(9) == (usd(1), usd(4))


def test_modify_post_only_that_would_cross_is_rejected(ex):
    ex.sell_yes(BOB, ex.mid, "0.50")
    bid = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45", post_only=True))
    ex.apply(ModifyOrder(user_id=ALICE, order_id=bid, price=usd("0.50")))
    assert ex.rejection() == Reason.POST_ONLY_WOULD_CROSS


def test_modify_another_users_order_is_unknown(ex):
    bid = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45"))
    ex.apply(ModifyOrder(user_id=BOB, order_id=bid, quantity=5))
    assert ex.rejection() == Reason.UNKNOWN_ORDER


# --- cancel -----------------------------------------------------------------------------


def test_cancel_releases_the_whole_reservation(ex):
    before = ex.cash(ALICE)
    bid = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45"))
    ex.apply(CancelOrder(user_id=ALICE, order_id=bid))
    assert ex.placed()["status"] == "cancelled"
    assert ex.cash(ALICE) == before and ex.levels(ex.mid) == ([], [])


def test_cancel_of_another_users_order_looks_like_an_unknown_order(ex):
    bid = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45"))
    ex.apply(CancelOrder(user_id=BOB, order_id=bid))
    assert ex.rejection() == Reason.UNKNOWN_ORDER
    ex.apply(CancelOrder(user_id=BOB, order_id=99999))
    assert ex.rejection() == Reason.UNKNOWN_ORDER
    assert ex.engine.order(bid) is not None


def test_cancel_all_cancels_only_the_users_orders_optionally_per_market(ex):
    other = ex.market()
    ex.buy_yes(ALICE, ex.mid, "0.45")
    ex.sell_yes(ALICE, ex.mid, "0.55")
    keep = oid(ex, ex.buy_yes(ALICE, other, "0.45"))
    theirs = oid(ex, ex.buy_yes(BOB, ex.mid, "0.44"))
    ex.apply(CancelAll(user_id=ALICE, market_id=ex.mid))
    assert len(of_kind(ex.last, "order")) == 2
    assert [o.order_id for o in ex.engine.open_orders(ALICE)] == [keep]
    assert ex.engine.order(theirs) is not None
    ex.apply(CancelAll(user_id=ALICE))
    assert ex.engine.open_orders(ALICE) == []
    assert ex.holding(ALICE, ex.mid)[2] == 0


def test_cancelled_level_disappears_and_best_price_moves(ex):
    a = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45"))
    ex.buy_yes(BOB, ex.mid, "0.40")
    ex.apply(CancelOrder(user_id=ALICE, order_id=a))
    assert ex.engine.best_bid(ex.mid) == usd("0.40")
    assert {"type": "book", "market_id": ex.mid, "side": "bid", "price": usd("0.45"),
            "quantity": 0} in [__import__("pmarket").engine.as_dict(e) for e in ex.last
                               if e.kind == "book"]


def test_many_cancels_in_one_level_keep_queue_order(ex):
    ids = [oid(ex, ex.buy_yes(u, ex.mid, "0.45", qty=1)) for u in [ALICE, BOB] * 40]
    for k, i in enumerate(ids[:-2]):
        if k % 3:
            ex.apply(CancelOrder(user_id=ALICE if k % 2 == 0 else BOB, order_id=i))
    alive = [i for k, i in enumerate(ids) if not (k % 3) or k >= len(ids) - 2]
    ex.sell_yes(CAROL, ex.mid, "0.45", qty=len(alive))
    assert [f["maker_order_id"] for f in ex.fills()] == alive


# --- batch, idempotency, self-trade ------------------------------------------------------


def test_batch_places_each_order_on_its_own(ex):
    from pmarket.engine import Outcome, PlaceOrder, Side

    def po(price, qty):
        return PlaceOrder(user_id=ALICE, market_id=ex.mid, outcome=Outcome.YES, side=Side.BUY,
                          price=price, quantity=qty)

    events = ex.apply(PlaceBatch(user_id=ALICE, orders=(po(4000, 1), po(4001, 1), po(4100, 2))))
    markers = [i for i, e in enumerate(events) if e.kind == "batch_item"]
    assert len(markers) == 3
    assert events[markers[1] + 1].kind == "rejected"
    assert ex.levels(ex.mid)[0] == [(usd("0.41"), 2), (usd("0.40"), 1)]


def test_batch_refuses_orders_of_another_user(ex):
    from pmarket.engine import Outcome, PlaceOrder, Side

    other = PlaceOrder(user_id=BOB, market_id=ex.mid, outcome=Outcome.YES, side=Side.BUY,
                       price=4000, quantity=1)
    ex.apply(PlaceBatch(user_id=ALICE, orders=(other,)))
    assert ex.rejection() == Reason.INVALID_ORDER
    assert ex.engine.open_orders(BOB) == []


def test_repeated_client_order_id_never_creates_a_second_order(ex):
    first = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45", client_order_id="abc"))
    cash = ex.cash(ALICE)
    events = ex.buy_yes(ALICE, ex.mid, "0.45", client_order_id="abc")
    assert events[0].kind == "duplicate" and oid(ex, events) == first
    assert ex.cash(ALICE) == cash and len(ex.engine.open_orders(ALICE)) == 1
    # another user may use the same client id
    assert oid(ex, ex.buy_yes(BOB, ex.mid, "0.45", client_order_id="abc")) != first


def test_a_client_order_id_reused_with_other_parameters_is_refused(ex):
    first = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45", qty=2, client_order_id="abc"))
    cash = ex.cash(ALICE)
    for other in (dict(price="0.46", qty=2), dict(price="0.45", qty=3),
                  dict(price="0.45", qty=2, stp="cancel_taker")):
        ex.buy_yes(ALICE, ex.mid, other.pop("price"), client_order_id="abc", **other)
        assert ex.rejection() == Reason.CLIENT_ORDER_ID_REUSED
    ex.sell_no(ALICE, ex.mid, "0.55", qty=2, client_order_id="abc")  # the same book side
    assert ex.rejection() == Reason.CLIENT_ORDER_ID_REUSED
    assert ex.cash(ALICE) == cash and len(ex.engine.open_orders(ALICE)) == 1
    # a modified order still answers a resend of its original placement ...
    ex.apply(ModifyOrder(user_id=ALICE, order_id=first, price=4400))
    assert oid(ex, ex.buy_yes(ALICE, ex.mid, "0.45", qty=2, client_order_id="abc")) == first
    # ... and a snapshot keeps what the placement was
    restored = Exchange()
    restored.engine = Engine.restore(orjson.loads(orjson.dumps(ex.engine.snapshot())))
    restored.buy_yes(ALICE, ex.mid, "0.46", qty=2, client_order_id="abc")
    assert restored.rejection() == Reason.CLIENT_ORDER_ID_REUSED
    assert oid(restored, restored.buy_yes(ALICE, ex.mid, "0.45", qty=2,
                                          client_order_id="abc")) == first


def test_self_trade_prevention_cancels_the_resting_order_by_default(ex):
    own = oid(ex, ex.sell_yes(ALICE, ex.mid, "0.50", qty=5))
    other = oid(ex, ex.sell_yes(BOB, ex.mid, "0.50", qty=5))
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=5)
    assert [f["maker_order_id"] for f in ex.fills()] == [other]
    states = {o["order_id"]: o for o in of_kind(ex.last, "order")}
    assert (states[own]["status"], states[own]["reason"]) == ("cancelled", Reason.SELF_TRADE)
    assert ex.holding(ALICE, ex.mid)[2] == 0


def test_self_trade_prevention_cancel_taker_leaves_resting_order(ex):
    own = oid(ex, ex.sell_yes(ALICE, ex.mid, "0.50", qty=5))
    taker = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.50", qty=5, stp="cancel_taker"))
    assert (taker["status"], taker["reason"]) == ("cancelled", Reason.SELF_TRADE)
    assert ex.engine.order(own) is not None and ex.cash(ALICE)[1] == 0


def test_self_trade_prevention_cancel_both(ex):
    ex.sell_yes(ALICE, ex.mid, "0.50", qty=5)
    ex.buy_yes(ALICE, ex.mid, "0.50", qty=5, stp="cancel_both")
    assert {o["status"] for o in of_kind(ex.last, "order")} == {"cancelled"}
    assert ex.levels(ex.mid) == ([], [])


def test_self_trade_never_crosses_the_book(ex):
    ex.sell_yes(ALICE, ex.mid, "0.50", qty=5)
    ex.buy_yes(ALICE, ex.mid, "0.55", qty=5)
    bids, asks = ex.levels(ex.mid)
    assert bids == [(usd("0.55"), 5)] and asks == []


@pytest.mark.parametrize("stp", ["cancel_taker", "cancel_both"])
def test_fok_that_self_trade_prevention_would_stop_midway_fills_nothing(ex, stp):
    ex.sell_yes(BOB, ex.mid, "0.50", qty=3)
    own = oid(ex, ex.sell_yes(ALICE, ex.mid, "0.51", qty=5))
    ex.sell_yes(BOB, ex.mid, "0.52", qty=5)
    order = ex.placed(ex.buy_yes(ALICE, ex.mid, "0.52", qty=8, tif="fok", stp=stp))
    assert (order["status"], order["filled"]) == ("cancelled", 0)
    assert not ex.fills() and ex.engine.order(own) is not None


def test_expirations_due_at_a_commands_time_come_first_behind_a_clock_marker(ex):
    from pmarket.engine.events import command_events

    old = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.40", tif="gtd", expires_at_ms=5))
    ex.now = 10
    events = ex.buy_yes(BOB, ex.mid, "0.41")
    marker = events.index(Clock(10, 1))
    assert [e.order_id for e in events[:marker] if e.kind == "order"] == [old]
    own = command_events(events)
    assert own == events[marker + 1:]
    assert ex.placed(own)["status"] == "open" and ex.placed(own)["order_id"] != old
    assert command_events(ex.buy_yes(BOB, ex.mid, "0.42")) == ex.last


def test_open_orders_view_follows_fills_cancels_replacements_and_restores(ex):
    from pmarket.engine import Engine

    first = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.40"))
    second = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.41"))
    third = oid(ex, ex.buy_yes(ALICE, ex.mid, "0.42"))
    view = ex.engine.open_orders(ALICE)  # turns Alice's cached view on
    view.clear()  # the caller's copy: the cache is not the caller's to change
    assert [o.order_id for o in ex.engine.open_orders(ALICE)] == [first, second, third]

    ex.sell_yes(BOB, ex.mid, "0.42", qty=4)  # third partly filled: stays in place
    ex.apply(CancelOrder(user_id=ALICE, order_id=first))
    ex.apply(ModifyOrder(user_id=ALICE, order_id=second, price=usd("0.39")))  # to the back
    mine = ex.engine.open_orders(ALICE)
    assert mine == [o.snapshot() for o in ex.engine.accounts[ALICE].orders.values()]
    assert [(o.order_id, o.price, o.filled) for o in mine] == [(third, usd("0.42"), 4),
                                                 (second, usd("0.39"), 0)]
    assert ex.engine.open_orders(ALICE, market_id=ex.mid + 1) == []

    restored = Engine.restore(ex.engine.snapshot())  # caches are not state
    assert restored.open_orders(ALICE) == mine
    assert restored.digest() == ex.engine.digest()
