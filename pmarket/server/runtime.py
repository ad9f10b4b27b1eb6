"""The server's running parts and their lifecycle: bus, database, replica, engine, worker.

``Runtime.start`` first, in the embedded mode, takes the database's lock (``dblock``: one
embedded exchange per database; a second one is refused before it touches anything),
unless its creator already holds it (``Runtime.lock``); then it migrates the database,
creates the first-start admin, opens the bus and, in the embedded mode, starts the engine
service (snapshots beside the database, event stream journaled by
``pmarket.runtime.journal``) and the worker (a supervised child process,
``pmarket.worker.process``);
then it seeds the market-data replica and the read model (``readmodel``, unless
``read_model`` is off) from the database and starts following the event stream, and the
supervisor (``supervision``: liveness mark, reaping dead servers' groups,
watching the projection) and ``/health``'s background checks (``health``).
``Runtime.stop`` reverses it: the engine finishes its batch and writes a snapshot, the
worker and the replica stop, this server's consumer group is deleted, the lock is
released.

A deployment server starts while Redis is down (nothing in ``start`` waits for it): it
serves degraded — ``/health`` 503, writes 503 with ``Retry-After`` — and heals when
Redis answers again (the replica and the bus reconnect by themselves).

Invariant: the server answers requests only between a completed ``start`` and ``stop``;
the engine is only ever written through ``gateway`` (one writer: the engine service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from pmarket.bus import SERVER_GROUP_PREFIX, Bus, make_bus
from pmarket.db import Admin, make_engine, upgrade
from pmarket.runtime.eventlog import decode_logged_delivery
from pmarket.runtime.journal import open_journaled_bus
from pmarket.runtime.supervised import RestartingEngine
from pmarket.worker.process import WorkerProcess

from .clientaddr import parse_trusted_proxies
from .connections import ConnectionGuard
from .consistency import ProjectionProgress, ProjectionWatch, ReadBarrier
from .dblock import (
    DatabaseLock,
    ForeignDatabase,
    LockGuard,
    acquire_database_lock,
    check_projection,
)
from .gateway import Gateway
from .health import HealthMonitor, probes
from .marketdata import Replica
from .metrics import Metrics
from .ratelimit import RateLimiter
from .readmodel import ReadModel
from .security import PasswordHasher, api_key_secret, hash_password
from .sessions import Sessions
from .settings import Settings
from .supervision import Supervisor
from .throttle import FailureThrottle, SigninGuard
from .websocket import Hub, WsLimits

log = logging.getLogger("pmarket.server")


def create_admin(db: Engine, email: str, name: str, password: str, rounds: int = 12) -> bool:
    """Create an admin unless one with ``email`` exists; True if created."""
    email = email.strip().lower()
    with db.begin() as conn:
        if conn.execute(select(Admin.id).where(Admin.email == email)).first():
            return False
        try:
            conn.execute(Admin.__table__.insert().values(
                email=email, name=name, password_hash=hash_password(password, rounds)))
        except IntegrityError:
            return False
    return True


@dataclass
class Runtime:
    """Everything a request handler may need, built by ``start``."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    hub: Hub = field(default_factory=Hub)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    db: Engine = None  # type: ignore[assignment]
    bus: Bus = None  # type: ignore[assignment]
    replica: Replica = None  # type: ignore[assignment]
    readmodel: ReadModel | None = None
    barrier: ReadBarrier = None  # type: ignore[assignment]
    gateway: Gateway = None  # type: ignore[assignment]
    limiter: RateLimiter = None  # type: ignore[assignment]
    public_limiter: RateLimiter = None  # type: ignore[assignment]
    auth_limiter: RateLimiter = None  # type: ignore[assignment]
    signin_guard: SigninGuard = None  # type: ignore[assignment]
    hasher: PasswordHasher = None  # type: ignore[assignment]
    sessions: Sessions = None  # type: ignore[assignment]
    service: object | None = None  # embedded: the engine service running now
    engine: RestartingEngine | None = None  # embedded: what restarts the engine service
    worker: object | None = None
    watch: ProjectionWatch = None  # type: ignore[assignment]
    supervisor: Supervisor = None  # type: ignore[assignment]
    health: HealthMonitor = None  # type: ignore[assignment]
    lock: DatabaseLock | None = None  # embedded: this database's lock (``dblock``)
    lock_guard: LockGuard | None = None
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    connections: ConnectionGuard = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        s = self.settings  # connections arrive once uvicorn starts: guarded from the start
        self.connections = ConnectionGuard(
            s.max_connections, s.max_connections_per_address, s.request_read_timeout_s,
            exempt=parse_trusted_proxies(s.trusted_proxies), metrics=self.metrics)

    @property
    def group(self) -> str:
        """This server's consumer group on the event stream."""
        return f"{SERVER_GROUP_PREFIX}{self.instance}"

    async def start(self) -> None:
        """Bring every part up (see the module docstring)."""
        s = self.settings
        if s.embedded:
            await self._hold_database_lock()
        await asyncio.to_thread(upgrade, s.database_url)
        self.db = make_engine(s.database_url, pool_size=10, max_overflow=20)
        if s.admin_email and s.admin_password:
            created = await asyncio.to_thread(create_admin, self.db, s.admin_email,
                                              s.admin_name, s.admin_password, s.bcrypt_rounds)
            if created:
                log.info("created the first-start admin %s", s.admin_email)
        if s.embedded:
            base = s.snapshot_path()
            self.bus = await open_journaled_bus(base.with_name(base.name + ".journal"),
                                                prefix=s.bus_prefix, shard=s.shard,
                                                instance=self.instance)
            await self._start_embedded(base)
        else:
            # No connection yet: a server starts (degraded) while Redis is down.
            self.bus = make_bus(s.redis_url, prefix=s.bus_prefix, shard=s.shard,
                                instance=self.instance)
        self.limiter = RateLimiter(s.rate_limit_per_s, s.rate_limit_burst)
        self._start_guards()
        await self._start_sessions()
        await self.hasher.warm()
        if s.read_model:
            self.readmodel = ReadModel(self.bus.events_stream(s.shard))
        self.replica = Replica(self.bus, self.db, group=self.group, shard=s.shard, hub=self.hub,
                               on_trade=self.metrics.trades.inc, follower=self.readmodel)
        await asyncio.to_thread(self.replica.seed)
        progress = ProjectionProgress(self.db, self.bus.events_stream(s.shard))
        self.watch = ProjectionWatch(progress, self.replica, s.worker_stall_s)
        self.barrier = ReadBarrier(self.bus, self.replica, progress, s.consistency_timeout_s,
                                   self.watch)
        self.gateway = Gateway(self.bus, timeout_s=s.request_timeout_s,
                               on_write=self.barrier.note_write,
                               observe=self.metrics.observe_command,
                               before_send=self.replica.unhurried)
        self._spawn("replica", self.replica.run(self.stopping, consumer=self.instance))
        # Serve once the replica follows the stream, unless the bus is down (then at once,
        # degraded: it heals by itself).
        await self.replica.wait_tried(5.0)
        self.supervisor = Supervisor(self.bus, self.replica.stream, self.watch,
                                     reap_after_s=s.reap_groups_after_s)
        self._spawn("supervisor", self.supervisor.run(self.stopping))
        self.health = HealthMonitor(probes(self), interval_s=s.health_interval_s,
                                    timeout_s=s.health_timeout_s)
        self._spawn("health", self.health.run(self.stopping))

    async def _hold_database_lock(self) -> None:
        """Take the database's lock (unless handed one) and keep it held while we run.

        Raises:
            DatabaseLocked: another embedded exchange runs on this database.
        """
        if self.lock is None:
            self.lock = await asyncio.to_thread(acquire_database_lock,
                                                self.settings.database_url)

        def lost(reason: str) -> None:  # two engines must never write one database
            log.critical("stopping the engine and the worker: %s", reason)
            self.stopping.set()

        guard = LockGuard(self.lock, self.settings.database_url, lost)
        self.lock_guard = guard
        self._spawn("lock", guard.run(self.stopping))

    async def _start_embedded(self, snapshot_dir: Path) -> None:
        from pmarket.runtime.service import EngineService
        from pmarket.worker import Worker

        def engine_service() -> EngineService:
            return EngineService(self.bus, snapshot_dir=snapshot_dir, shard=self.settings.shard)

        def current(service: EngineService) -> None:
            self.service = service

        self.engine = RestartingEngine(engine_service, current)  # restarted if it dies
        service = self.engine.service
        self._spawn("engine", self.engine.run(self.stopping))
        await service.ready.wait()
        events = self.bus.events_stream(self.settings.shard)
        first = await self.bus.read(events, "0-0", count=1)  # where the engine's log starts
        log_first_seq = decode_logged_delivery(first[0].id, first[0].payload).first_seq \
            if first else None
        try:
            await asyncio.to_thread(check_projection, self.db, events,
                                    service.engine.last_seq, str(snapshot_dir), log_first_seq)
        except ForeignDatabase:
            self.stopping.set()  # the engine writes nothing more; nothing was projected
            raise
        consumer = f"worker-{self.instance}"
        if self.settings.worker_process:
            # Its projection must not hold this process's GIL (see ``pmarket.worker.process``).
            self.worker = WorkerProcess(self.bus, self.settings.database_url,
                                        consumer=consumer, shard=self.settings.shard,
                                        block_ms=100)
        else:
            self.worker = Worker(self.bus, self.db, consumer=consumer, block_ms=100)
        self._spawn("worker", self.worker.run(self.stopping))
        if isinstance(self.worker, WorkerProcess):
            # Serve once it is up: reads after writes wait for the projection.
            ready = asyncio.ensure_future(self.worker.ready.wait())
            await asyncio.wait({ready, self.tasks["worker"]}, timeout=120,
                               return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()

    def _start_guards(self) -> None:
        """Per-address limits, sign-in lockouts, WebSocket limits and the password pool."""
        s = self.settings
        self.public_limiter = RateLimiter(s.public_rate_limit_per_s, s.public_rate_limit_burst)
        self.auth_limiter = RateLimiter(s.auth_rate_limit_per_s, s.auth_rate_limit_burst)
        self.signin_guard = SigninGuard(
            FailureThrottle(s.signin_free_failures, s.signin_lockout_s, s.signin_lockout_max_s),
            FailureThrottle(s.signin_address_free_failures, s.signin_lockout_s,
                            s.signin_lockout_max_s))
        self.hasher = PasswordHasher(s.bcrypt_rounds, s.bcrypt_threads, s.bcrypt_max_waiting)
        self.hub.limits = WsLimits(
            s.ws_max_channels, s.ws_max_connections_per_address,
            RateLimiter(s.ws_subscribe_per_s, s.ws_subscribe_burst), self.public_limiter,
            RateLimiter(s.ws_messages_per_s, s.ws_messages_burst))

    async def _start_sessions(self) -> None:
        """The credential cache, its synchronisation, and the closing of revoked users'
        WebSockets (``sessions``)."""
        s = self.settings
        self.sessions = Sessions(
            self.db, self.bus, jwt_secret=s.jwt_secret,
            key_secret=api_key_secret(s.jwt_secret, s.api_key_secret),
            embedded=s.embedded, sync_s=s.auth_sync_s, max_stale_s=s.auth_max_stale_s,
            cache_s=s.auth_cache_s, touch_s=s.api_key_touch_s)
        self.sessions.on_change = lambda users: self.hub.revoke(users, self.sessions.valid)
        await self.sessions.start()
        self._spawn("sessions", self.sessions.run(self.stopping))

    def _spawn(self, name: str, coro) -> None:
        task = asyncio.create_task(coro, name=f"pmarket-{name}")
        task.add_done_callback(lambda t: self._died(name, t))
        self.tasks[name] = task

    def _died(self, name: str, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None and not self.stopping.is_set():
            log.error("%s stopped with an error", name, exc_info=task.exception())

    async def stop(self) -> None:
        """Stop everything started, engine last so it snapshots what was applied."""
        self.stopping.set()
        for name in ("health", "sessions", "supervisor", "replica", "worker", "engine", "lock"):
            task = self.tasks.get(name)
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.delete_group(self.bus.events_stream(self.settings.shard),
                                            self.group)
            if self.supervisor is not None:
                await self.supervisor.release()
            await self.bus.close()
        if self.db is not None:
            self.db.dispose()
        if self.hasher is not None:
            self.hasher.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self.lock_guard is not None:  # it may hold a lock taken again
            self.lock_guard.lock.release()
        if self.lock is not None:
            self.lock.release()
        self.lock = None

    # --- health -----------------------------------------------------------------------

    def component_alive(self, name: str) -> bool | None:
        """True/False for a task this process runs; None if it runs elsewhere."""
        task = self.tasks.get(name)
        return None if task is None else not task.done()

    def worker_health(self) -> dict | None:
        """The ``worker`` component of ``/health`` when this process runs the worker."""
        alive = self.component_alive("worker")
        if alive is None:
            return None
        health = getattr(self.worker, "health", None)
        if health is not None and alive:
            return health()
        return {"status": "ok" if alive else "down",
                "detail": "embedded worker task" if alive else "the embedded worker stopped"}

    async def check_database(self) -> tuple[bool, str]:
        def ping() -> None:
            with self.db.connect() as conn:
                conn.execute(text("SELECT 1"))
        try:
            await asyncio.wait_for(asyncio.to_thread(ping), 2.0)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"[:200]
        return True, "ok"
