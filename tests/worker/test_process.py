"""The embedded worker's child process: whole messages, restarts, and death with its
parent.

The child is really killed (kill -9) and really orphaned; the supervised restart is
checked through ``/health`` and by reading back what was acknowledged while no child ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pmarket.bus import Append, MemoryBus
from pmarket.worker.process import (
    _HEADER,
    EXIT_ORPHANED,
    WorkerProcess,
    _frame,
    _read_frame,
)
from tests.server.harness import Client, start_server


async def test_a_message_split_anywhere_arrives_whole():
    rng = random.Random(7)
    message = ("ok", [("s", f"{i}-0", rng.randbytes(rng.randint(0, 4000)), 1, {})
                      for i in range(600)])
    data = _frame(message) + _frame(("ack_events", ("worker", ["1-0"])))
    reader = asyncio.StreamReader()

    async def trickle() -> None:
        at = 0
        while at < len(data):
            step = rng.choice((1, 3, 4096, 65536, 300_000))
            reader.feed_data(data[at:at + step])
            at += step
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(trickle())
    assert await _read_frame(reader) == message
    assert await _read_frame(reader) == ("ack_events", ("worker", ["1-0"]))
    with pytest.raises(asyncio.IncompleteReadError):  # EOF: the child is gone
        await _read_frame(reader)
    await feeding


async def test_a_frame_cut_short_is_the_end_not_a_message():
    reader = asyncio.StreamReader()
    whole = _frame({"big": b"x" * 100_000})
    reader.feed_data(whole[:_HEADER.size + 50_000])
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await _read_frame(reader)
    assert pickle.loads(whole[_HEADER.size:]) == {"big": b"x" * 100_000}


async def test_a_dead_childs_unacked_deliveries_go_first_to_the_next_child():
    bus = MemoryBus()
    stream = bus.events_stream("main")
    await bus.ensure_group(stream, "worker")
    await bus.write([Append(stream, [f"d{i}".encode() for i in range(5)])])
    supervisor = WorkerProcess(bus, "sqlite://", consumer="worker-x", shard="main")
    taken = await bus.read_events("worker", "worker-x", count=3, shard="main")
    assert [m.payload for m in taken] == [b"d0", b"d1", b"d2"]  # then the child died

    await supervisor._claim_orphaned_deliveries()
    status, first = await supervisor._serve("read_events", ("worker", "worker-x", 2, 0))
    _, second = await supervisor._serve("read_events", ("worker", "worker-x", 2, 0))
    _, third = await supervisor._serve("read_events", ("worker", "worker-x", 10, 0))
    assert status == "ok"
    assert [row[2] for row in first] == [b"d0", b"d1"]
    assert [row[2] for row in second] == [b"d2"]
    assert [row[2] for row in third] == [b"d3", b"d4"]
    await bus.close()


def _pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            return True
        if stat[stat.rindex(b")") + 2:].startswith(b"Z"):
            return True
        time.sleep(0.02)
    return False


ORPHAN_SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from pmarket.worker import process as subworker

    def child(parent, use_prctl):
        if use_prctl:  # the kernel alone
            assert subworker.set_parent_death_signal()
        else:  # the fallback alone: the parent-pid watch
            subworker.set_parent_death_signal = lambda *a: False
            subworker.die_with_parent(parent, interval_s=0.05)
        print("armed", flush=True)
        time.sleep(120)

    if __name__ == "__main__":
        p = multiprocessing.get_context("spawn").Process(
            target=child, args=(os.getpid(), sys.argv[1] == "prctl"))
        p.start()
        print(p.pid, flush=True)
        p.join(120)  # ends early if the child failed
""")


@pytest.mark.parametrize("how", ["prctl", "parent-pid watch"])
def test_an_orphaned_child_does_not_survive_its_parent(how, tmp_path):
    script = tmp_path / "orphan.py"  # a file: the spawned child imports its functions
    script.write_text(ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), how.split()[0]],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "armed"  # the child is up and watching
        assert not _pid_gone(child, 0.0)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _pid_gone(child, 5.0), f"the orphan ({how}) outlived its parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(10)


def test_the_child_exits_at_once_when_the_server_is_gone():
    script = textwrap.dedent("""
        import asyncio, socket
        from pmarket.worker.process import PipeBus
        here, there = socket.socketpair()
        here.close()  # the server died
        bus = PipeBus(there, "s", asyncio.Event())
        bus._call("read_events", "worker", "c", 10, 100)
        raise SystemExit("still running")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == EXIT_ORPHANED, done.stderr


async def test_a_killed_worker_process_is_restarted_and_catches_up(tmp_path, caplog):
    srv = await start_server("embedded", tmp_path)
    c = Client(srv)
    try:
        supervisor = srv.runtime.worker
        assert isinstance(supervisor, WorkerProcess)
        market = await c.market()
        maker, _ = await c.user("maker")
        before = (await c.order(maker, market, "yes", "buy", "0.40", 3))["order"]["id"]
        supervisor.backoff_s = 1.0  # long enough to see it down
        first_pid = supervisor.process.pid
        with caplog.at_level(logging.ERROR, logger="pmarket.server.worker"):
            os.kill(first_pid, signal.SIGKILL)
            # Acknowledged while no child runs: it waits in the journal.
            during = [(await c.order(maker, market, "no", "buy", "0.30", 2))["order"]["id"]
                      for _ in range(5)]
            # down at once; counted as a restart once the supervisor has reaped it
            health = await _health_until(c, lambda w: w["status"] == "down" and
                                         w["restarts"] == 1)
            assert health["last_exit_code"] == -signal.SIGKILL
            assert health["pid"] is None and "died (exit code -9)" in health["detail"]
            health = await _health_until(c, lambda w: w["status"] == "ok")
        assert health["restarts"] == 1 and health["pid"] not in (None, first_pid)
        assert any("died with exit code -9" in r.getMessage() for r in caplog.records)
        for order_id in (before, *during):
            r = await c.http.get(f"/orders/{order_id}", headers=c.auth(maker))
            assert r.status_code == 200, (order_id, r.text)
        audit = await c.http.get("/admin/audit", headers=c.auth(await c.admin()))
        assert audit.json()["ok"] is True
    finally:
        await c.aclose()
        await srv.stop()
    assert _pid_gone(supervisor.process.pid, 5.0)


async def _health_until(c: Client, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        worker = (await c.http.get("/health")).json()["components"]["worker"]
        if predicate(worker):
            return worker
        assert time.monotonic() < deadline, worker
        await asyncio.sleep(0.02)


def test_a_signal_to_the_whole_process_group_is_a_clean_stop(tmp_path):
    """A supervisor's SIGTERM to the group (or Ctrl-C's SIGINT: the same two lines of
    code) reaches the worker child too: it is the server's to stop, not a crash."""
    import httpx

    from tests.server.harness import SECRET, free_port

    port = free_port()
    env = {**os.environ, "PMARKET_JWT_SECRET": SECRET, "PMARKET_LOG_REQUESTS": "0"}
    for name in ("PMARKET_REDIS_URL", "PMARKET_DATABASE_URL", "PMARKET_SNAPSHOT_DIR"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-c", "from pmarket.cli import main; "
                                   "main()", "serve", "--port", str(port)], env=env,
                                  cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.05)
        child = health.json()["components"]["worker"]["pid"]
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        assert _pid_gone(child, 5.0)
        text = log.read_text()
        assert "died with exit code" not in text and "Traceback" not in text, text
        assert "Application shutdown complete" in text, text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
