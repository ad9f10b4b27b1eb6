"""The embedded worker in a child process, so its database projection never holds this
process's GIL.

In the embedded exchange the event stream lives in this process's ``MemoryBus``, yet the
worker's projection (decoding deliveries, SQLAlchemy, SQLite) costs more CPU per order
than the HTTP request that placed it. As a thread of the server it held the GIL for
stretches at a time: every request waited for it (measured: ~30% of the process's GIL
time and a 5 ms GIL hand-off after each socket write). ``WorkerProcess`` runs the unchanged
``pmarket.worker.Worker`` in a spawned child whose bus is ``PipeBus``: each bus call the
worker makes (read, ack, reclaim, dead-letter) is forwarded over a pipe and executed here,
on the real bus, so the consumer group, its pending list and the journal's trimming work
exactly as before. The projection itself (and its SQLite writes) happens in the child.

Invariant: a delivery is acked only after the child's transaction holding it committed
(the worker's own rule, unchanged: the ack is a request the child sends afterwards). If
the child dies, the task ``run`` ends with an error (``/health`` reports the worker down)
and its un-acked deliveries stay pending for the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from multiprocessing.connection import Connection
from types import MappingProxyType
from typing import Any

from pmarket.bus import Bus, BusError, BusUnavailable, Message

log = logging.getLogger("pmarket.server.worker")

_STOP = "stop"


def _wire(messages: list[Message]) -> list[tuple]:
    return [(m.stream, m.id, m.payload, m.deliveries, dict(m.headers)) for m in messages]


def _unwire(rows: list[tuple]) -> list[Message]:
    return [Message(s, i, p, d, MappingProxyType(h)) for s, i, p, d, h in rows]


class WorkerProcess:
    """Runs ``Worker`` in a child process and serves its bus calls from ``bus``.

    Args:
        bus: this process's bus (the embedded ``MemoryBus``).
        database_url: the database the child projects into.
        consumer: the worker's consumer name in group ``worker``.
        shard: the shard whose event stream it projects.
        block_ms: how long one of its reads waits for new deliveries.
    """

    def __init__(self, bus: Bus, database_url: str, *, consumer: str, shard: str,
                 block_ms: int = 100):
        self.bus = bus
        self.database_url = database_url
        self.consumer = consumer
        self.shard = shard
        self.block_ms = block_ms
        self.process: multiprocessing.process.BaseProcess | None = None
        self._stop_sent = False
        self.ready = asyncio.Event()  # set at the child's first call (it is up)

    async def run(self, stop: asyncio.Event) -> None:
        """Start the child, serve its calls until ``stop``, then let it finish."""
        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        self.process = ctx.Process(
            target=child_main, name="pmarket-worker", daemon=True,
            args=(there, self.database_url, self.bus.events_stream(self.shard),
                  self.consumer, self.block_ms))
        await asyncio.to_thread(self.process.start)
        there.close()
        loop = asyncio.get_running_loop()
        incoming: asyncio.Queue[Any] = asyncio.Queue()

        def readable() -> None:
            try:
                incoming.put_nowait(here.recv())
            except (EOFError, OSError):
                loop.remove_reader(here.fileno())
                incoming.put_nowait(None)

        loop.add_reader(here.fileno(), readable)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getting = asyncio.ensure_future(incoming.get())
                timeout = None if not stop.is_set() else 10.0
                await asyncio.wait({getting, stopping} if not stop.is_set() else {getting},
                                   timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():  # stopping and the child is idle (or hung)
                    getting.cancel()
                    if stop.is_set() and not self._stop_sent:
                        self._stop_sent = True
                        continue
                    break
                request = getting.result()
                if request is None:  # the child exited
                    if stop.is_set():
                        break
                    raise RuntimeError(f"the worker process exited "
                                       f"(code {self.process.exitcode})")
                op, args = request
                self.ready.set()
                if stop.is_set() and op in ("read_events", "reclaim"):
                    here.send((_STOP, None))  # acks still go through: nothing re-done
                    continue
                here.send(await self._serve(op, args))
            await asyncio.to_thread(self.process.join, 10)
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                loop.remove_reader(here.fileno())
            if self.process.is_alive():
                self.process.kill()
            here.close()

    async def _serve(self, op: str, args: tuple) -> tuple[str, Any]:
        bus = self.bus
        try:
            if op == "read_events":
                group, consumer, count, block_ms = args
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


class PipeBus:
    """The child's bus: the calls ``Worker`` makes, forwarded to the parent.

    One call at a time (the worker is one task); a blocking pipe round trip is fine in a
    process that does nothing else.
    """

    def __init__(self, conn: Connection, events_stream: str, stop: asyncio.Event):
        self.conn = conn
        self._events = events_stream
        self.stop = stop

    def events_stream(self, shard: str | None = None) -> str:
        return self._events

    def _call(self, op: str, *args: Any) -> Any:
        if self.stop.is_set():
            raise BusUnavailable("stopping")
        try:
            self.conn.send((op, args))
            status, value = self.conn.recv()
        except (EOFError, OSError) as exc:  # the parent is gone
            self.stop.set()
            raise BusUnavailable(f"server gone: {exc}") from None
        if status == _STOP:
            self.stop.set()
            raise BusUnavailable("stopping")
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


def child_main(conn: Connection, database_url: str, events_stream: str, consumer: str,
               block_ms: int) -> None:
    """Entry point of the worker process."""
    asyncio.run(_child(conn, database_url, events_stream, consumer, block_ms))


async def _child(conn: Connection, database_url: str, events_stream: str, consumer: str,
                 block_ms: int) -> None:
    from pmarket.db import make_engine
    from pmarket.worker import Worker

    db = make_engine(database_url)
    stop = asyncio.Event()
    bus = PipeBus(conn, events_stream, stop)
    worker = Worker(bus, db, consumer=consumer, block_ms=block_ms)  # type: ignore[arg-type]
    try:
        await worker.run(stop)
    finally:
        db.dispose()
        conn.close()
