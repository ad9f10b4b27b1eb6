"""The worker parks a poison event among other users' commands, keeps flowing, survives
database failures and kill -9 without losing or parking anything more, and
``pmarket worker dlq`` shows, replays (after a fix) and clears what it parked."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from typer.testing import CliRunner

from pmarket.bus import MemoryBus
from pmarket.cli import load_commands
from pmarket.db.models import ParkedEvent
from pmarket.runtime.eventlog import encode_delivery
from pmarket.worker import Projector, batch, parked, writer
from pmarket.worker.loop import Worker
from pmarket.worker.salvage import transient
from tests.dbfixtures import Database
from tests.services import redis_url_or_skip

from .helpers import dump, project, rows
from .poison import POISON_ORDER, clamped_from_ms, poison_plan
from .scenario import STREAM

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan():
    return poison_plan()


def _reference(plan, database: Database, monkeypatch, stream: str = STREAM) -> dict:
    """The database the plan makes (on ``stream``) once the fix is in."""
    with monkeypatch.context() as m:
        m.setattr(batch, "from_ms", clamped_from_ms)
        project(database, plan.all, batch=1, projector=Projector(stream))
    out = _state(database)
    database.clear()
    return out


@pytest.fixture
def reference(plan, database: Database, monkeypatch) -> dict:
    return _reference(plan, database, monkeypatch)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request):
    prefix = f"pmtest:{uuid.uuid4().hex}"
    if request.param == "memory":
        bus = MemoryBus(prefix=prefix)
    else:
        from pmarket.bus.redis_streams import RedisStreamsBus

        url = redis_url_or_skip()
        bus = RedisStreamsBus.from_url(url, prefix=prefix)
    yield bus
    await bus.close()
    if request.param == "redis":
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


async def _work_through(plan, bus, database, **options) -> Worker:
    await bus.publish_events([encode_delivery(d) for d in plan.all])
    worker = Worker(bus, database.engine, batch_size=6, block_ms=10, backoff_s=0.001,
                    max_attempts=1, **options)
    for _ in range(200):
        try:
            await worker.step()
        except Exception as exc:  # what Worker.run does: retry a transient failure
            if not transient(exc):
                raise
            worker.stats.retries += 1
            continue
        if worker.projector.position(database.engine) >= plan.last_seq:
            return worker
    raise AssertionError("the worker never reached the end of the stream")


def _cli(*args: str, database: Database):
    return CliRunner().invoke(load_commands(), ["worker", "dlq", *args, "--database-url",
                                                database.url])


def _state(database: Database) -> dict:
    """``dump`` without the bus message ids (the reference had no bus)."""
    out = dump(database)
    out["consumer_positions"] = [r[:3] for r in out["consumer_positions"]]
    return out


def _without_poison(table: list[tuple]) -> list[tuple]:
    return [r for r in table if r[0] != POISON_ORDER]


def _assert_all_but_the_poison_stored(database: Database, reference: dict) -> None:
    got = _state(database)
    for table, want in reference.items():
        if table == "orders":
            assert got[table] == _without_poison(want)
        elif table != "parked_events":
            assert got[table] == want, table


async def test_the_worker_parks_the_poison_and_the_cli_replays_it_after_the_fix(
        plan, bus, database, monkeypatch):
    reference = _reference(plan, database, monkeypatch, bus.events_stream())
    worker = await _work_through(plan, bus, database)
    assert worker.stats.parked == 2  # the order's state in two deliveries
    _assert_all_but_the_poison_stored(database, reference)
    health = await parked.projection_health(database.engine, bus, bus.events_stream())
    assert health["status"] == "degraded" and health["parked"] == 2
    assert health["detail"].startswith("2 event(s) parked")
    infos = await bus.groups(bus.events_stream())
    assert sum(i.pending for i in infos) == 0  # everything acked: nothing was dropped

    listed = _cli("list", "--json", database=database)
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.stdout)["parked"]
    assert [(p["kind"], p["attempts"]) for p in shown] == [("order", 1), ("order", 1)]
    assert "is outside 1970-01-01" in shown[0]["error"]
    text = _cli("list", database=database)
    assert text.exit_code == 0 and "2 event(s) parked" in text.stdout

    again = _cli("replay", "--all", database=database)  # no fix yet
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines()[-1] == (
        "pmarket worker dlq: 2 failed again (still parked)")
    assert [r.attempts for r in rows(database, sa.select(ParkedEvent))] == [2, 2]
    assert "Traceback" not in again.output

    monkeypatch.setattr(batch, "from_ms", clamped_from_ms)  # the fix is deployed
    ids = [str(p["id"]) for p in shown]
    replayed = _cli("replay", *ids, database=database)
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.splitlines() == [f"{i}: stored" for i in ids]
    assert _state(database) == reference
    health = await parked.projection_health(database.engine, bus, bus.events_stream())
    assert health["status"] == "ok" and health["parked"] == 0


async def test_dlq_clear_needs_its_confirmation_and_logs_what_it_gave_up(
        plan, database, caplog):
    bus = MemoryBus(prefix="pmtest:clear")
    await _work_through(plan, bus, database)
    first, second = [r.id for r in rows(database, sa.select(ParkedEvent.id))]
    refused = _cli("clear", str(first), database=database)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    wrong = _cli("clear", "nonsense", "--yes", database=database)
    assert wrong.exit_code == 2 and len(wrong.stderr.strip().splitlines()) == 1
    with caplog.at_level(logging.WARNING, logger="pmarket.worker.parked"):
        cleared = _cli("clear", str(first), "--yes", database=database)
    assert cleared.exit_code == 0 and cleared.stdout.strip() == f"{first}: cleared"
    (logged,) = [r.getMessage() for r in caplog.records if "cleared parked" in r.getMessage()]
    record = json.loads(logged.split(": ", 1)[1])
    assert record["id"] == first and record["kind"] == "order"
    assert json.loads(record["event"])[1] == POISON_ORDER
    assert [r.id for r in rows(database, sa.select(ParkedEvent.id))] == [second]
    missing = _cli("clear", str(first), "--yes", database=database)
    assert missing.exit_code == 1 and f"no parked event {first}" in missing.stderr
    assert _cli("clear", "--all", "--yes", database=database).exit_code == 0
    assert parked.summary(database.engine).clean
    await bus.close()


async def test_dlq_commands_fail_in_one_line_without_a_database(tmp_path):
    runner = CliRunner()
    for args in (["list"], ["replay", "--all"], ["clear", "--all", "--yes"]):
        result = runner.invoke(load_commands(), ["worker", "dlq", *args, "--database-url",
                                                 f"sqlite:///{tmp_path / 'none.db'}"])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == (
            f"pmarket worker dlq: no database at {tmp_path / 'none.db'}")
    result = runner.invoke(load_commands(), [
        "worker", "dlq", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot read the database" in result.stderr


async def test_a_database_failure_while_salvaging_parks_nothing_more(
        plan, database, reference, monkeypatch):
    bus = MemoryBus(prefix="pmarket")
    real = writer.write_batch
    calls = {"n": 0}

    def failing(conn, rows_):
        calls["n"] += 1
        if 3 <= calls["n"] <= 6:  # the database goes away in the middle of a salvage
            if database.backend == "postgres":  # for real: our own connection is killed
                conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
            raise sa.exc.OperationalError("INSERT", {}, Exception("server closed"))
        return real(conn, rows_)

    monkeypatch.setattr(writer, "write_batch", failing)
    worker = await _work_through(plan, bus, database)
    assert worker.stats.retries >= 1
    assert [r.kind for r in rows(database, sa.select(ParkedEvent))] == ["order", "order"]
    _assert_all_but_the_poison_stored(database, reference)
    await bus.close()


_CHILD = """
import os, signal, sys
from pmarket.db import make_engine
from pmarket.worker import Projector, writer
from tests.worker.poison import poison_plan
from tests.worker.scenario import STREAM

plan, db, where = poison_plan(), make_engine(sys.argv[1]), sys.argv[2]
real_write, real_save, written = writer.write_batch, writer.save_position, [0]

def write(conn, rows):
    real_write(conn, rows)
    written[0] += 1
    if where == "after two writes" and written[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)

def save(*args):  # everything stored and the poison parked, the position next
    if where == "before the position":
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(*args)

writer.write_batch, writer.save_position = write, save
with db.begin() as conn:
    Projector(STREAM).salvage(conn, plan.poisoned)
print("survived")
"""


@pytest.mark.parametrize("where", ["after two writes", "before the position"])
def test_kill_9_in_the_middle_of_a_salvage_loses_nothing(plan, database, reference,
                                                         where):
    projector = Projector(STREAM)
    project(database, plan.before)
    before = dump(database)
    child = subprocess.run([sys.executable, "-c", _CHILD, database.url, where],
                           cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert dump(database) == before  # nothing half-stored, no position, nothing parked
    with database.engine.begin() as conn:
        assert projector.salvage(conn, plan.poisoned).parked == 1
    for delivery in plan.after:  # as the worker goes on (the cancellation is parked too)
        with database.engine.begin() as conn:
            projector.salvage(conn, delivery)
    got = _state(database)
    for table, want in reference.items():
        if table not in ("orders", "parked_events"):
            assert got[table] == want, table
