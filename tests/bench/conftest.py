"""Fixtures of the benchmark tests: a test fails if its benchmark leaves a process running.

Every process a test starts inherits a marker in its environment (``MARKER``), so the
benchmark's servers, engine and worker are found even once reparented to init.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "PMARKET_BENCH_TEST_RUN"
"""Set to a fresh value for each test; every process the test starts inherits it."""


def _live_processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, environment) of every running process but this one (zombies,
    and processes not ours to read, left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
            if state != b"Z":
                found[int(entry.name)] = (int(ppid), (entry / "environ").read_bytes())
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
    return found


def _descendants(processes: dict[int, tuple[int, bytes]]) -> set[int]:
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, (ppid, _) in processes.items() if ppid in mine} - mine
        mine |= more
        grew = bool(more)
    return mine - {os.getpid()}


def _started_by_the_test(marker: str, before: set[int]) -> list[tuple[int, str]]:
    """Processes whose environment holds the test's marker, and descendants of this
    process that were not there before the test (a child between fork and exec still
    has this process's original environment, without the marker)."""
    needle = f"{MARKER}={marker}".encode()
    processes = _live_processes()
    pids = {pid for pid, (_, env) in processes.items() if needle in env.split(b"\0")}
    pids |= _descendants(processes) - before
    left = []
    for pid in sorted(pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        left.append((pid, cmdline.decode(errors="replace").strip()))
    return left


@pytest.fixture(autouse=True)
def no_process_left_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails a test whose benchmark leaves a process running (servers, engine, worker,
    their children), after a short grace period; such processes are killed."""
    marker = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, marker)
    before = _descendants(_live_processes())
    yield
    deadline = time.monotonic() + 10
    while (left := _started_by_the_test(marker, before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running by the benchmark: {left}"
