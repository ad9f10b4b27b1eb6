"""Projecting a real engine session makes the database say what the engine says."""

from __future__ import annotations

import sqlalchemy as sa

from pmarket.db import Balance, Event, LedgerEntry, Market, Order, Payout, Position, Trade, from_ms
from pmarket.db.reconcile import reconcile
from pmarket.engine.events import as_dict
from pmarket.runtime.eventlog import Delivery
from tests.dbfixtures import Database

from .helpers import dump, project, rows
from .scenario import full_session, random_session


def _fills(recorder):
    return [as_dict(e) for d in recorder.deliveries for e in d.events if e[0] == "fill"]


def test_projecting_a_session_makes_the_database_match_the_engine(database: Database):
    r = full_session()
    result = project(database, r.deliveries)
    assert result.applied == len(r.deliveries) and result.last_seq == r.seq
    with database.engine.connect() as conn:
        assert reconcile(r.engine, conn) == []
    eng = r.engine
    balances = {u: (a, res) for u, a, res in rows(database, sa.select(
        Balance.user_id, Balance.available, Balance.reserved))}
    assert balances == {u: eng.balance(u) for u in eng.accounts}
    held = {(u, m): (y, n, yr, nr) for u, m, y, n, yr, nr in rows(database, sa.select(
        Position.user_id, Position.market_id, Position.yes, Position.no,
        Position.yes_reserved, Position.no_reserved)) if y or n}
    assert held == {(p[1], p[2]): p[3:] for u in eng.accounts for p in eng.positions(u)
                    if p[3] or p[4]}
    trades = rows(database, sa.select(Trade.id, Trade.price, Trade.quantity, Trade.kind,
                                      Trade.fee).order_by(Trade.id))
    assert [tuple(t) for t in trades] == [
        (f["trade_id"], f["price"], f["quantity"], f["kind"], f["fee"]) for f in _fills(r)]
    assert any(f["fee"] for f in _fills(r))
    rates = dict(rows(database, sa.select(Event.id, Event.fee_rate)
                      .where(Event.status != "deleted")))
    assert rates == {e.id: e.fee_rate for e in eng.events.values()}


def test_fills_and_events_from_before_fees_project_with_none(database: Database):
    """At an upgrade the stream (or the parked events) may still hold fills and events
    the engine wrote before fees existed: one field shorter, they charged nothing."""
    r = full_session()
    old = [Delivery(d.first_seq, d.last_seq, [_before_fees(e) for e in d.events], d.ts_ms)
           for d in r.deliveries]
    project(database, old)
    assert set(rows(database, sa.select(Trade.fee).distinct())) == {(0,)}
    assert set(rows(database, sa.select(Event.fee_rate).distinct())) == {(0,)}


def _before_fees(e: tuple) -> tuple:
    return e[:12] if e[0] == "fill" else e[:13] if e[0] == "event" else e


def test_every_order_row_holds_the_last_state_the_engine_reported(database: Database):
    r = full_session()
    project(database, r.deliveries)
    last = {}
    for d in r.deliveries:
        for e in d.events:
            if e[0] == "order":
                last[e[1]] = as_dict(e)
    stored = {o.id: o for o in rows(database, sa.select(Order))}
    assert stored.keys() == last.keys()
    for oid, want in last.items():
        got = stored[oid]
        assert (got.price, got.quantity, got.filled, got.status, got.reason, got.side,
                got.outcome, got.tif, got.client_order_id) == (
            want["price"], want["quantity"], want["filled"], want["status"],
            want["reason"], want["side"], want["outcome"], want["tif"],
            want["client_order_id"])
    statuses = {o.status for o in stored.values()}
    assert {"filled", "cancelled", "expired"} <= statuses


def test_a_session_covers_all_four_trade_kinds_and_every_ledger_kind(database: Database):
    r = full_session()
    project(database, r.deliveries)
    kinds = {k for (k,) in rows(database, sa.select(Trade.kind).distinct())}
    assert kinds == {"transfer_yes", "mint", "merge", "transfer_no"}
    ledger = {k for (k,) in rows(database, sa.select(LedgerEntry.kind).distinct())}
    assert ledger == {"deposit", "withdrawal", "split", "merge", "split_event",
                      "merge_event", "convert", "payout"}


def test_ledger_holds_each_cash_movement_once_with_its_source(database: Database):
    r = full_session()
    project(database, r.deliveries)
    project(database, r.deliveries)  # everything again: duplicates
    expected = [as_dict(e) for d in r.deliveries for e in d.events if e[0] == "ledger"]
    stored = rows(database, sa.select(LedgerEntry).order_by(LedgerEntry.seq, LedgerEntry.idx))
    assert [(x.user_id, x.kind, x.amount, x.quantity) for x in stored] == [
        (e["user_id"], e["kind"], e["amount"], e["quantity"]) for e in expected]
    assert {x.stream for x in stored} == {"pmarket:{main}:events"}


def test_payouts_hold_each_paid_position_once_with_its_shares(database: Database):
    r = full_session()
    project(database, r.deliveries, batch=3)
    project(database, r.deliveries)  # everything again: duplicates
    expected = [as_dict(e) for d in r.deliveries for e in d.events if e[0] == "payout"]
    assert {e["event_id"] for e in expected} == {1, 2}  # a winner, and a void
    assert any(e["yes"] and e["no"] for e in expected)
    stored = rows(database, sa.select(Payout).order_by(Payout.id))
    assert [(x.user_id, x.event_id, x.market_id, x.yes, x.no, x.amount, x.paid_at)
            for x in stored] == [
        (e["user_id"], e["event_id"], e["market_id"], e["yes"], e["no"], e["amount"],
         from_ms(e["ts_ms"])) for e in expected]
    paid = {(e["user_id"], e["market_id"]): e["amount"] for e in expected}
    assert paid == {(x.user_id, x.market_id): x.amount for x in rows(database, sa.select(
        LedgerEntry).where(LedgerEntry.kind == "payout"))}


def test_market_figures_follow_the_engine(database: Database):
    r = random_session(400, seed=3)
    project(database, r.deliveries, batch=50)
    for mid, status, volume, last, oi in rows(database, sa.select(
            Market.id, Market.status, Market.volume, Market.last_price,
            Market.open_interest)):
        view = r.engine.market_view(mid)
        assert (status, volume, last, oi) == (view.status, view.volume, view.last_price,
                                             view.open_interest)


def test_event_rows_follow_updates_resolution_and_deletion(database: Database):
    r = full_session()
    project(database, r.deliveries)
    events = {e.id: e for e in rows(database, sa.select(Event))}
    rain, final, gone = events[1], events[2], events[3]
    assert (rain.status, rain.winning_outcome_id, rain.void) == ("resolved", 1, False)
    assert rain.category == "weather" and rain.slug == "rain"
    assert rain.payouts_total == sum(
        e[3] for d in r.deliveries for e in d.events if e[0] == "ledger"
        and e[2] == "payout" and e[4] == 1)
    assert (final.title, final.status, final.void, final.tick) == (
        "Who wins the final?", "resolved", True, 10)
    assert final.resolved_at is not None and final.resolved_at.tzinfo is not None
    assert gone.status == "deleted"
    markets = rows(database, sa.select(Market.name, Market.status, Market.position)
                   .where(Market.event_id == 2).order_by(Market.position))
    assert [tuple(m) for m in markets] == [("Alpha", "resolved", 0), ("Beta", "resolved", 1),
                                           ("Gamma", "resolved", 2)]
    assert rows(database, sa.select(Market.status).where(Market.event_id == 3)) == [
        ("deleted",)]
    assert rows(database, sa.select(Position).where(Position.market_id == 5)) == []


def test_order_times_are_the_engine_clock_in_utc(database: Database):
    r = full_session()
    project(database, r.deliveries)
    first = as_dict(next(e for d in r.deliveries for e in d.events if e[0] == "order"))
    (created,) = rows(database, sa.select(Order.created_at).where(
        Order.id == first["order_id"]))[0]
    assert created.tzinfo is not None
    assert int(created.timestamp() * 1000) == first["created_ms"]


def test_a_large_random_flow_projects_to_a_matching_database(database: Database):
    r = random_session(2_000, seed=11)
    project(database, r.deliveries, batch=300)
    with database.engine.connect() as conn:
        assert reconcile(r.engine, conn) == []
    assert len(dump(database)["trades"]) == len(_fills(r)) > 500
