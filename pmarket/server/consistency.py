"""Read-your-writes: a read never shows a state older than a write this server answered.

Writes are answered from the engine's reply (the events of that very command), so they
never wait for the database. Reads are served from two places that trail the engine:
the market-data replica (books) and the database (everything else). ``ReadBarrier``
makes them catch up with this server's own writes, and only when there were some:

1. every reply bumps a write counter (``note_write``);
2. a read that finds the counter above what was last verified fetches the event
   stream's newest id ``L`` (the engine appends a command's delivery and its reply in
   one atomic write, so ``L`` covers every write answered so far);
3. it waits until the replica has applied the stream up to ``L`` — the replica then
   knows the command sequence number ``n`` of the newest delivery it applied;
4. for database reads, it waits until the worker's stored position reaches ``n``
   (``consumer_positions.last_seq``, committed with the rows), polled by one shared
   task however many reads are waiting.

Invariant: a read started after a write's response was sent sees that write's effects,
across users and connections of the same server process (other processes see them
within the projection lag). If the projection stalls past ``timeout_s`` the read is
served anyway, stale, and a warning is logged: availability over a hung request.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine, select

from pmarket.bus import Bus
from pmarket.db import ConsumerPosition
from pmarket.worker import WORKER_GROUP

from .marketdata import Replica

log = logging.getLogger("pmarket.server.consistency")

POLL_S = 0.002


class ProjectionProgress:
    """The worker's projected command seq, read from the database on demand."""

    def __init__(self, db: Engine, stream: str):
        self.db = db
        self.stream = stream
        self.known = 0
        self._poll: asyncio.Task[int] | None = None

    def read(self) -> int:
        """The stored position (0 if the worker never wrote one)."""
        with self.db.connect() as conn:
            value = conn.execute(select(ConsumerPosition.last_seq).where(
                ConsumerPosition.consumer == WORKER_GROUP,
                ConsumerPosition.stream == self.stream)).scalar()
        return value or 0

    async def refresh(self) -> int:
        """Read the position once (shared by concurrent callers)."""
        if self._poll is None or self._poll.done():
            self._poll = asyncio.ensure_future(asyncio.to_thread(self.read))
        value = await asyncio.shield(self._poll)
        self.known = max(self.known, value)
        return self.known

    async def wait_for(self, seq: int, timeout_s: float) -> bool:
        """Wait until the database holds commands up to ``seq``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.known < seq:
            if await self.refresh() >= seq:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True


class ReadBarrier:
    """Makes reads wait for this server's earlier writes (see the module docstring).

    Args:
        bus: the bus (for the event stream's newest id).
        replica: the market-data replica following the stream.
        progress: the database projection's position.
        timeout_s: longest wait before serving a stale read.
    """

    def __init__(self, bus: Bus, replica: Replica, progress: ProjectionProgress,
                 timeout_s: float = 5.0):
        self.bus = bus
        self.replica = replica
        self.progress = progress
        self.timeout_s = timeout_s
        self.written = 0
        self._replica_ok = 0
        self._db_ok = 0

    def note_write(self) -> None:
        """Count a write whose reply arrived (called by the gateway)."""
        self.written += 1

    async def for_replica(self) -> None:
        """Wait until the replica reflects every write answered so far."""
        generation = self.written
        if generation <= self._replica_ok:
            return
        head = await self.bus.last_id(self.replica.stream)
        if not await self.replica.wait_for_id(head, self.timeout_s):
            log.warning("market data replica is behind the event stream (%s)", head)
            return
        self._replica_ok = max(self._replica_ok, generation)

    async def for_database(self) -> None:
        """Wait until the database reflects every write answered so far."""
        generation = self.written
        if generation <= self._db_ok:
            return
        await self.for_replica()
        target = self.replica.last_seq
        if not await self.progress.wait_for(target, self.timeout_s):
            log.warning("database projection is behind seq %d", target)
            return
        self._db_ok = max(self._db_ok, generation)
