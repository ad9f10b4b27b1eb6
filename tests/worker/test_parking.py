"""A poison event costs nobody else anything: it is parked, the rest is stored, and a
replay after a fix stores it too (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from pmarket.db import Market
from pmarket.db.models import ParkedEvent
from pmarket.db.reconcile import reconcile
from pmarket.engine import Deposit
from pmarket.runtime.eventlog import Delivery, decode_events
from pmarket.worker import Projector, batch, parked
from pmarket.worker.salvage import superseded
from tests.dbfixtures import Database

from .helpers import dump, project, rows
from .poison import POISON_ORDER, Plan, clamped_from_ms, merge, poison_plan
from .scenario import STREAM, Recorder, full_session, random_session


@pytest.fixture(scope="module")
def plan() -> Plan:
    return poison_plan()


def _reference(database: Database, deliveries, monkeypatch) -> dict:
    """The database ``deliveries`` make once the fix is in (then emptied again)."""
    with monkeypatch.context() as m:
        m.setattr(batch, "from_ms", clamped_from_ms)
        project(database, deliveries, batch=1)
    out = dump(database)
    database.clear()
    assert out["parked_events"] == []
    return out


@pytest.fixture
def reference(plan: Plan, database: Database, monkeypatch) -> dict:
    """What the whole plan makes with the fix: what replays must reach."""
    return _reference(database, plan.all, monkeypatch)


def _without_order(table: list[tuple], order_id: int) -> list[tuple]:
    return [r for r in table if r[0] != order_id]


def _parked(database: Database) -> list:
    return rows(database, sa.select(ParkedEvent).order_by(ParkedEvent.id))


def test_one_poison_event_is_parked_and_every_other_event_of_the_delivery_stored(
        plan, database, monkeypatch):
    want = _reference(database, [*plan.before, plan.poisoned], monkeypatch)
    projector = Projector(STREAM)
    project(database, plan.before)
    with pytest.raises(ValueError, match="outside 1970"):  # as a whole it cannot be stored
        projector.apply(database.engine, [plan.poisoned])
    with database.engine.begin() as conn:
        result = projector.salvage(conn, plan.poisoned)
    assert (result.applied, result.parked, result.last_seq) == (1, 1, plan.poisoned.last_seq)
    got = dump(database)
    for table in want:
        if table == "orders":
            assert got[table] == _without_order(want[table], POISON_ORDER)
        elif table != "parked_events":
            assert got[table] == want[table], table
    (row,) = _parked(database)
    assert (row.stream, row.consumer, row.first_seq, row.last_seq, row.idx, row.kind,
            row.attempts) == (STREAM, "worker", plan.poisoned.first_seq,
                              plan.poisoned.last_seq, plan.poison_index, "order", 1)
    assert "is outside 1970-01-01" in row.error
    (event,) = decode_events(f"[{row.event}]")
    assert event == plan.poisoned.events[plan.poison_index]
    # The fill of the parked order, both users' cash and shares: all stored.
    trades = {t[0] for t in got["trades"]}
    fills = {e[1] for e in plan.poisoned.events if e[0] == "fill"}
    assert fills and fills <= trades
    assert POISON_ORDER not in {o[0] for o in got["orders"]}


def test_the_rest_flows_and_a_replay_after_the_fix_reaches_the_reference(
        plan, database, reference, monkeypatch):
    projector = Projector(STREAM)
    project(database, plan.before)
    for delivery in [plan.poisoned, *plan.after]:  # what the worker does on a failure
        with database.engine.begin() as conn:
            projector.salvage(conn, delivery)
    got = dump(database)
    assert projector.position(database.engine) == plan.last_seq
    # Order 1's final state in the poisoned delivery and its cancellation, much later.
    assert [(r.first_seq, r.kind) for r in _parked(database)] == [
        (plan.poisoned.first_seq, "order"),
        (next(d.first_seq for d in plan.after if any(
            e[0] == "order" and e[1] == POISON_ORDER for e in d.events)), "order")]
    for table in reference:
        if table == "orders":
            assert _without_order(got[table], POISON_ORDER) == _without_order(
                reference[table], POISON_ORDER)
        elif table != "parked_events":
            assert got[table] == reference[table], table
    assert parked.summary(database.engine).parked == 2
    with database.engine.connect() as conn:  # reconcile names them
        assert [d.what for d in reconcile(plan.engine, conn) if d.what == "parked"] == [
            "parked", "parked"]

    outcomes = parked.replay(database.engine)  # no fix yet: they fail again
    assert [(o.status, o.attempts) for o in outcomes] == [("failed", 2), ("failed", 2)]
    assert [r.attempts for r in _parked(database)] == [2, 2]

    monkeypatch.setattr(batch, "from_ms", clamped_from_ms)  # the fix is deployed
    outcomes = parked.replay(database.engine)
    assert [o.status for o in outcomes] == ["stored", "stored"]
    assert dump(database) == reference
    assert parked.summary(database.engine).clean


def test_a_replay_in_any_order_never_overwrites_newer_state(plan, database, reference,
                                                            monkeypatch):
    projector = Projector(STREAM)
    project(database, plan.before)
    for delivery in [plan.poisoned, *plan.after]:
        with database.engine.begin() as conn:
            projector.salvage(conn, delivery)
    first, last = [r.id for r in _parked(database)]
    monkeypatch.setattr(batch, "from_ms", clamped_from_ms)
    assert [o.status for o in parked.replay(database.engine, [last])] == ["stored"]
    assert [o.status for o in parked.replay(database.engine, [first])] == ["stored"]
    assert dump(database) == reference  # the older state did not win (seq guard)


@pytest.mark.parametrize("session", ["full", "random"])
def test_storing_a_delivery_in_ranges_writes_what_storing_it_whole_does(database, session):
    r = full_session() if session == "full" else random_session(150, seed=11)
    size = 9 if session == "full" else 40
    deliveries = [merge(r.deliveries[i:i + size])
                  for i in range(0, len(r.deliveries), size)]
    project(database, deliveries)
    whole = dump(database)
    database.clear()
    projector = Projector(STREAM)
    for delivery in deliveries:
        with database.engine.begin() as conn:
            assert projector.salvage(conn, delivery).parked == 0
    assert dump(database) == whole


def test_a_bigint_overflow_and_an_unknown_kind_are_parked_with_their_reasons(
        plan, database):
    projector = Projector(STREAM)
    project(database, plan.before)
    events = list(plan.poisoned.events)
    events[1] = ("balance", 77, 2**63, 0)
    events.insert(3, ("teleport", 1))
    crafted = Delivery(plan.poisoned.first_seq, plan.poisoned.last_seq, tuple(events),
                       plan.poisoned.ts_ms)
    with database.engine.begin() as conn:
        assert projector.salvage(conn, crafted).parked == 3
    kinds = {r.kind: r.error for r in _parked(database)}
    assert "does not fit a BIGINT" in kinds["balance"]
    assert "unknown event kind 'teleport'" in kinds["teleport"]
    assert "is outside 1970-01-01" in kinds["order"]
    assert json.loads(_parked(database)[0].event) == ["balance", 77, 2**63, 0]


def test_a_superseded_state_event_that_fails_is_not_parked():
    events = [("order", 5, "x"), ("balance", 1, 0, 0), ("order", 5, "y"),
              ("position", 1, 2, 0, 0, 0, 0), ("position", 1, 3, 0, 0, 0, 0),
              ("position", 1, 2, 1, 0, 0, 0), ("fill", 9), ("event", 4)]
    assert superseded(events) == {0, 3}


def test_trades_of_a_parked_event_wait_behind_it_and_follow_it_on_replay(
        database, monkeypatch):
    r = Recorder()
    (market,) = r.event("Poisoned title")
    for user in (1, 2):
        r.do(Deposit(user_id=user, amount=10**12))
    r.order(1, market, "buy", "yes", 4000, 5)
    r.order(2, market, "buy", "no", 6000, 5)  # a mint trade in the parked event's market
    delivery = merge(r.deliveries)
    events = tuple((*e[:3], "\x00" + e[3], *e[4:]) if e[0] == "event" else e
                   for e in delivery.events)
    crafted = Delivery(delivery.first_seq, delivery.last_seq, events, delivery.ts_ms)
    real_event = batch.Batch._event

    def no_nul(self, e, d, index):  # PostgreSQL refuses NUL in text; do so on SQLite too
        if "\x00" in e[3]:
            raise ValueError("NUL in the title")
        real_event(self, e, d, index)

    monkeypatch.setattr(batch.Batch, "_event", no_nul)
    with database.engine.begin() as conn:
        assert Projector(STREAM).salvage(conn, crafted).parked == 2
    kinds = [(p.kind, p.error) for p in _parked(database)]
    assert kinds[0][0] == "event" and kinds[1][0] == "fill"
    assert "unknown to the database" in kinds[1][1]

    def fixed(self, e, d, index):  # the fix: control characters are dropped from texts
        real_event(self, (*e[:3], e[3].replace("\x00", ""), *e[4:]), d, index)

    monkeypatch.setattr(batch.Batch, "_event", fixed)
    assert [o.status for o in parked.replay(database.engine)] == ["stored", "stored"]
    assert rows(database, sa.select(Market.volume, Market.last_price)) == [(5, 4000)]
    with database.engine.connect() as conn:
        assert reconcile(r.engine, conn) == []
