"""Every expected failure of a ``pmarket`` command, through the real command.

One or two lines on stderr (what is wrong, what to do), a non-zero exit status and no
traceback — unless ``--debug`` asks for it. The services are pointed at addresses where
nothing answers, or at a PostgreSQL database that does not exist, so each run is short.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.server.harness import free_port, wait_healthy
from tests.services import postgres_url_or_skip

PMARKET = str(Path(sys.executable).parent / "pmarket")
SECRET = "cli-test-secret-" + "Qw8zP3kLm" * 5


def _env() -> dict:
    env = {**os.environ, "PMARKET_JWT_SECRET": SECRET}
    for name in ("PMARKET_REDIS_URL", "PMARKET_DATABASE_URL", "PMARKET_SNAPSHOT_DIR"):
        env.pop(name, None)
    return env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PMARKET, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_said(done: subprocess.CompletedProcess, code: int, *words: str) -> list[str]:
    """The failure is one or two lines containing ``words``, with exit status ``code``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert 1 <= len(lines) <= 2, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done.stdout
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    return lines


def missing_postgres_database() -> str:
    """The URL of a database that does not exist, on the test PostgreSQL server."""
    url = sa.make_url(postgres_url_or_skip())
    return url.set(database="pmarket_no_such_database").render_as_string(hide_password=False)


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["db", "upgrade"], ["worker"], ["serve", "--port", "0"]])
def test_a_postgresql_database_that_does_not_exist(command, tmp_path):
    done = run(*command, "--database-url", missing_postgres_database(), cwd=tmp_path)
    assert_said(done, 1, "database 'pmarket_no_such_database' does not exist",
                "createdb pmarket_no_such_database")


@pytest.mark.parametrize(("command", "url", "words"), [
    (["serve", "--port", "0"], "not a url", ["malformed database URL", "postgresql+psycopg"]),
    (["db", "current"], "nosuchdb://host/db", ["unsupported database URL", "sqlite:///"]),
])
def test_a_malformed_database_url(command, url, words, tmp_path):
    assert_said(run(*command, "--database-url", url, cwd=tmp_path), 2, *words)


@pytest.mark.parametrize("command", [["engine"], ["bench", "http"]])
def test_redis_unreachable_at_start(command, tmp_path):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    database = [] if command == ["engine"] else ["--database-url",
                                                 f"sqlite:///{tmp_path / 'x.db'}"]
    started = time.monotonic()
    done = run(*command, "--redis-url", url, *database, cwd=tmp_path)
    assert_said(done, 1, "Redis is unreachable", "Connection refused", "--redis-url")
    assert time.monotonic() - started < 30, "it retried instead of saying so"


def test_a_deployment_server_warns_and_starts_degraded_while_redis_is_unreachable(tmp_path):
    """Servers and Redis may start in any order: serve warns in one line and keeps
    running (degraded until Redis answers, which the server tests check)."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    server = subprocess.Popen(
        [PMARKET, "serve", "--port", "0", "--redis-url", url,
         "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
        cwd=tmp_path, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
        assert first.startswith("warning: Redis is unreachable"), first
        assert "serving degraded until it answers" in first
        time.sleep(1)
        assert server.poll() is None, server.stderr.read()
    finally:
        server.kill()
        server.wait(10)


def test_a_malformed_redis_url(tmp_path):
    assert_said(run("engine", "--redis-url", "localhost:6379", cwd=tmp_path), 2,
                "malformed Redis URL", "redis://")


def test_a_wrong_call(tmp_path):
    assert_said(run("db", "current", "--no-such-option", cwd=tmp_path), 2, "No such option",
                "see 'pmarket db current --help'")


def test_debug_shows_the_traceback(tmp_path):
    done = run("--debug", "db", "current", "--database-url", "not a url", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "ArgumentError" in done.stderr


def test_ctrl_c_is_one_line_and_status_130(tmp_path):
    """Ctrl+C while a long command runs (the engine benchmark). Its compiled loops react
    only when they return to Python, which on a loaded 2-core machine can take tens of
    seconds, hence the generous wait.

    The child gets Ctrl-C's default disposition back: a suite started in the background
    of a non-interactive shell inherits SIGINT *ignored*, and Python then never installs
    its handler — the benchmark ran to its end with status 0, and an earlier variant
    (interrupting a simulation) sat in its HTTP client until the client timed out."""
    proc = subprocess.Popen([PMARKET, "bench", "engine"], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted"], err


def test_ctrl_c_stops_a_server_cleanly_with_status_0(tmp_path):
    """A server is meant to be stopped with Ctrl+C: it shuts down, says nothing of an
    interruption, and exits 0 (uvicorn raises the signal again once it has stopped)."""
    port = free_port()
    env = {**_env(), "PMARKET_BCRYPT_ROUNDS": "4"}
    proc = subprocess.Popen([PMARKET, "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        wait_healthy(port, proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "interrupted" not in err, err


def test_version_names_the_engine_that_runs(tmp_path):
    from pmarket.runtime import compiled

    done = run("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = ("engine compiled with mypyc" if compiled.mode == "compiled"
                else "engine pure Python")
    assert done.stdout.startswith("pmarket ") and expected in done.stdout, done.stdout
    forced = subprocess.run([PMARKET, "--version"], cwd=tmp_path, capture_output=True,
                            text=True, env={**_env(), "PMARKET_PURE_PYTHON": "1"})
    assert "engine pure Python (pure Python forced by PMARKET_PURE_PYTHON)" in forced.stdout


def test_a_file_that_is_not_a_snapshot(tmp_path):
    (tmp_path / "notes.json").write_text("not json")
    done = run("db", "reconcile", "--snapshot", "notes.json", "--database-url",
               f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert_said(done, 2, "notes.json is not an engine snapshot")
