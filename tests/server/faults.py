"""Tools of the fault tests: services a test stops on its own, a breakable TCP path.

``Services`` runs a deployment's engine service and worker (each on its own bus client,
as separate processes would) so a test can stop and start them one at a time — the
harness's ``start_server(..., services=False)`` leaves them to it. ``TcpProxy`` sits
between a server and the shared PostgreSQL: ``cut()`` resets every connection through it
and refuses new ones, exactly what a server sees when its database dies or the network
to it fails, without touching the shared database server; ``restore()`` heals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from pmarket.bus import make_bus
from pmarket.db import make_engine
from pmarket.server import Settings


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 15.0,
                what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"{what} never held within {timeout_s} s"
        await asyncio.sleep(0.02)


async def recv(ws, timeout_s: float = 10.0) -> dict:
    """The next WebSocket message, decoded."""
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s))


class Services:
    """A deployment's engine service and worker, each started and stopped on its own."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.db = make_engine(settings.database_url)
        self._running: dict[str, tuple[asyncio.Task, asyncio.Event, Any]] = {}

    async def start_engine(self) -> None:
        from pmarket.runtime.service import EngineService

        bus = self._bus()
        service = EngineService(bus, snapshot_dir=self.directory / "engine-snapshots",
                                lease_ms=1_000)
        self._start("engine", service.run, bus)
        await asyncio.wait_for(service.ready.wait(), 30)

    async def start_worker(self) -> None:
        from pmarket.worker import Worker

        bus = self._bus()
        self._start("worker", Worker(bus, self.db, block_ms=50).run, bus)

    def _bus(self):
        return make_bus(self.settings.redis_url, prefix=self.settings.bus_prefix)

    def _start(self, name: str, run, bus) -> None:
        assert name not in self._running, f"{name} runs already"
        stop = asyncio.Event()
        self._running[name] = (asyncio.create_task(run(stop)), stop, bus)

    async def stop(self, name: str) -> None:
        """Stop ``name`` ("engine" or "worker") cleanly and close its bus."""
        task, stop, bus = self._running.pop(name)
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        await bus.close()

    async def close(self) -> None:
        for name in list(self._running):
            await self.stop(name)
        self.db.dispose()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; breakable (see the module docstring).

    Args:
        target: (host, port) of the real server.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Listen (on the same port as before, after a ``cut``); no-op if listening."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    restore = start

    def cut(self) -> None:
        """Refuse new connections and reset every open one (both directions)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # linger 0: close sends a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
