"""One writer per database: a lock taken before anything else.

An embedded ``pmarket serve`` (or ``pmarket tui --embedded``) runs the engine of its
database, and a deployment's ``pmarket worker`` projects its shard's events into it; two
embedded exchanges on one database, an embedded exchange beside a deployment's worker,
or two workers of one shard would each write it as if alone (duplicate order ids, lost
deposits, phantom orders; two workers in one consumer group split the deliveries, and
each steps over the other's as a hole). ``acquire_database_lock`` is the first thing
such a process does — before migrations, the journal and recovery — and refuses with
``DatabaseLocked`` (its message names the holder: pid, host, since when, command line)
when another process holds what it needs:

* an embedded exchange holds the database's lock **exclusively**;
* a worker holds it **shared** (the workers of a deployment's shards share a database)
  and its shard's worker lock exclusively.

So an embedded exchange and a deployment's worker exclude each other, and a second
worker of a shard is refused while shards' workers coexist. The locks:

* SQLite: ``fcntl.flock`` on ``<database>.lock`` (and ``<database>.worker-<shard>.lock``)
  beside the file, which holds the exclusive holder's description (JSON). The lock
  belongs to the open file, so the OS releases it the moment the holder dies, kill -9
  included; the file stays (unlinking a lock file races with a process about to lock
  it). The descriptor is close-on-exec: spawned children (the worker process) never
  inherit it, so an orphan cannot hold it.
* PostgreSQL: session advisory locks (``pg_try_advisory_lock`` /
  ``pg_try_advisory_lock_shared``) on a dedicated connection, keyed by the database and
  schema (and the shard); PostgreSQL releases them when that session ends (the holder
  died, or its connection was cut). The holder is found through ``pg_stat_activity``
  (its ``application_name`` names the pid and host).
* An in-memory SQLite database cannot be shared: no lock.

Invariant: while ``DatabaseLock.held()`` is true, no other process runs an embedded
exchange on the same database, nor (for a worker's lock) another worker of its shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pmarket.db import normalize_url

log = logging.getLogger("pmarket.server.lock")

LOCK_SUFFIX = ".lock"
# pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits).
_KEY_MATCH = ("objsubid = 1 AND objid = CAST(CAST(:k AS BIGINT) & 4294967295 AS OID) "
              "AND classid = CAST((CAST(:k AS BIGINT) >> 32) & 4294967295 AS OID)")
APPLICATION_PREFIX = "pmarket-lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a database lock (fields None when unknown)."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None  # ISO 8601, UTC
    command: str | None = None

    def describe(self) -> str:
        """``pid 123 on host h since 2025-01-01 12:00:00 UTC (pmarket serve ...)``."""
        parts = [f"pid {self.pid}" if self.pid else "another process"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        text = " ".join(parts)
        return f"{text} ({self.command})" if self.command else text


class DatabaseLocked(RuntimeError):
    """Another process holds what this one needs on the database (module docstring).

    Attributes:
        database: the database, as shown to the operator.
        holder: who holds it.
    """

    def __init__(self, database: str, holder: Holder, held_as: str = ""):
        """``held_as``: what the holder is, when its description does not say."""
        self.database = database
        self.holder = holder
        what = f" ({held_as})" if held_as else ""
        super().__init__(f"database {database} is in use by {holder.describe()}{what}; "
                         "stop that process first (or start on another database)")


EMBEDDED = "embedded"
"""The scope of the database's own lock (exclusive: an embedded exchange; shared: the
workers of a deployment)."""


def worker_scope(shard: str) -> str:
    """The scope of the lock of a shard's worker (exclusive)."""
    return f"worker-{shard}"


def _held_as(scope: str, shared: bool, holder: Holder) -> str:
    """What the holder of a lock we could not take is, in the operator's words ("" when
    its own description, an embedded exchange's command line, says it)."""
    if scope != EMBEDDED:
        return f"the {scope.removeprefix('worker-')} shard's worker"
    if holder.command:
        return ""
    # We wanted it shared (a worker): an embedded exchange holds it. We wanted it
    # exclusively (an embedded start): an embedded exchange or a deployment's worker.
    return ("an embedded exchange" if shared
            else "an embedded exchange, or a deployment's worker")


def describe_self() -> Holder:
    """This process, as a lock holder."""
    return Holder(pid=os.getpid(), host=socket.gethostname(),
                  since=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                  command=_command_line())


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("/pmarket", "\\pmarket")):
        argv[0] = "pmarket"
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


class DatabaseLock:
    """A held lock; ``release`` (idempotent) gives it back. Build with
    ``acquire_database_lock``.

    Attributes:
        database: the database, as shown to the operator.
        worker_shard: the shard whose worker holds it, or None for an embedded exchange.
    """

    database: str = ""
    worker_shard: str | None = None

    def held(self) -> bool:
        """Whether this process still holds the lock (checked, not remembered)."""
        return True

    def release(self) -> None:
        """Give the lock back (the OS also does when the process dies)."""

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileLock(DatabaseLock):
    """``flock`` on ``<database>.lock`` (scope ``EMBEDDED``) or ``<database>.<scope>.lock``,
    exclusive or shared; an exclusive holder writes its description into the file."""

    def __init__(self, database: Path, scope: str = EMBEDDED, shared: bool = False):
        self.database = str(database)
        self.scope = scope
        self.shared = shared
        infix = "" if scope == EMBEDDED else f".{scope}"
        self.path = database.with_name(database.name + infix + LOCK_SUFFIX)
        self.fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a spawned child must never hold the lock of its parent.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DatabaseLocked(self.database, holder,
                                 _held_as(self.scope, self.shared, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        if not self.shared:
            me = describe_self()
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps({"pid": me.pid, "host": me.host, "since": me.since,
                                       "command": me.command}) + "\n").encode(), 0)
        self.fd = fd
        return self

    def held(self) -> bool:
        """True while our descriptor is open and still the file at ``path`` (a deleted
        or replaced lock file no longer excludes anyone)."""
        if self.fd is None:
            return False
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except OSError:
            return False

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            if not self.shared:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # no stale description for the next reader
            os.close(fd)  # closing the last descriptor releases the flock


class FileLocks(DatabaseLock):
    """Several ``FileLock`` held together (a worker's: the database's shared, its
    shard's exclusive), taken in order and all given back if one cannot be taken."""

    def __init__(self, locks: list[FileLock]):
        self.locks = locks
        self.database = locks[0].database

    def acquire(self) -> FileLocks:
        taken: list[FileLock] = []
        try:
            for lock in self.locks:
                taken.append(lock.acquire())
        except BaseException:
            for lock in taken:
                lock.release()
            raise
        return self

    def held(self) -> bool:
        return all(lock.held() for lock in self.locks)

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()


def _read_holder(fd: int) -> Holder:
    """The description the holder wrote (it may not have yet: a start in progress; a
    shared holder writes none)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return Holder()
    if not isinstance(data, dict):
        return Holder()
    pid = data.get("pid")
    return Holder(pid=pid if isinstance(pid, int) else None, host=_str(data.get("host")),
                  since=_str(data.get("since")), command=_str(data.get("command")))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class AdvisoryLock(DatabaseLock):
    """PostgreSQL session advisory locks on a connection of their own.

    Args:
        url: the database.
        claims: ``(scope, shared)`` pairs, taken in order; all or none are held.
    """

    def __init__(self, url: sa.URL, claims: tuple[tuple[str, bool], ...] = ((EMBEDDED,
                                                                            False),)):
        self.url = url
        self.claims = claims
        self.database = url.render_as_string(hide_password=True)
        self.engine: sa.Engine | None = None
        self.conn: sa.Connection | None = None
        self.keys: list[int] = []

    def acquire(self) -> AdvisoryLock:
        me = describe_self()
        name = f"{APPLICATION_PREFIX} pid={me.pid} host={me.host}"[:63]
        self.engine = sa.create_engine(self.url, poolclass=NullPool,
                                       connect_args={"application_name": name})
        try:
            conn = self.engine.connect()
            db, schema = conn.execute(sa.text(
                "SELECT current_database(), current_schema()")).one()
            self.database = f"{self.database} (schema {schema})"
            keys = []
            for scope, shared in self.claims:
                key = advisory_key(db, schema, scope)
                function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
                got = conn.execute(sa.text(f"SELECT {function}(:k)"), {"k": key}).scalar()
                conn.commit()  # the lock is the session's; no transaction stays open
                if not got:
                    holder = _advisory_holder(conn, key)
                    conn.close()  # ends the session: what it took so far goes with it
                    raise DatabaseLocked(self.database, holder, _held_as(scope, shared, holder))
                keys.append(key)
        except BaseException:
            self.engine.dispose()
            self.engine = None
            raise
        self.conn = conn
        self.keys = keys
        return self

    def held(self) -> bool:
        """Asks PostgreSQL whether our session still holds every lock."""
        if self.conn is None:
            return False
        try:
            for key in self.keys:
                found = self.conn.execute(sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND " + _KEY_MATCH), {"k": key}).scalar()
                self.conn.commit()
                if not found:
                    return False
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                conn.commit()
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def advisory_key(database: str, schema: str, scope: str = EMBEDDED) -> int:
    """The signed 64-bit advisory lock key of a database, schema and scope."""
    name = (f"pmarket-embedded\0{database}\0{schema}" if scope == EMBEDDED
            else f"pmarket-{scope}\0{database}\0{schema}")
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _advisory_holder(conn: sa.Connection, key: int) -> Holder:
    row = conn.execute(sa.text(
        "SELECT a.application_name, a.backend_start, a.client_hostname, "
        "host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND " + _KEY_MATCH + " LIMIT 1"),
        {"k": key}).first()
    conn.commit()
    if row is None:
        return Holder()
    name, started, client_host, client_addr = row
    fields = dict(part.split("=", 1) for part in (name or "").split()[1:] if "=" in part)
    pid = fields.get("pid", "")
    since = started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if started else None
    return Holder(pid=int(pid) if pid.isdigit() else None,
                  host=fields.get("host") or client_host or client_addr, since=since,
                  command=None if (name or "").startswith(APPLICATION_PREFIX) else name)


def acquire_database_lock(database_url: str, worker_shard: str | None = None) -> DatabaseLock:
    """Take the lock an embedded exchange (``worker_shard`` None) or a deployment's
    worker of ``worker_shard`` needs on ``database_url`` (see the module docstring).

    Raises:
        DatabaseLocked: another process holds it.
        OSError / sqlalchemy.exc.DBAPIError: the lock file or the database is unusable.
    """
    url = normalize_url(make_url(database_url))
    backend = url.get_backend_name()
    claims = (((EMBEDDED, False),) if worker_shard is None
              else ((EMBEDDED, True), (worker_scope(worker_shard), False)))
    lock: DatabaseLock
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith(
                "file::memory:"):
            lock = DatabaseLock()
        else:
            path = Path(url.database).resolve()
            files = [FileLock(path, scope, shared) for scope, shared in claims]
            lock = files[0].acquire() if len(files) == 1 else FileLocks(files).acquire()
    elif backend == "postgresql":
        lock = AdvisoryLock(url, claims).acquire()
    else:
        raise ValueError(f"no database lock for {backend} databases")
    lock.worker_shard = worker_shard
    return lock


class ForeignDatabase(RuntimeError):
    """The database holds another exchange's projection (or more than this one's log):
    an embedded exchange must not write it (module docstring of ``check_projection``)."""


def check_projection(db: sa.Engine, stream: str, last_seq: int, log_path: str,
                     log_first_seq: int | None) -> None:
    """Refuse a database an embedded exchange's engine did not write alone.

    The lock excludes a running deployment worker, not one that is stopped: an embedded
    exchange started on a deployment's database then (or after its own journal was lost,
    or with another ``PMARKET_SNAPSHOT_DIR``) would recover an engine that does not know
    the database's orders and reuse their ids. The database says so: its worker positions
    (``consumer_positions``) name the streams projected into it and how far. An embedded
    exchange's worker projects only its own stream, and only what its engine logged.

    The other way round, a database behind the engine must find what it lacks in the
    log: the worker projects commands ``projected + 1 ..`` from there, and the log keeps
    every delivery the worker has not stored. When the log (it starts at
    ``log_first_seq``; None: it is empty) no longer holds them, the database is older
    than the engine's snapshots (restored from an older backup) or the journal was
    deleted: serving would answer from a database that never gets those commands.

    Raises:
        ForeignDatabase: another stream was projected here, this stream past
            ``last_seq`` (the engine's recovered log), or not up to where the log starts.
    """
    with db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT stream, last_seq FROM consumer_positions WHERE last_seq > 0 "
            "ORDER BY stream")).all()
    for other, seq in rows:
        if other != stream:
            raise ForeignDatabase(
                f"database holds the projection of another exchange's event stream "
                f"{other!r} (up to command {seq}), not this embedded exchange's "
                f"{stream!r}: it belongs to a deployment (or another PMARKET_REDIS_PREFIX); "
                "start the embedded exchange on its own database")
        if seq > last_seq:
            raise ForeignDatabase(
                f"database holds commands up to {seq} of {stream!r}, but this "
                f"exchange's engine log ends at {last_seq} ({log_path}: missing, or not "
                "this database's — check PMARKET_SNAPSHOT_DIR); starting would reuse "
                "the ids of what the database holds")
    projected = max((seq for other, seq in rows if other == stream), default=0)
    if projected < last_seq and (log_first_seq is None or log_first_seq > projected + 1):
        missing_to = last_seq if log_first_seq is None else log_first_seq - 1
        raise ForeignDatabase(
            f"database holds commands up to {projected} of {stream!r}, but this "
            f"exchange's engine is at {last_seq} and its log ({log_path} and its journal) "
            f"no longer holds commands {projected + 1}..{missing_to}: the database is "
            "older than the engine's snapshots (restored from an older backup?) or the "
            "journal was deleted; serving would leave those commands out of the database "
            "for good — restore the matching database or journal")


class LockGuard:
    """Keeps a lock (an embedded exchange's, a worker's) held for as long as it runs.

    Every ``interval_s`` it checks that the lock is still held (a PostgreSQL session can
    be cut, a lock file deleted by hand). A lost lock is taken again at once; if another
    process took it meanwhile, ``on_lost`` is called with the reason (the caller stops
    its engine: two writers must never run) and the guard ends. While the database
    cannot be reached it logs an error and retries.

    Args:
        lock: the held lock.
        database_url: the database it locks (to take it again).
        on_lost: called once when another process holds the lock now.
        interval_s: seconds between checks.
    """

    def __init__(self, lock: DatabaseLock, database_url: str,
                 on_lost: Callable[[str], None], interval_s: float = 5.0):
        self.lock = lock
        self.database_url = database_url
        self.on_lost = on_lost
        self.interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Check until ``stop`` is set (or the lock went to another process)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set() or await asyncio.to_thread(self.lock.held):
                continue
            log.error("the lock on database %s was lost; taking it again",
                      self.lock.database)
            self.lock.release()
            try:
                self.lock = await asyncio.to_thread(acquire_database_lock, self.database_url,
                                                    self.lock.worker_shard)
            except DatabaseLocked as exc:
                log.critical("another process holds the database now: %s", exc)
                self.on_lost(str(exc))
                return
            except Exception as exc:  # the database is unreachable: try again later
                log.error("cannot take the database lock again (%s: %s); retrying",
                          type(exc).__name__, exc)
                continue
            log.warning("the lock on database %s is held again", self.lock.database)
