"""The embedded worker in a supervised child process, so its database projection never
holds this process's GIL.

In the embedded exchange the event stream lives in this process's ``MemoryBus``, yet the
worker's projection (decoding deliveries, SQLAlchemy, SQLite) costs more CPU per order
than the HTTP request that placed it. As a thread of the server it held the GIL for
stretches at a time: every request waited for it (measured: ~30% of the process's GIL
time and a 5 ms GIL hand-off after each socket write). ``WorkerProcess`` runs the unchanged
``pmarket.worker.Worker`` in a spawned child whose bus is ``PipeBus``: each bus call the
worker makes (read, ack, reclaim, dead-letter) is forwarded over a socket pair and
executed here, on the real bus, so the consumer group, its pending list and the
journal's trimming work exactly as before. The projection itself (and its SQLite
writes) happens in the child.

The wire: each message is an 8-byte big-endian length and a pickle (parent and child
are the same program). The parent reads and writes it with asyncio streams, so a message
that arrives in pieces is simply awaited — never a partial read on a non-blocking pipe;
the child, which does nothing else, uses blocking ``sendall``/``recv``.

Supervision: ``run`` restarts a child that died (exponential backoff, an ERROR log line
each time; ``health`` reports it down meanwhile, with the restart count and the last exit
code). The new child first receives every delivery its predecessor had taken but not
acked (claimed for it at once, not after the reclaim idle time), then new ones; the
projection skips what was already stored. A child dies with its parent: Linux's
``PR_SET_PDEATHSIG`` (SIGKILL), plus a thread that exits when the parent pid changes and
an immediate exit when the socket reaches EOF, so an orphan never writes to the database
after its parent died nor outlives it.

Invariant: a delivery is acked only after the child's transaction holding it committed
(the worker's own rule, unchanged: the ack is a request the child sends afterwards).
While no child runs, the engine's deliveries wait in the stream (journaled, un-acked by
group ``worker``, so never trimmed) until the next child projects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from types import MappingProxyType
from typing import Any

from pmarket.bus import Bus, BusError, BusUnavailable, Message, UnknownGroup

log = logging.getLogger("pmarket.server.worker")

_STOP = "stop"
_HEADER = struct.Struct("!Q")
EXIT_ORPHANED = 75
"""Exit status of a worker child that found its parent gone."""
STOP_GRACE_S = 10.0
"""How long a stopping child may take to finish its batch and ack it."""


def _wire(messages: list[Message]) -> list[tuple]:
    return [(m.stream, m.id, m.payload, m.deliveries, dict(m.headers)) for m in messages]


def _unwire(rows: list[tuple]) -> list[Message]:
    return [Message(s, i, p, d, MappingProxyType(h)) for s, i, p, d, h in rows]


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """One message; ``asyncio.IncompleteReadError`` at EOF (the child is gone)."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


class WorkerProcess:
    """Runs ``Worker`` in a child process, serves its bus calls from ``bus``, and
    restarts it when it dies.

    Args:
        bus: this process's bus (the embedded ``MemoryBus``).
        database_url: the database the child projects into.
        consumer: the worker's consumer name in group ``worker``.
        shard: the shard whose event stream it projects.
        block_ms: how long one of its reads waits for new deliveries.
        backoff_s: the first restart delay; doubles for each quick death.
        max_backoff_s: the longest restart delay.
        stable_s: a child that lived this long resets the backoff.
    """

    def __init__(self, bus: Bus, database_url: str, *, consumer: str, shard: str,
                 block_ms: int = 100, backoff_s: float = 0.25, max_backoff_s: float = 15.0,
                 stable_s: float = 30.0):
        self.bus = bus
        self.database_url = database_url
        self.consumer = consumer
        self.shard = shard
        self.block_ms = block_ms
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.stream = bus.events_stream(shard)
        self.process: multiprocessing.process.BaseProcess | None = None
        self.ready = asyncio.Event()  # set at the first call of the first child (it is up)
        self.up = False  # the current child is running and has called in
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.down_since: float | None = None  # wall clock of the last death
        self._counted: multiprocessing.process.BaseProcess | None = None  # its last death
        self._handover: list[Message] = []  # a dead child's un-acked deliveries

    # --- supervision --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run a child until ``stop``; restart it (with backoff) whenever it dies."""
        loop = asyncio.get_running_loop()
        backoff = self.backoff_s
        while not stop.is_set():
            started = loop.time()
            try:
                code = await self._run_child(stop)
            except Exception as exc:  # it could not even start (fork failed, ...)
                log.error("cannot start the embedded worker process: %s: %s",
                          type(exc).__name__, exc)
                code = None
            if stop.is_set():
                break
            self.restarts += 1
            self.last_exit_code = code
            self.down_since = time.time()
            self._counted = self.process
            if loop.time() - started >= self.stable_s:
                backoff = self.backoff_s
            log.error("the embedded worker process (pid %s) died with exit code %s; "
                      "restarting it in %.2fs (restart %d); the deliveries it had not "
                      "stored wait in the journal", self.process.pid if self.process else "?",
                      code, backoff, self.restarts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            if not stop.is_set():
                await self._claim_orphaned_deliveries()

    async def _claim_orphaned_deliveries(self) -> None:
        """Take over everything the dead child had read but not acked, for the next one
        (without waiting for the worker's own reclaim, whose idle time is longer than
        its gap timeout: it would skip the hole instead)."""
        try:
            self._handover = await self.bus.reclaim(self.stream, "worker", self.consumer,
                                                    min_idle_ms=0, count=1 << 62)
        except UnknownGroup:
            self._handover = []
        if self._handover:
            log.warning("handing %d un-acked deliveries of the dead worker process to the "
                        "next one", len(self._handover))

    async def _run_child(self, stop: asyncio.Event) -> int | None:
        """Start one child and serve it until it exits (or ``stop``); its exit code."""
        ctx = multiprocessing.get_context("spawn")
        here, there = socket.socketpair()
        self.process = process = ctx.Process(
            target=child_main, name="pmarket-worker", daemon=True,
            args=(there, self.database_url, self.stream, self.consumer, self.block_ms,
                  os.getpid()))
        # Started from this (the event loop's) thread on purpose: the child's
        # PR_SET_PDEATHSIG fires when the *thread* that forked it ends, and this one
        # lives as long as the server.
        try:
            process.start()
        finally:
            there.close()
        writer = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=here)
            if await self._serve_child(reader, writer, stop):
                await asyncio.to_thread(process.join, STOP_GRACE_S)  # it is exiting
        finally:
            self.up = False
            if writer is not None:
                writer.close()
            else:
                here.close()
            if process.is_alive():
                process.kill()
            await asyncio.to_thread(process.join, 10)
        return process.exitcode

    async def _serve_child(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           stop: asyncio.Event) -> bool:
        """Answer the child's calls one at a time until it goes away (or, once ``stop``
        is set, tell it to stop at its next read; give up on it after a grace period).

        Returns:
            True if the child hung up (it is exiting), False if it was given up on.
        """
        stopping = asyncio.ensure_future(stop.wait())
        getting: asyncio.Future | None = None
        try:
            while True:
                if getting is None:  # never cancelled mid-message: it lives on until done
                    getting = asyncio.ensure_future(_read_frame(reader))
                if stop.is_set():
                    done, _ = await asyncio.wait({getting}, timeout=STOP_GRACE_S)
                    if not done:
                        return False  # hung: the caller kills it
                else:
                    await asyncio.wait({getting, stopping},
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not getting.done():
                        continue  # stop was set: give the child its grace period
                try:
                    op, args = getting.result()
                except (asyncio.IncompleteReadError, ConnectionError, OSError):
                    return True  # the child exited
                getting = None
                self.ready.set()
                self.up = True
                if stop.is_set() and op in ("read_events", "reclaim"):
                    reply: tuple = (_STOP, None)  # acks still go through: nothing re-done
                else:
                    reply = await self._serve(op, args)
                try:
                    writer.write(_frame(reply))
                    await writer.drain()
                except (ConnectionError, OSError):
                    return True
        finally:
            stopping.cancel()
            if getting is not None:
                getting.cancel()

    async def _serve(self, op: str, args: tuple) -> tuple[str, Any]:
        bus = self.bus
        try:
            if op == "read_events":
                group, consumer, count, block_ms = args
                if self._handover:
                    taken, self._handover = self._handover[:count], self._handover[count:]
                    return "ok", _wire(taken)
                result: Any = _wire(await bus.read_events(group, consumer, count=count,
                                                          block_ms=block_ms,
                                                          shard=self.shard))
            elif op == "reclaim":
                stream, group, consumer, min_idle_ms, count, max_deliveries = args
                result = _wire(await bus.reclaim(stream, group, consumer,
                                                 min_idle_ms=min_idle_ms, count=count,
                                                 max_deliveries=max_deliveries))
            elif op == "ack_events":
                group, ids = args
                result = await bus.ack_events(group, ids, shard=self.shard)
            elif op == "dead_letter":
                row, group, error = args
                result = await bus.dead_letter(_unwire([row])[0], group, error)
            else:
                return "error", ("BusError", f"unknown call {op!r}")
        except BusUnavailable as exc:
            return "error", ("BusUnavailable", str(exc))
        except Exception as exc:  # the child re-raises it as a bus error
            return "error", ("BusError", f"{type(exc).__name__}: {exc}")
        return "ok", result

    # --- health -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The ``worker`` component of ``/health``: up or down, pid, restarts."""
        process = self.process
        alive = self.up and process is not None and process.is_alive()
        if alive:
            detail = f"embedded worker process (pid {process.pid})"
        elif process is not None and process.exitcode is not None and \
                process is not self._counted:
            # dead, and not counted yet: ``run`` counts it once it has reaped it
            detail = f"embedded worker process died (exit code {process.exitcode}); restarting"
        elif self.down_since is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.down_since))
            detail = (f"embedded worker process died (exit code {self.last_exit_code}) at "
                      f"{since}; restarting")
        else:
            detail = "embedded worker process starting"
        return {"status": "ok" if alive else "down", "detail": detail,
                "pid": process.pid if alive else None, "restarts": self.restarts,
                "last_exit_code": self.last_exit_code}


# --- the child ----------------------------------------------------------------------------


class PipeBus:
    """The child's bus: the calls ``Worker`` makes, forwarded to the parent.

    One call at a time (the worker is one task); a blocking round trip is fine in a
    process that does nothing else. If the parent is gone the child exits at once.
    """

    def __init__(self, sock: socket.socket, events_stream: str, stop: asyncio.Event):
        self.sock = sock
        self._events = events_stream
        self.stop = stop

    def events_stream(self, shard: str | None = None) -> str:
        return self._events

    def _recv_exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise EOFError("the server closed the worker's socket")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _call(self, op: str, *args: Any) -> Any:
        if self.stop.is_set():
            raise BusUnavailable("stopping")
        try:
            self.sock.sendall(_frame((op, args)))
            (size,) = _HEADER.unpack(self._recv_exactly(_HEADER.size))
            status, value = pickle.loads(self._recv_exactly(size))
        except (EOFError, OSError):
            # The parent died: nothing this process does from now on is wanted (a new
            # server may already run its own worker on this database).
            os._exit(EXIT_ORPHANED)
        if status == _STOP:  # the server stops: an empty read, and the worker's loop ends
            self.stop.set()
            return []
        if status == "error":
            kind, message = value
            raise (BusUnavailable if kind == "BusUnavailable" else BusError)(message)
        return value

    async def read_events(self, group: str, consumer: str, *, count: int = 100,
                          block_ms: int | None = None, shard: str | None = None
                          ) -> list[Message]:
        return _unwire(self._call("read_events", group, consumer, count, block_ms))

    async def reclaim(self, stream: str, group: str, consumer: str, *, min_idle_ms: int,
                      count: int = 100, max_deliveries: int | None = None) -> list[Message]:
        return _unwire(self._call("reclaim", stream, group, consumer, min_idle_ms, count,
                                  max_deliveries))

    async def ack_events(self, group: str, ids: list[str], *, shard: str | None = None
                         ) -> None:
        self._call("ack_events", group, list(ids))

    async def dead_letter(self, message: Message, group: str, error: str) -> str:
        return self._call("dead_letter", _wire([message])[0], group, error)


def die_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Make this process end when ``parent_pid`` does.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel kills it with the parent.
    Everywhere (and as a second line): exit at once if the parent is already gone, and a
    daemon thread that exits the process when the parent pid changes (re-parented).
    """
    set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(EXIT_ORPHANED)

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="pmarket-parent-watch", daemon=True).start()


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as exc:
        log.warning("cannot tie the worker process to its parent (%s); watching the "
                    "parent pid instead", exc)
        return False
    return True


def child_main(sock: socket.socket, database_url: str, events_stream: str, consumer: str,
               block_ms: int, parent_pid: int) -> None:
    """Entry point of the worker process."""
    # Ctrl-C or a SIGTERM to the whole process group is for the server, which stops
    # this process itself (at its next read, after its batch is stored); a signal here
    # would kill it mid-batch and look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent_pid)
    asyncio.run(_child(sock, database_url, events_stream, consumer, block_ms))


async def _child(sock: socket.socket, database_url: str, events_stream: str, consumer: str,
                 block_ms: int) -> None:
    from pmarket.db import make_engine

    from .loop import Worker

    db = make_engine(database_url)
    stop = asyncio.Event()
    bus = PipeBus(sock, events_stream, stop)
    worker = Worker(bus, db, consumer=consumer, block_ms=block_ms)  # type: ignore[arg-type]
    try:
        await worker.run(stop)
    finally:
        db.dispose()
        sock.close()
