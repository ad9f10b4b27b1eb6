"""The in-process target speaks the API's language: tokens, decimal strings, 404s."""

from __future__ import annotations

import pytest

from pmarket.sim import TargetUnavailable, open_target
from pmarket.sim.clock import SimClock
from pmarket.sim.targets import InProcessTarget, OrderRequest


@pytest.fixture
def exchange():
    target = InProcessTarget()
    info = target.create_event("Will it rain?", [], "0.01")
    ann, bob = target.signup("ann"), target.signup("bob")
    target.deposit(ann, "100")
    target.deposit(bob, "100")
    return target, info.markets["Yes"], ann, bob


def test_prices_and_money_travel_as_decimal_strings(exchange):
    target, market, ann, bob = exchange
    placed = target.place(ann, OrderRequest(market, "yes", "buy", 10, "0.57"))
    assert placed.ok and placed.order.price == "0.57" and placed.order.status == "open"
    taken = target.place(bob, OrderRequest(market, "no", "buy", 4, "0.43"))
    [trade] = taken.trades
    assert (trade.price, trade.quantity, trade.kind) == ("0.57", 4, "mint")
    assert str(target.balance(ann).reserved) == "3.4200"  # the API's Balance, exact
    book = target.book(market, "no")
    assert book.asks == [("0.43", 6)] and book.last_price == "0.43"


def test_another_users_order_is_not_found(exchange):
    target, market, ann, bob = exchange
    order = target.place(ann, OrderRequest(market, "yes", "buy", 1, "0.50")).order
    assert target.order(bob, order.id) is None
    assert target.cancel(bob, order.id).error.code == "unknown_order"


def test_closed_orders_stay_visible_to_their_owner(exchange):
    target, market, ann, _bob = exchange
    order = target.place(ann, OrderRequest(market, "yes", "buy", 1, "0.50")).order
    target.cancel(ann, order.id)
    assert target.order(ann, order.id).status == "cancelled"


def test_gtd_orders_expire_when_the_clock_passes_their_time(exchange):
    target, market, ann, _bob = exchange
    clock = SimClock()
    target.advance_to(clock.now_ms)
    request = OrderRequest(market, "yes", "buy", 1, "0.50", time_in_force="gtd",
                           expires_at_ms=clock.now_ms + 1_000)
    order = target.place(ann, request).order
    clock.move_to(clock.now_ms + 1_000)
    assert target.advance_to(clock.now_ms).cancelled == [order.id]
    assert target.order(ann, order.id).status == "expired"
    with pytest.raises(ValueError):
        clock.move_to(clock.now_ms - 1)


def test_a_batch_reports_each_order_on_its_own(exchange):
    target, market, ann, _bob = exchange
    result = target.place_batch(ann, [OrderRequest(market, "yes", "buy", 1, "0.50"),
                                      OrderRequest(market, "yes", "sell", 1, "0.60")])
    assert [item.ok for item in result.items] == [True, False]
    assert result.items[1].error.code == "insufficient_shares"


def test_url_target_needs_admin_credentials_and_a_server():
    assert isinstance(open_target(None), InProcessTarget)
    with pytest.raises(TargetUnavailable, match=r"missing: --admin-password"):
        open_target("http://127.0.0.1:8000", "admin@example.com", None)
    with pytest.raises(TargetUnavailable, match=r"no pmarket server answers"):
        open_target("http://127.0.0.1:9", "admin@example.com", "pw")


def test_http_target_speaks_decimal_strings_self_trade_modes_and_convert(http_url):
    from pmarket.sim.http_target import HttpTarget

    from .server import ADMIN_EMAIL, ADMIN_PASSWORD

    with pytest.raises(TargetUnavailable, match="refused the admin sign-in"):
        open_target(http_url, ADMIN_EMAIL, "wrong password")
    target = open_target(http_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        assert isinstance(target, HttpTarget) and not target.simulated_clock
        info = target.create_event("Will it rain?", [], "0.01")
        market = info.markets["Yes"]
        ann, bob = target.signup("ann"), target.signup("ann")
        assert ann.id != bob.id  # the same scenario name signs up a fresh account
        target.deposit(ann, "100")
        target.deposit(bob, "100")
        placed = target.place(ann, OrderRequest(market, "yes", "buy", 10, "0.57"))
        assert placed.ok and placed.order.price == "0.57"
        [trade] = target.place(bob, OrderRequest(market, "no", "buy", 4, "0.43")).trades
        assert (trade.price, trade.quantity, trade.kind) == ("0.57", 4, "mint")
        assert str(target.balance(ann).reserved) == "3.4200"  # the API's Balance, exact
        assert target.order(bob, placed.order.id) is None
        assert target.cancel(bob, placed.order.id).error.code == "unknown_order"
        # convert goes over HTTP: refused like in-process on a single-outcome event
        refused = target.convert(ann, info.id, [market], 1)
        assert refused.error.code == "single_outcome_event"
        # ann's own resting bid at 0.57: cancel_taker keeps it, cancels the new order
        taker = target.place(ann, OrderRequest(market, "no", "buy", 1, "0.43",
                                               stp="cancel_taker"))
        assert taker.ok and taker.order.status == "cancelled" and taker.trades == []
        assert target.order(ann, placed.order.id).status == "partially_filled"
        assert target.audit().ok and target.state_digest() is None
    finally:
        target.close()


def test_http_target_users_can_trade_through_api_keys(http_url):
    from pathlib import Path

    from pmarket.sim import load_scenario, run_scenario

    from .server import ADMIN_EMAIL, ADMIN_PASSWORD

    target = open_target(http_url, ADMIN_EMAIL, ADMIN_PASSWORD, api_keys=True)
    try:
        ann = target.signup("ann")
        assert ann.token.startswith("pmk_")
        market = target.create_event("Keys?", [], "0.01").markets["Yes"]
        assert target.deposit(ann, "10").ok
        placed = target.place(ann, OrderRequest(market, "yes", "buy", 1, "0.20"))
        assert placed.ok and target.cancel(ann, placed.order.id).ok
    finally:
        target.close()
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "08-cancel.yaml")
    target = open_target(http_url, ADMIN_EMAIL, ADMIN_PASSWORD, api_keys=True)
    try:
        report = run_scenario(scenario, target)
    finally:
        target.close()
    assert report.passed, report.failures
