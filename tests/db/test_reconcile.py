"""Reconciliation finds nothing after a faithful projection and names every tampering."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pmarket.cli import load_commands
from pmarket.db import Balance, Event, Market, Order, Position, Trade
from pmarket.db.reconcile import reconcile
from tests.dbfixtures import Database
from tests.worker.helpers import project
from tests.worker.scenario import full_session, random_session


@pytest.fixture(scope="module")
def session():
    return random_session(300, seed=5)


def _differences(database: Database, source) -> list:
    with database.engine.connect() as conn:
        return reconcile(source, conn)


def _tamper(database: Database, statement) -> None:
    with database.engine.begin() as conn:
        conn.execute(statement)


def test_a_faithful_projection_reconciles_cleanly(database, session):
    project(database, session.deliveries, batch=64)
    assert _differences(database, session.engine) == []
    assert _differences(database, session.engine.snapshot()) == []


def test_a_changed_balance_is_reported(database, session):
    project(database, session.deliveries)
    _tamper(database, sa.update(Balance).where(Balance.user_id == 3)
            .values(available=Balance.available + 1))
    (diff,) = _differences(database, session.engine)
    assert (diff.what, diff.key) == ("balance", "user 3")
    assert diff.database[0] == diff.engine[0] + 1
    assert "balance user 3: engine" in str(diff)


def test_a_changed_holding_and_a_lost_order_are_reported(database, session):
    project(database, session.deliveries)
    held = session.engine.positions(2)[0]
    user, market = held.user_id, held.market_id
    _tamper(database, sa.update(Position).where(Position.user_id == user,
                                                Position.market_id == market)
            .values(yes=Position.yes + 5))
    open_id = next(iter(session.engine.orders))
    _tamper(database, sa.delete(Order).where(Order.id == open_id))
    found = {(d.what, d.key) for d in _differences(database, session.engine)}
    assert found == {("position", f"user {user} market {market}"),
                     ("open_order", f"order {open_id}")}


def test_a_changed_fee_and_fee_rate_are_reported(database, session):
    project(database, session.deliveries)
    charged = next(t for t in session.engine.events.values() if t.fees)
    market = charged.markets[0].id
    _tamper(database, sa.update(Trade).where(Trade.market_id == market, Trade.fee > 0)
            .values(fee=Trade.fee + 100))
    _tamper(database, sa.update(Event).where(Event.id == charged.id).values(fee_rate=1))
    found = {(d.what, d.key) for d in _differences(database, session.engine)}
    assert found == {("fees", f"event {charged.id}"), ("event", f"event {charged.id}")}


def test_a_missing_trade_and_a_wrong_volume_are_reported(database, session):
    project(database, session.deliveries)
    _tamper(database, sa.delete(Trade).where(Trade.id == 1))
    _tamper(database, sa.update(Market).where(Market.id == 1).values(volume=0))
    found = {d.what: d for d in _differences(database, session.engine)}
    assert set(found) == {"trades", "market"}
    assert found["trades"].engine == found["trades"].database + 1


def test_an_unprojected_tail_shows_as_differences(database):
    r = full_session()
    project(database, r.deliveries[:-3])
    assert _differences(database, r.engine) != []


def test_reconcile_command_compares_a_snapshot_file(database, session, tmp_path):
    project(database, session.deliveries)
    snapshot = tmp_path / "engine.json"
    snapshot.write_bytes(orjson.dumps(session.engine.snapshot()))
    args = ["db", "reconcile", "--snapshot", str(snapshot), "--database-url", database.url]
    result = CliRunner().invoke(load_commands(), args)
    assert result.exit_code == 0 and "matches" in result.output
    _tamper(database, sa.update(Balance).where(Balance.user_id == 1).values(reserved=1))
    result = CliRunner().invoke(load_commands(), args)
    assert result.exit_code == 1 and "balance user 1" in result.output
