"""One writer per database in the embedded mode, and a port bound before anything.

Real processes: a second ``pmarket serve`` or ``pmarket tui --embedded`` on the database
of a running one is refused at once with one line naming it; the lock goes with its
holder (kill -9) and is never inherited by a child; a busy port is one line and nothing
was migrated. The PostgreSQL advisory lock is keyed per schema and taken again if its
session is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from pmarket.db import upgrade
from pmarket.server import Settings
from pmarket.server.dblock import (
    AdvisoryLock,
    DatabaseLocked,
    FileLock,
    ForeignDatabase,
    LockGuard,
    acquire_database_lock,
    check_projection,
)
from pmarket.server.runtime import Runtime
from tests.server.harness import free_port, wait_healthy
from tests.services import postgres_url_or_skip

from .processes import PMARKET, fresh_schema

SECRET = "lock-test-secret-" + "Qw8zP3kLm" * 5


def _env(tmp_path) -> dict:
    env = {**os.environ, "PMARKET_JWT_SECRET": SECRET, "PMARKET_BCRYPT_ROUNDS": "4",
           "PMARKET_LOG_REQUESTS": "0"}
    for name in ("PMARKET_REDIS_URL", "PMARKET_DATABASE_URL", "PMARKET_SNAPSHOT_DIR"):
        env.pop(name, None)
    return env


def _refused(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run([PMARKET, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return done


def test_a_second_embedded_exchange_on_a_database_is_refused_with_one_line(tmp_path):
    env = _env(tmp_path)
    db = tmp_path / "exchange.db"
    port = free_port()
    first = subprocess.Popen([PMARKET, "serve", "--port", str(port), "--database-url",
                              f"sqlite:///{db}", "--log-level", "warning"], env=env,
                             cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(port, first)
        for args in (["serve", "--port", str(free_port()), "--database-url",
                      f"sqlite:///{db}"],
                     ["tui", "--embedded", "--database", str(db)]):
            done = _refused(args, env, tmp_path)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 3, (args, done.stderr)
            assert len(lines) == 1 and done.stdout == "", (args, done.stdout, done.stderr)
            assert re.fullmatch(
                rf"error: database {re.escape(str(db))} is in use by pid {first.pid} on "
                r"\S+ since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(pmarket serve .*\); stop "
                r"that process first \(or start on another database\)", lines[0]), lines
            assert "Traceback" not in done.stderr
        # The OS releases the lock with its holder, kill -9 included (the worker child
        # holds no copy): a restart is not blocked.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        first = subprocess.Popen([PMARKET, "serve", "--port", str(port), "--database-url",
                                  f"sqlite:///{db}", "--log-level", "warning"], env=env,
                                 cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        wait_healthy(port, first)
    finally:
        with_group_killed(first)


def test_a_database_older_than_the_engines_snapshots_is_refused(tmp_path):
    """An exchange runs and stops cleanly (its snapshot covers everything, its journal
    is trimmed); then its database is replaced by an empty one (an older backup
    restored). The engine recovers at its snapshot, and nothing holds the commands the
    database lacks: ``pmarket serve`` exits 3 with one line, instead of serving a
    database that never gets them (the market-data feed resynchronised from it every few
    seconds, and balances read from it were wrong for good)."""
    env = _env(tmp_path)
    db = tmp_path / "exchange.db"
    port = free_port()
    args = ["serve", "--port", str(port), "--database-url", f"sqlite:///{db}",
            "--log-level", "warning"]
    first = subprocess.Popen([PMARKET, *args], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_healthy(port, first)
        import httpx
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as h:
            r = h.post("/auth/signup", json={"email": "a@example.com", "name": "a",
                                              "password": "tangerine orbit lantern"})
            assert r.status_code == 201, r.text
            r = h.post("/onramp", json={"amount": "5"},
                       headers={"Authorization": f"Bearer {r.json()['token']}"})
            assert r.status_code == 200, r.text
        first.send_signal(signal.SIGINT)  # a clean stop: snapshot, journal trimmed
        assert first.wait(30) == 0
    finally:
        with_group_killed(first)
    db.unlink()  # the database restored from before any of it
    done = _refused(args, env, tmp_path)
    assert done.returncode == 3, done.stderr
    (line,) = [x for x in done.stderr.strip().splitlines() if x.startswith("error:")]
    assert "database holds commands up to 0" in line and "no longer holds commands 1.." \
        in line and "restore the matching database or journal" in line, line
    assert "Traceback" not in done.stderr


def with_group_killed(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_a_busy_port_is_one_line_and_nothing_is_migrated(tmp_path):
    env = _env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "fresh" / "exchange.db"
        done = _refused(["serve", "--port", str(port), "--database-url", f"sqlite:///{db}"],
                        env, tmp_path)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (is another pmarket serve "
        "running?)"], done.stderr
    assert not db.exists()  # bound before migrations and recovery
    # The lock it took was released: the database can be locked at once.
    acquire_database_lock(f"sqlite:///{db}").release()


def test_the_file_lock_names_its_holder_dies_with_it_and_is_not_inherited(tmp_path):
    db = tmp_path / "x.db"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import multiprocessing, sys, time
        from pmarket.server.dblock import acquire_database_lock
        if __name__ == "__main__":
            lock = acquire_database_lock("sqlite:///{db}")
            child = multiprocessing.get_context("spawn").Process(target=time.sleep,
                                                                args=(120,))
            child.start()
            print(child.pid, flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(holder.stdout.readline())
        with pytest.raises(DatabaseLocked) as refused:
            acquire_database_lock(f"sqlite:///{db}")
        assert refused.value.holder.pid == holder.pid
        assert f"pid {holder.pid} on {socket.gethostname()} since " in str(refused.value)
        holder.send_signal(signal.SIGKILL)  # the holder alone: its child lives on
        holder.wait(10)
        os.kill(child, 0)  # still running
        lock = acquire_database_lock(f"sqlite:///{db}")  # the child holds no copy
        assert isinstance(lock, FileLock) and lock.held()
        lock.release()
    finally:
        with_group_killed(holder)


def test_one_process_cannot_run_two_exchanges_on_one_file_and_guard_retakes(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    lock = acquire_database_lock(url)
    with pytest.raises(DatabaseLocked):
        acquire_database_lock(url)
    # A lock file deleted by hand no longer excludes anyone: the guard takes it again.
    lock.path.unlink()
    assert not lock.held()
    lost: list[str] = []
    guard = LockGuard(lock, url, lost.append, interval_s=0.01)

    async def one_check() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(guard.run(stop))
        for _ in range(500):
            if guard.lock is not lock:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(one_check())
    assert guard.lock is not lock and guard.lock.held() and lost == []
    with pytest.raises(DatabaseLocked):
        acquire_database_lock(url)
    guard.lock.release()
    acquire_database_lock(url).release()


async def test_the_runtime_takes_the_lock_before_migrating(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    held = acquire_database_lock(url)
    try:
        runtime = Runtime(Settings(database_url=url, jwt_secret=SECRET,
                                   snapshot_dir=str(tmp_path / "snap")))
        with pytest.raises(DatabaseLocked):
            await runtime.start()
        assert not (tmp_path / "x.db").exists() and not (tmp_path / "snap").exists()
    finally:
        held.release()


def test_postgres_advisory_lock_per_schema_named_holder_and_lost_session():
    base = postgres_url_or_skip()
    with fresh_schema(base) as one, fresh_schema(base) as two:
        lock = acquire_database_lock(one)
        other = acquire_database_lock(two)  # another schema: another exchange
        try:
            assert isinstance(lock, AdvisoryLock) and lock.held()
            with pytest.raises(DatabaseLocked) as refused:
                acquire_database_lock(one)
            assert refused.value.holder.pid == os.getpid()
            assert f"pid {os.getpid()} on {socket.gethostname()} since " in str(refused.value)

            # The session is cut (a database restart, a killed backend): the lock is gone
            # with it, and the guard takes it again.
            backend = lock.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            lock.conn.commit()
            admin = sa.create_engine(base)
            with admin.begin() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            admin.dispose()
            assert not lock.held()
            lost: list[str] = []
            guard = LockGuard(lock, one, lost.append, interval_s=0.01)

            async def until_retaken() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(guard.run(stop))
                for _ in range(1000):
                    if guard.lock is not lock:
                        break
                    await asyncio.sleep(0.01)
                stop.set()
                await task

            asyncio.run(until_retaken())
            assert guard.lock.held() and lost == []
            lock = guard.lock
        finally:
            lock.release()
            other.release()


def test_postgres_guard_stops_when_another_process_took_the_lock():
    base = postgres_url_or_skip()
    with fresh_schema(base) as url:
        lock = acquire_database_lock(url)
        lock.release()  # as if its session had been cut ...
        thief = acquire_database_lock(url)  # ... and another exchange started meanwhile
        lost: list[str] = []
        guard = LockGuard(lock, url, lost.append, interval_s=0.01)

        async def watch() -> None:
            await asyncio.wait_for(guard.run(asyncio.Event()), 30)

        try:
            asyncio.run(watch())
        finally:
            thief.release()
        assert len(lost) == 1 and f"pid {os.getpid()}" in lost[0]


def test_an_in_memory_database_needs_no_lock():
    lock = acquire_database_lock("sqlite://")
    assert lock.held()
    lock.release()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_database(request, tmp_path):
    """A database URL that several lock holders can point at."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'x.db'}"
        return
    with fresh_schema(postgres_url_or_skip()) as url:
        yield url


def test_workers_and_an_embedded_exchange_exclude_each_other(shared_database):
    """A deployment's shards' workers share a database; a second worker of a shard and
    an embedded exchange beside a worker are refused, naming what holds it; an embedded
    exchange refuses every worker; a refused attempt keeps nothing."""
    url = shared_database
    main = acquire_database_lock(url, worker_shard="main")
    other = acquire_database_lock(url, worker_shard="b")  # another shard's worker
    try:
        assert main.held() and other.held() and main.worker_shard == "main"
        with pytest.raises(DatabaseLocked, match="the main shard's worker") as refused:
            acquire_database_lock(url, worker_shard="main")
        assert f"pid {os.getpid()}" in str(refused.value)
        with pytest.raises(DatabaseLocked,
                           match="an embedded exchange, or a deployment's worker"):
            acquire_database_lock(url)
    finally:
        main.release()
        other.release()
    embedded = acquire_database_lock(url)  # the refused attempts left nothing held
    try:
        with pytest.raises(DatabaseLocked, match=f"in use by pid {os.getpid()} "):
            acquire_database_lock(url, worker_shard="main")
    finally:
        embedded.release()
    again = acquire_database_lock(url, worker_shard="main")
    assert again.held()
    again.release()


def _until_locks_held(url: str, worker: subprocess.Popen) -> None:
    """Wait until ``worker`` holds both its advisory locks (looked up, not contended:
    trying to take them would refuse the worker starting meanwhile)."""
    db = sa.create_engine(url)
    deadline = time.monotonic() + 60
    try:
        while True:
            with db.connect() as conn:
                held = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND a.application_name LIKE :name"),
                    {"name": f"pmarket-lock pid={worker.pid} %"}).scalar()
            if held == 2:
                return
            assert worker.poll() is None, worker.stderr.read().decode()
            assert time.monotonic() < deadline, "the worker never took its locks"
            time.sleep(0.1)
    finally:
        db.dispose()


@pytest.mark.redis
@pytest.mark.postgres
def test_a_second_worker_or_an_embedded_exchange_beside_a_worker_is_refused(tmp_path):
    """Real processes: while ``pmarket worker`` runs, a second one on its shard and an
    embedded ``pmarket serve`` on its database exit with status 3 naming it, before
    writing anything; after a kill -9 of the first, a new worker starts."""
    from tests.services import redis_url_or_skip

    redis_url, base = redis_url_or_skip(), postgres_url_or_skip()
    env = _env(tmp_path)
    with fresh_schema(base) as url:
        args = ["worker", "--redis-url", redis_url, "--prefix",
                f"pmtest:{os.urandom(6).hex()}", "--database-url", url]
        first = subprocess.Popen([PMARKET, *args], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
        try:
            _until_locks_held(url, first)
            second = _refused(args, env, tmp_path)
            assert second.returncode == 3, second.stderr
            assert f"in use by pid {first.pid} " in second.stderr
            assert "the main shard's worker" in second.stderr
            embedded = _refused(["serve", "--port", str(free_port()), "--database-url", url],
                                env, tmp_path)
            assert embedded.returncode == 3, embedded.stderr
            assert f"in use by pid {first.pid} " in embedded.stderr
            first.send_signal(signal.SIGKILL)
            first.wait()
            after = subprocess.Popen([PMARKET, *args], env=env, cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
            try:
                _until_locks_held(url, after)
            finally:
                after.terminate()
                after.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()


def _positions(url: str, *rows: tuple[str, int]) -> None:
    """A migrated database whose worker positions are ``rows`` (stream, last seq)."""
    upgrade(url)
    db = sa.create_engine(url)
    with db.begin() as conn:
        for stream, seq in rows:
            conn.execute(sa.text("INSERT INTO consumer_positions (consumer, stream, "
                                 "last_seq, updated_at) VALUES ('worker', :s, :q, "
                                 "CURRENT_TIMESTAMP)"), {"s": stream, "q": seq})
    db.dispose()


OWN = "pmarket:{main}:events"


def test_check_projection_refuses_another_stream_or_a_database_ahead_of_the_log(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    _positions(url, (OWN, 7), ("other:{main}:events", 0))
    db = sa.create_engine(url)
    try:
        check_projection(db, OWN, 7, "snaps", None)  # all projected, the log trimmed
        check_projection(db, OWN, 9, "snaps", 8)  # the log holds what is to project
        check_projection(db, OWN, 9, "snaps", 3)
        with pytest.raises(ForeignDatabase, match=r"commands up to 7 of .* ends at 6 \(snaps"):
            check_projection(db, OWN, 6, "snaps", None)
        for start, missing in ((9, "8..8"), (None, "8..9")):  # 8 is in no log
            with pytest.raises(ForeignDatabase, match=rf"up to 7 of .* engine is at 9 and "
                               rf"its log .* no longer holds commands {missing}: .*backup"):
                check_projection(db, OWN, 9, "snaps", start)
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE consumer_positions SET last_seq = 3 "
                                 "WHERE stream = :s"), {"s": "other:{main}:events"})
        with pytest.raises(ForeignDatabase, match=re.escape(
                "another exchange's event stream 'other:{main}:events' (up to command 3")):
            check_projection(db, OWN, 7, "snaps", None)
    finally:
        db.dispose()


@pytest.mark.parametrize("rows", [[("deploy:{main}:events", 40)], [(OWN, 40)]],
                         ids=["a deployment's database", "its journal lost"])
def test_an_embedded_exchange_refuses_a_database_its_engine_did_not_write(tmp_path, rows):
    """A deployment's database (its worker stopped, so no lock excludes the start), or
    one whose projection is ahead of the engine's log: ``pmarket serve`` exits 3 with one
    line, and nothing is projected into it."""
    url = f"sqlite:///{tmp_path / 'exchange.db'}"
    _positions(url, *rows)
    done = _refused(["serve", "--port", str(free_port()), "--database-url", url],
                    _env(tmp_path), tmp_path)
    assert done.returncode == 3, done.stderr
    (line,) = [x for x in done.stderr.strip().splitlines() if x.startswith("error:")] or [
        done.stderr]
    assert "starting would reuse" in line or "belongs to a deployment" in line, line
    assert "Traceback" not in done.stderr
    db = sa.create_engine(url)
    with db.connect() as conn:
        assert sorted(conn.execute(sa.text(
            "SELECT stream, last_seq FROM consumer_positions")).all()) == sorted(rows)
        assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 0
    db.dispose()
