"""``pmarket bench faults``: kill -9 under load, restart, and count what was lost.

``run(options)`` starts real processes, funds ``clients`` traders (``faultload.Trader``:
threads placing and cancelling orders over HTTP and remembering every acknowledgement),
and for ``rounds`` rounds lets them trade for ``load_s`` seconds, then kills with
SIGKILL and restarts:

* **embedded** — ``pmarket serve`` on SQLite (or a PostgreSQL schema), in a process
  group of its own: odd rounds kill the main process alone (its worker child must die
  with it: a survivor counts as an orphan), even rounds the whole group. Recovery time:
  kill to ``/health`` 200 (engine, worker process and database up).
* **deployment** — ``pmarket engine``, ``pmarket worker`` and ``pmarket serve`` on Redis
  (a throwaway key prefix) and PostgreSQL (a throwaway schema): every round kills the
  worker, and with ``kill_engine`` every second round the engine too. Recovery time:
  kill to the worker having stored everything the engine had logged when it restarted
  (and the engine answering).

Then the traders stop and the figures are made: every acknowledged order read back by
its owner (missing must be 0; fields and acknowledged cancels as sent; no client order
id stored twice, no order id acknowledged twice), ``/admin/audit`` (ok, deposits exactly
the acknowledged ones), and the engine's own state — its snapshot after a clean stop —
against the database (``pmarket.db.reconcile``) and against each trader's ``/balance``.
Nothing is left behind: the processes are stopped (their groups killed), the keys and
schema dropped, the working directory removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa

from .faultload import Account, Trader, verify
from .services import ThrowawayDatabase, delete_keys

ADMIN_EMAIL = "faults-admin@example.com"
ADMIN_PASSWORD = "faults admin password"
FUNDS = 100_000  # dollars deposited per trader
SCALE = 10_000  # units per dollar
RECOVER_TIMEOUT_S = 180.0
CLEAN_EXITS = (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM it handled


@dataclass
class Options:
    """What to run."""

    mode: str = "embedded"  # or "deployment"
    rounds: int = 10
    clients: int = 8
    load_s: float = 3.0
    redis_url: str | None = None
    database_url: str | None = None
    kill_engine: bool = False
    seed: int = 1


@dataclass
class Round:
    """One kill and restart."""

    number: int
    killed: str
    acknowledged: int  # orders acknowledged so far (all traders)
    recover_s: float
    orphan: bool = False  # embedded: the worker child outlived its killed parent


@dataclass
class FaultResult:
    """Figures of a run; ``ok`` when nothing acknowledged was lost or doubled."""

    mode: str
    clients: int
    rounds: list[Round] = field(default_factory=list)
    acknowledged: int = 0
    cancels: int = 0
    resent: int = 0
    missing: int = 0
    duplicated: int = 0
    mismatched: int = 0
    balances_checked: int = 0
    balance_mismatches: int = 0
    reconcile_differences: int = 0
    audit_ok: bool = False
    audit_exact: bool = False
    orphans: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.missing == self.duplicated == self.mismatched == 0
                and self.balance_mismatches == self.reconcile_differences == 0
                and self.audit_ok and self.audit_exact and self.orphans == 0
                and self.acknowledged > 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from pmarket.cli import main; main()", *args]


class Proc:
    """A ``pmarket`` command in a process group of its own, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict, workdir: Path):
        self.name, self.args, self.env, self.workdir = name, args, env, workdir
        self.log_path = workdir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(_cli(*self.args), env=self.env, cwd=self.workdir,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def kill9(self, group: bool = False) -> None:
        """SIGKILL the process (``group``: its whole process group) and reap it."""
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.popen.pid, signal.SIGKILL)
            else:
                self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def terminate(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (the clean stop), wait; then make sure its group is gone."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _gone(pid: int, timeout_s: float) -> bool:
    """Whether process ``pid`` ended (or is a zombie) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            if stat[stat.rindex(b")") + 2:].startswith(b"Z"):
                return True
        except FileNotFoundError:
            return True
        except OSError:  # no /proc: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def wait_healthy(base: str, timeout_s: float = RECOVER_TIMEOUT_S,
                 proc: Proc | None = None) -> httpx.Response:
    """Poll ``/health`` until 200; the answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(base + "/health", timeout=2.0)
            if r.status_code == 200:
                return r
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} not healthy within {timeout_s:.0f}s")
        time.sleep(0.02)


def stored_position(database_url: str) -> int:
    """The worker's committed position (command seq) in the database."""
    from pmarket.db import ConsumerPosition, make_engine

    db = make_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as conn:
            return conn.execute(sa.select(sa.func.max(ConsumerPosition.last_seq))
                                ).scalar() or 0
    finally:
        db.dispose()


def wait_stored(database_url: str, seq: int, timeout_s: float = RECOVER_TIMEOUT_S) -> None:
    """Poll until the worker has stored everything up to ``seq``."""
    deadline = time.monotonic() + timeout_s
    while stored_position(database_url) < seq:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not reach seq {seq} within {timeout_s:.0f}s")
        time.sleep(0.05)


class Embedded:
    """``pmarket serve`` alone: the whole exchange in one process (and its worker)."""

    def __init__(self, options: Options, workdir: Path, env: dict, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.database_url = env["PMARKET_DATABASE_URL"]
        self.snapshots = Path(env["PMARKET_SNAPSHOT_DIR"])
        self.server = Proc("serve", ["serve", "--port", str(port), "--no-access-log",
                                     "--log-level", "warning"], env, workdir)
        self.procs = [self.server]

    def start(self) -> None:
        self.server.start()
        wait_healthy(self.base, proc=self.server)

    def kill_and_restart(self, number: int) -> Round:
        group = number % 2 == 0
        worker = wait_healthy(self.base).json()["components"].get("worker", {}).get("pid")
        started = time.monotonic()
        self.server.kill9(group=group)
        orphan = worker is not None and not _gone(worker, 5.0)
        self.server.start()
        wait_healthy(self.base, proc=self.server)
        return Round(number, "server and worker (process group)" if group
                     else "server (main process alone)", 0, time.monotonic() - started,
                     orphan)

    def engine_state(self):
        """Stop cleanly (the engine writes its snapshot), start again, let the worker
        store everything up to the snapshot; the engine's state."""
        from pmarket.runtime.recovery import read_snapshot, snapshot_path

        if self.server.terminate() not in CLEAN_EXITS:
            raise RuntimeError(f"serve did not stop cleanly:\n{self.server.tail()}")
        snapshot = read_snapshot(snapshot_path(self.snapshots, "main"))
        self.server.start()
        wait_healthy(self.base, proc=self.server)
        wait_stored(self.database_url, snapshot.engine.last_seq)
        return snapshot.engine


class Deployment:
    """``pmarket engine`` + ``pmarket worker`` + ``pmarket serve`` on Redis."""

    def __init__(self, options: Options, workdir: Path, env: dict, port: int):
        self.options = options
        self.base = f"http://127.0.0.1:{port}"
        self.database_url = env["PMARKET_DATABASE_URL"]
        self.redis_url = env["PMARKET_REDIS_URL"]
        self.prefix = env["PMARKET_REDIS_PREFIX"]
        self.snapshots = workdir / "snapshots"
        quiet = ["--log-level", "warning"]
        self.engine = Proc("engine", ["engine", "--snapshot-dir", str(self.snapshots),
                                      "--lease-ms", "1000", *quiet], env, workdir)
        self.worker = Proc("worker", ["worker", "--database-url", self.database_url, *quiet],
                           env, workdir)
        self.server = Proc("serve", ["serve", "--port", str(port), "--no-access-log",
                                     *quiet], env, workdir)
        self.procs = [self.server, self.worker, self.engine]

    def start(self) -> None:
        from pmarket.db import upgrade

        upgrade(self.database_url)
        for proc in (self.engine, self.worker, self.server):
            proc.start()
        wait_healthy(self.base, proc=self.server)

    def _logged_seq(self) -> int:
        """The seq of the newest delivery in the event stream."""
        import redis

        from pmarket.bus import StreamKeys
        from pmarket.runtime.eventlog import decode_delivery

        client = redis.Redis.from_url(self.redis_url)
        try:
            newest = client.xrevrange(StreamKeys(self.prefix).events("main"), count=1)
        finally:
            client.close()
        if not newest:
            return 0
        entry_id, fields = newest[0]
        return decode_delivery(fields[b"p"], entry_id.decode()).last_seq

    def kill_and_restart(self, number: int) -> Round:
        engine_too = self.options.kill_engine and number % 2 == 0
        started = time.monotonic()
        self.worker.kill9()
        if engine_too:
            self.engine.kill9()
            self.engine.start()
        self.worker.start()
        wait_healthy(self.base)  # the engine answers
        wait_stored(self.database_url, self._logged_seq())
        return Round(number, "worker and engine" if engine_too else "worker", 0,
                     time.monotonic() - started)

    def engine_state(self):
        """Stop the engine cleanly (it writes its snapshot) and let the worker store
        everything up to it; the engine's state."""
        from pmarket.runtime.recovery import read_snapshot, snapshot_path

        if self.engine.terminate() not in CLEAN_EXITS:
            raise RuntimeError(f"the engine did not stop cleanly:\n{self.engine.tail()}")
        snapshot = read_snapshot(snapshot_path(self.snapshots, "main"))
        wait_stored(self.database_url, snapshot.engine.last_seq)
        return snapshot.engine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(base: str, clients: int) -> tuple[list[int], list[Account], dict]:
    """Two markets and ``clients`` funded traders; the admin's headers."""
    with httpx.Client(base_url=base, timeout=60) as h:
        r = h.post("/auth/admin/signin", json={"email": ADMIN_EMAIL,
                                               "password": ADMIN_PASSWORD})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        markets = []
        for title in ("Fault market A", "Fault market B"):
            r = h.post("/admin/events", json={"title": title}, headers=admin)
            r.raise_for_status()
            markets.append(r.json()["outcomes"][0]["market_id"])
        accounts = []
        for i in range(clients):
            r = h.post("/auth/signup", json={
                "email": f"fault-{i}-{uuid.uuid4().hex[:6]}@example.com",
                "name": f"trader {i}", "password": "fault trader password"})
            r.raise_for_status()
            account = Account(r.json()["user"]["id"], r.json()["token"])
            h.post("/onramp", json={"amount": str(FUNDS)},
                   headers=account.headers).raise_for_status()
            accounts.append(account)
    return markets, accounts, admin


def _units(text: str) -> int:
    return int(Decimal(text) * SCALE)


def _check_state(result: FaultResult, cluster, traders: list[Trader], base: str,
                 admin: dict) -> None:
    """Audit, then the engine's state against the database and each /balance."""
    from pmarket.db import make_engine
    from pmarket.db.reconcile import reconcile

    with httpx.Client(base_url=base, timeout=60) as h:
        audit = h.get("/admin/audit", headers=admin).json()
        result.audit_ok = bool(audit.get("ok"))
        result.audit_exact = (_units(audit["deposits"]) == len(traders) * FUNDS * SCALE
                              and _units(audit["difference"]) == 0)
        if not (result.audit_ok and result.audit_exact):
            result.problems.append(f"audit: {audit}")
        engine = cluster.engine_state()
        db = make_engine(cluster.database_url)
        try:
            with db.connect() as conn:
                differences = reconcile(engine, conn)
        finally:
            db.dispose()
        result.reconcile_differences = len(differences)
        result.problems += [f"reconcile: {d}" for d in differences[:10]]
        for trader in traders:
            account = trader.account
            shown = h.get("/balance", headers=account.headers).json()
            result.balances_checked += 1
            if (_units(shown["available"]), _units(shown["reserved"])) != \
                    engine.balance(account.user_id):
                result.balance_mismatches += 1
                result.problems.append(f"user {account.user_id}: /balance {shown}, engine "
                                       f"{engine.balance(account.user_id)}")


def _environment(options: Options, workdir: Path, database_url: str, prefix: str) -> dict:
    env = {**os.environ, "PMARKET_JWT_SECRET": secrets.token_urlsafe(48),
           "PMARKET_ADMIN_EMAIL": ADMIN_EMAIL, "PMARKET_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "PMARKET_BCRYPT_ROUNDS": "4", "PMARKET_RATE_LIMIT_PER_S": "1000000",
           "PMARKET_RATE_LIMIT_BURST": "1000000", "PMARKET_LOG_REQUESTS": "0",
           # Every trader signs up and reads from 127.0.0.1: no per-address throttling.
           "PMARKET_AUTH_RATE_LIMIT_PER_S": "1000000", "PMARKET_AUTH_RATE_LIMIT_BURST": "1000000",
           "PMARKET_PUBLIC_RATE_LIMIT_PER_S": "1000000",
           "PMARKET_PUBLIC_RATE_LIMIT_BURST": "1000000",
           "PMARKET_DATABASE_URL": database_url,
           "PMARKET_SNAPSHOT_DIR": str(workdir / "snapshots"), "PYTHONUNBUFFERED": "1"}
    env.pop("PMARKET_REDIS_URL", None)
    if options.mode == "deployment":
        env["PMARKET_REDIS_URL"] = options.redis_url
        env["PMARKET_REDIS_PREFIX"] = prefix
    return env


def run(options: Options, progress=lambda text: None) -> FaultResult:
    """Run the rounds (see the module docstring) and return the figures.

    Raises:
        ValueError: an unknown mode, or a deployment without a Redis URL.
        RuntimeError: a process did not come back (its log tail is in the message).
    """
    if options.mode not in ("embedded", "deployment"):
        raise ValueError(f"unknown mode {options.mode!r} (embedded or deployment)")
    if options.mode == "deployment" and not options.redis_url:
        raise ValueError("the deployment mode needs a Redis URL")
    result = FaultResult(options.mode, options.clients)
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pmarket-faults-") as tmp, \
            ThrowawayDatabase(options.database_url) as database_url:
        workdir = Path(tmp)
        env = _environment(options, workdir, database_url, prefix)
        kind = Embedded if options.mode == "embedded" else Deployment
        cluster = kind(options, workdir, env, _free_port())
        stop = threading.Event()
        traders: list[Trader] = []
        try:
            cluster.start()
            markets, accounts, admin = _setup(cluster.base, options.clients)
            traders = [Trader(i, cluster.base, a, markets, options.seed * 1000 + i, stop)
                       for i, a in enumerate(accounts)]
            for trader in traders:
                trader.start()
            for number in range(1, options.rounds + 1):
                _load(traders, options.load_s)
                one = cluster.kill_and_restart(number)
                one.acknowledged = sum(len(t.log.orders) for t in traders)
                result.rounds.append(one)
                result.orphans += one.orphan
                progress(f"round {number}: killed {one.killed}, back in "
                         f"{one.recover_s:.2f}s")
            _load(traders, options.load_s)  # it works after the last restart too
            stop.set()
            for trader in traders:
                trader.join(RECOVER_TIMEOUT_S)
            _raise_trader_error(traders)
            progress("reading everything back")
            with httpx.Client(base_url=cluster.base, timeout=60) as h:
                found = verify(h, traders)
            result.acknowledged, result.cancels = found.acknowledged, found.cancels
            result.missing, result.mismatched = found.missing, found.mismatched
            result.duplicated = found.duplicated
            result.problems += found.problems
            result.resent = sum(t.log.resent for t in traders)
            _check_state(result, cluster, traders, cluster.base, admin)
        except BaseException as exc:
            logs = "\n".join(f"--- {p.name}.log\n{p.tail()}" for p in cluster.procs)
            raise RuntimeError(f"fault run failed: {exc}\n{logs}") from exc
        finally:
            stop.set()
            for proc in cluster.procs:
                proc.terminate()
            if options.mode == "deployment":
                delete_keys(options.redis_url, prefix)
    result.seconds = time.monotonic() - began
    return result


def _load(traders: list[Trader], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _raise_trader_error(traders)
        time.sleep(0.05)


def _raise_trader_error(traders: list[Trader]) -> None:
    for trader in traders:
        if trader.error is not None:
            raise RuntimeError(f"trader {trader.index} failed: {trader.error!r}")
