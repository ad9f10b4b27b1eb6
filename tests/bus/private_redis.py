"""A private ``redis-server`` for fault tests: started on a free port, killed for real.

Fault tests must never stop the shared Redis (other tests and helpers use it). A
``PrivateRedis`` runs its own ``redis-server`` (no RDB snapshots; append-only file only
if asked, in the test's directory), which a test kills with SIGKILL and starts again on
the same port: clients see exactly what a crashed Redis looks like.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.services import services_required


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """One ``redis-server`` process of a test.

    Args:
        directory: its working directory (the append-only file lives there).
        appendonly: persist every write (``appendfsync always``), so a kill -9 loses
            nothing, as production runs it; else a restart comes back empty.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (needed by fault tests)"
            if services_required():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", str(self.directory), "--logfile", "redis.log"]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                 else ["--appendonly", "no"])
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
                try:
                    # Loading an append-only file answers LOADING until it is done.
                    if client.ping():
                        return
                finally:
                    client.close()
            except redis.RedisError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.directory}/redis.log")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no save) and wait until it is gone."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing is answered (a stalled
        Redis, not a dead one)."""
        assert self.process is not None, "not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.process is not None, "not running"
        os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A plain client of this server (close it after use)."""
        return redis.Redis(port=self.port, socket_connect_timeout=1)
