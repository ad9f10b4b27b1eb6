"""Migrations build the schema from nothing on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from pmarket.cli import load_commands
from pmarket.db import (
    Base,
    Payout,
    User,
    bounded,
    current_revision,
    from_ms,
    head_revision,
    make_engine,
    session_factory,
    to_ms,
    upgrade,
)
from pmarket.db.migrate import alembic_config, include_object
from pmarket.engine import ResolveEvent, Split
from tests.dbfixtures import Database
from tests.worker.helpers import project
from tests.worker.scenario import full_session

payouts_migration = importlib.import_module("pmarket.db.migrations.versions.0004_payouts")


def test_upgrade_from_empty_creates_every_table(empty_database_url):
    assert upgrade(empty_database_url) == head_revision()
    engine = make_engine(empty_database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(empty_database_url):
    upgrade(empty_database_url)
    assert upgrade(empty_database_url) == head_revision()


def test_migrated_schema_matches_the_models(database: Database):
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_object": include_object})
        assert compare_metadata(context, Base.metadata) == []


def test_title_search_index_exists_on_postgresql(database: Database):
    if database.backend != "postgres":
        pytest.skip("the full-text index is PostgreSQL's")
    indexes = {ix["name"] for ix in sa.inspect(database.engine).get_indexes("events")}
    assert "ix_events_title_fts" in indexes


def test_timestamps_come_back_timezone_aware_in_utc(database: Database):
    paris = timezone(timedelta(hours=1))
    written = datetime(2026, 3, 1, 13, 30, 15, 123000, tzinfo=paris)
    with session_factory(database.engine).begin() as session:
        session.add(User(email="a@example.com", name="A", password_hash="x",
                         created_at=written))
    with session_factory(database.engine)() as session:
        read = session.scalars(sa.select(User.created_at)).one()
    assert read.tzinfo is not None and read.utcoffset() == timedelta(0)
    assert read == written


def test_naive_datetimes_are_refused(database: Database):
    with (pytest.raises(sa.exc.StatementError, match="naive datetime"),
          session_factory(database.engine).begin() as session):
        session.add(User(email="b@example.com", name="B", password_hash="x",
                         created_at=datetime(2026, 1, 1)))


def test_user_emails_are_unique(database: Database):
    with (pytest.raises(sa.exc.IntegrityError),
          session_factory(database.engine).begin() as session):
        session.add(User(email="c@example.com", name="C", password_hash="x"))
        session.add(User(email="c@example.com", name="C2", password_hash="y"))


def test_bigint_columns_hold_the_extremes(database: Database):
    from pmarket.db import Balance

    top = 2**63 - 1
    with session_factory(database.engine).begin() as session:
        session.add(Balance(user_id=1, available=top, reserved=-(2**63), seq=1))
    with session_factory(database.engine)() as session:
        row = session.get(Balance, 1)
    assert (row.available, row.reserved) == (top, -(2**63))


def test_bounded_refuses_values_beyond_bigint_with_a_clear_message():
    assert bounded(2**63 - 1, "x") == 2**63 - 1
    with pytest.raises(ValueError, match=r"available cash = 9223372036854775808 does not fit"):
        bounded(2**63, "available cash")
    with pytest.raises(ValueError, match="BIGINT"):
        bounded(-(2**63) - 1, "amount")


def test_millisecond_times_convert_exactly_both_ways():
    ms = 1_767_225_600_123
    assert from_ms(ms) == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert to_ms(from_ms(ms)) == ms
    assert from_ms(None) is None


def test_pmarket_db_upgrade_command_migrates_a_new_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(load_commands(), ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output
    result = CliRunner().invoke(load_commands(), ["db", "current", "--database-url", url])
    assert f"database: {head_revision()}" in result.output


def test_pmarket_db_upgrade_reports_an_unreachable_database(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = CliRunner().invoke(load_commands(), ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert "failed" in result.output


def _payout_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(
            Payout.user_id, Payout.event_id, Payout.market_id, Payout.yes, Payout.no,
            Payout.amount, Payout.paid_at, Payout.stream, Payout.seq, Payout.idx)
            .order_by(Payout.stream, Payout.seq, Payout.idx))]


def test_upgrading_to_payouts_copies_the_resolutions_already_paid(database: Database,
                                                                   caplog):
    """Migration 0004 rebuilds from the ledger exactly the payouts the worker stores
    (a winner; a void of three outcomes), and says which it cannot (a void yes/no)."""
    r = full_session()
    (coin,) = r.event("Heads?")
    r.do(Split(user_id=1, market_id=coin, quantity=3))
    r.do(ResolveEvent(event_id=4, void=True))
    project(database, r.deliveries)
    stored = _payout_rows(database.engine)
    assert {row[1] for row in stored} == {1, 2, 4}
    with database.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    caplog.set_level(logging.WARNING, "pmarket.db.migrate")
    upgrade(database.url)
    assert _payout_rows(database.engine) == [row for row in stored if row[1] != 4]
    assert "1 payout(s) of void events with two outcomes" in caplog.text


@pytest.mark.parametrize(("amount", "quantity", "won", "void", "outcomes", "expected"), [
    (30_000, 5, True, False, 1, (3, 2)),     # a winner's YES paid, its NO not
    (20_000, 5, False, False, 3, (3, 2)),    # a loser's NO paid, its YES not
    (3_333, 1, False, True, 3, (1, 0)),      # void of 3: 1/3 per YES
    (10_000, 2, False, True, 3, (1, 1)),     # 1/3 + 2/3
    (16_666, 4, False, True, 3, (3, 1)),     # floor(10000 * (3 + 1 * 2) / 3)
    (23_333, 4, False, True, 3, (1, 3)),     # floor(10000 * (1 + 3 * 2) / 3)
    (15_000, 3, False, True, 2, None),       # void of 2: either side paid 0.50
    (15_000, 3, False, True, 1, None),       # a void yes/no question too
    (15_001, 3, True, False, 1, None),       # not a whole number of dollars: not a payout
])
def test_the_sides_of_a_ledger_payout_are_told_apart_exactly(amount, quantity, won, void,
                                                             outcomes, expected):
    assert payouts_migration.sides(amount, quantity, won, void, outcomes) == expected


def _indexes(engine, table: str) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes(table)}


def test_list_indexes_upgrade_and_downgrade(database: Database):
    """0006 adds the indexes the database lists walk (orders of a user newest first,
    a user's made trades with their taker, a user's payouts of one event by id) and a
    downgrade gives back exactly the indexes of 0005; upgrading again restores them."""
    new = {"orders": ("ix_orders_user_id_id", ["user_id", "id"]),
           "trades": ("ix_trades_maker_user_id_id_taker_user_id",
                      ["maker_user_id", "id", "taker_user_id"]),
           "payouts": ("ix_payouts_user_id_event_id_id", ["user_id", "event_id", "id"])}
    old = {"trades": ("ix_trades_maker_user_id_id", ["maker_user_id", "id"]),
           "payouts": ("ix_payouts_user_id_event_id", ["user_id", "event_id"])}
    before = {t: _indexes(database.engine, t) for t in new}
    for table, (name, columns) in new.items():
        assert before[table][name] == columns
    for table, (name, _) in old.items():
        assert name not in before[table]
    with database.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    for table, (name, _) in new.items():
        assert name not in _indexes(database.engine, table)
    for table, (name, columns) in old.items():
        assert _indexes(database.engine, table)[name] == columns
    assert upgrade(database.url) == head_revision()
    assert {t: _indexes(database.engine, t) for t in new} == before
