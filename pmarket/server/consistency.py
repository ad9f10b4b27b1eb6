"""Read-your-writes: a read never shows a state older than a write this server answered.

Writes are answered from the engine's reply (the events of that very command), so they
never wait for the database. Reads are served from two places that trail the engine:
the market-data replica (books) and the database (everything else). ``ReadBarrier``
makes them catch up with this server's own writes, and only when there were some:

1. every reply that changed something bumps a write counter (``note_write``), and
   notes that generation against the users and markets its events changed (its
   ``scope.Scope``; an event-level change against everyone);
2. a read that finds a generation it could show above what was last verified (the
   newest noted against its user or one of its markets, or against everyone; a read
   with no ``scope.Reader`` could show anything) fetches the event stream's newest id
   ``L`` (the engine appends a command's delivery and its reply in one atomic write, so
   ``L`` covers every write answered so far);
3. it waits until the replica has applied the stream up to ``L`` — the replica then
   knows the command sequence number ``n`` of the newest delivery it applied;
4. for database reads, it waits until the worker's stored position reaches ``n``
   (``consumer_positions.last_seq``, committed with the rows), polled by one shared
   task however many reads are waiting.

A read is never served stale. When it cannot be made consistent it answers 503 with
``Retry-After`` and a code saying why (the writes themselves are applied):

* ``projection_stalled`` at once, without waiting, when ``ProjectionWatch`` knows the
  projection is stalled: behind the event stream with its position unchanged for
  ``stall_after_s`` (a dead or stuck worker, a database it cannot write);
* ``projection_behind`` / ``marketdata_behind`` when the database / the replica did not
  catch up within ``timeout_s``;
* ``marketdata_unavailable`` for book reads while the replica is not following the
  stream, ``unavailable`` for database reads that wait for writes while it is not (the
  event stream is unreachable: nothing can say how far the writes got).

A big delivery is folded in slices (``marketdata.Replica.apply_sliced``); the replica's
position moves past it only once it is folded whole, and ``for_replica`` also waits
while one that touches the read is half-folded, so no read sees part of a delivery.

So a read waits only for the changes it could show: another user's sweep of a
thousand-level book, its cancel-all of 10,000 orders, hold up that user's reads and those
of the markets it traded in, not everyone's ``GET /balance``. Reads that see no change of
their own go on while the replica works through them (a background catch-up, started
by such reads, moves the verified generation on so the notes stay few).

Invariant: a read started after a write's response was sent sees that write's effects,
across users and connections of the same server process (other processes see them
within the projection lag), or it is refused with a 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from pmarket.bus import Bus
from pmarket.db import ConsumerPosition
from pmarket.worker import WORKER_GROUP

from .errors import ApiError
from .marketdata import Replica
from .scope import EVERY_READER, EVERYTHING, Reader, Scope

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


class ProjectionWatch:
    """Tells a database projection that stopped advancing from one that is just behind.

    Each ``check`` reads the worker's stored position and compares it with the newest
    command seq of the event stream as this server's replica applied it. The projection
    is *stalled* once it has been behind with an unchanged position for
    ``stall_after_s``: nothing moved although there was work (a dead or stuck worker, a
    database it cannot write). A worker that advances, however slowly, is only behind.
    The runtime checks every second (``supervision``) and ``/health`` in its request.

    Args:
        progress: the worker's stored position.
        replica: the market-data replica (the stream's seq).
        stall_after_s: how long a behind, unmoving position counts as stalled.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, progress: ProjectionProgress, replica: Replica, stall_after_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.progress = progress
        self.replica = replica
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.position = 0
        self.stream_seq = 0
        self.behind_since: float | None = None  # first seen behind at ``position``
        self._announced = False

    async def check(self) -> None:
        """Read the position now and update the verdict (database errors propagate)."""
        self.observe(await self.progress.refresh(), self.replica.last_seq)

    def observe(self, position: int, stream_seq: int) -> None:
        """Update the verdict with a position and the stream's seq, seen now."""
        now = self.clock()
        behind = stream_seq > position
        if not behind or position != self.position:
            self.behind_since = now if behind else None
        elif self.behind_since is None:
            self.behind_since = now
        self.position, self.stream_seq = position, stream_seq
        stalled = self.stalled() is not None
        if stalled and not self._announced:
            log.error("the database projection is stalled: %s", self.describe())
        elif self._announced and not stalled:
            log.warning("the database projection advances again (seq %d)", position)
        self._announced = stalled

    def stalled(self) -> float | None:
        """Seconds the projection has been stalled, or None while it is not."""
        if self.behind_since is None:
            return None
        waited = self.clock() - self.behind_since
        return waited if waited >= self.stall_after_s else None

    def describe(self) -> str:
        """One line for ``/health`` and the logs."""
        text = f"database at seq {self.position}, event stream at seq {self.stream_seq}"
        stalled = self.stalled()
        if stalled is not None:
            return (f"{text}: no progress for {stalled:.0f} s although behind (is the "
                    f"worker running, can it write the database?)")
        if self.behind_since is not None:
            return f"{text} (catching up)"
        return text


def _unavailable(code: str, message: str, retry_after_s: int) -> ApiError:
    return ApiError(503, code, message, {"Retry-After": str(retry_after_s)})


class ReadBarrier:
    """Makes reads wait for this server's earlier writes (see the module docstring).

    Args:
        bus: the bus (for the event stream's newest id).
        replica: the market-data replica following the stream.
        progress: the database projection's position.
        timeout_s: longest wait before a read is refused (503).
        watch: knows when the projection is stalled (reads then fail at once).
    """

    def __init__(self, bus: Bus, replica: Replica, progress: ProjectionProgress,
                 timeout_s: float = 5.0, watch: ProjectionWatch | None = None):
        self.bus = bus
        self.replica = replica
        self.progress = progress
        self.timeout_s = timeout_s
        self.watch = watch
        self.written = 0
        self._replica_ok = 0
        self._db_ok = 0
        # The newest generation noted against each user and market, and against everyone
        # (entries at or below ``_replica_ok`` are spent; all are dropped once it catches
        # up with ``written``).
        self._by_user: dict[int, int] = {}
        self._by_market: dict[int, int] = {}
        self._everyone = 0
        self._catching_up: asyncio.Task[None] | None = None

    def note_write(self, scope: Scope = EVERYTHING) -> None:
        """Note a write whose reply arrived and what it changed (called by the gateway;
        a write that changed nothing, a rejection, is not noted; without a scope, a write
        every read must see)."""
        if scope.empty:
            return
        self.written += 1
        generation = self.written
        if scope.everything:
            self._everyone = generation
            return
        by_user, by_market = self._by_user, self._by_market
        for user in scope.users:
            by_user[user] = generation
        for market in scope.markets:
            by_market[market] = generation

    def _newest_for(self, reader: Reader) -> int:
        """The newest noted generation a read of ``reader`` could show."""
        if reader.everything:
            return self.written
        newest = self._everyone
        if reader.user is not None:
            newest = max(newest, self._by_user.get(reader.user, 0))
        by_market = self._by_market
        for market in reader.markets:
            newest = max(newest, by_market.get(market, 0))
        return newest

    async def for_replica(self, reader: Reader = EVERY_READER) -> None:
        """Wait until the replica reflects every write answered so far that a read of
        ``reader`` could show, and no delivery that touches it is half-folded
        (``Replica.settled``: a big one is folded in slices).

        Raises:
            ApiError: 503 when the replica is not following the stream or does not catch
                up within ``timeout_s``.
        """
        replica = self.replica
        if not replica.running:
            raise _unavailable("marketdata_unavailable", "market data is not available "
                               f"right now ({replica.status}); retry in a moment", 1)
        if self._newest_for(reader) > self._replica_ok:
            if not await self._reach_head(self.written):
                raise _unavailable("marketdata_behind", "market data has not caught up "
                                   f"with this server's writes within {self.timeout_s:g} s;"
                                   " retry in a moment", 1)
        elif self.written > self._replica_ok:
            self._catch_up()
        # Last, with no await after it: the caller reads a state with no delivery it
        # could show in it by halves.
        await replica.settled(reader)

    async def _reach_head(self, generation: int) -> bool:
        """Wait until the replica has applied the stream up to its newest id, which
        covers every write answered up to ``generation``; whether it did in time."""
        replica = self.replica
        head = await self.bus.last_id(replica.stream)
        if not await replica.wait_for_id(head, self.timeout_s):
            log.warning("market data replica is behind the event stream (%s)", head)
            return False
        if generation > self._replica_ok:
            self._replica_ok = generation
            if generation >= self.written:  # every note is spent
                self._by_user, self._by_market = {}, {}
        return True

    def _catch_up(self) -> None:
        """Move ``_replica_ok`` on in the background (one task at a time): reads that
        need not wait for the writes answered so far leave them to it."""
        task = self._catching_up
        if task is not None and not task.done():
            return
        self._catching_up = asyncio.ensure_future(self._catch_up_once(self.written))

    async def _catch_up_once(self, generation: int) -> None:
        try:
            await self._reach_head(generation)
        except Exception as exc:  # the next read that needs it fails loudly instead
            log.debug("read barrier: background catch-up failed: %r", exc)

    async def for_database(self) -> None:
        """Wait until the database reflects every write answered so far.

        Raises:
            ApiError: 503 when the projection is stalled, does not catch up within
                ``timeout_s``, or the event stream is unreachable (see the module).
        """
        generation = self.written
        if generation <= self._db_ok:
            return
        if not self.replica.running:
            raise _unavailable("unavailable", "the event stream is unreachable, so this "
                               "server cannot confirm its earlier writes are readable yet; "
                               "retry in a moment", 1)
        await self.for_replica()
        target = self.replica.last_seq
        if self.progress.known < target and self.watch is not None:
            stalled = self.watch.stalled()
            if stalled is not None:
                raise _unavailable("projection_stalled", "the database projection has not "
                                   f"advanced for {stalled:.0f} s (the worker is down or "
                                   "stuck); earlier writes are applied but cannot be read "
                                   "back yet", 5)
        if not await self.progress.wait_for(target, self.timeout_s):
            log.warning("database projection is behind seq %d", target)
            raise _unavailable("projection_behind", "the database has not caught up with "
                               f"this server's writes within {self.timeout_s:g} s; retry "
                               "in a moment", 1)
        self._db_ok = max(self._db_ok, generation)
