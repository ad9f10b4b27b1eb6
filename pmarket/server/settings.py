"""The server's configuration: one object, read from flags and ``PMARKET_*`` variables.

``Settings.load(**overrides)`` reads the environment, applies explicit overrides (the
``pmarket serve`` flags, tests) and resolves the JWT secret. Invariant: a ``Settings``
object always holds a usable secret — an explicit secret that is weak (short, or a known
placeholder such as ``changethis``), or a weak first-start admin password, is refused
with ``WeakSecret`` before anything starts, and an absent JWT secret is replaced by a
random secret persisted beside the database so tokens survive a restart.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from pmarket.db import default_database_url
from pmarket.engine import units
from pmarket.engine.limits import account_problem

from .clientaddr import parse_trusted_proxies
from .passwords import password_problem

PLACEHOLDER_SECRETS = frozenset({
    "changethis", "changeme", "secret", "password", "jwt-secret", "development", "test",
})
MIN_SECRET_LENGTH = 32
SECRET_FILE_SUFFIX = ".jwt-secret"


class WeakSecret(ValueError):
    """A configured secret is too weak: the JWT secret (too short or a known
    placeholder) or the first-start admin's password (see ``passwords``)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_seconds(name: str, default: float) -> float:
    """A duration above 0 from the environment (a clear error otherwise)."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
    return seconds


def _env_count(name: str, default: int) -> int:
    """A whole number of at least 0 from the environment (a clear error otherwise)."""
    value = os.environ.get(name)
    if not value:
        return default
    if not value.strip().isdigit():
        raise ValueError(f"{name} must be a whole number of at least 0, not {value!r}")
    return int(value)


def _env_money(name: str, default: int) -> int:
    """Dollars from the environment ("10000000", "0" for none) as units."""
    value = os.environ.get(name)
    if not value:
        return default
    return 0 if value.strip() in ("0", "0.0") else units.parse_amount(value, name)


def _env_fee_rate(name: str) -> int:
    """A fee rate from the environment ("0.07") as units; unset: 0 (no fees)."""
    value = os.environ.get(name) or "0"
    try:
        return units.parse_fee_rate(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start.

    Attributes:
        database_url: SQLAlchemy URL (default: ``pmarket.db`` in the working directory).
        redis_url: Redis URL, or None for the embedded exchange (in-process bus, engine
            service and worker inside the server process).
        jwt_secret: HS256 key of the tokens ("" until ``load`` resolves it).
        jwt_ttl_s: token lifetime in seconds.
        admin_email: first-start admin created if no admin has this email.
        admin_password: that admin's password.
        admin_name: that admin's display name.
        bus_prefix: key prefix of the bus streams (several deployments on one Redis).
        shard: the engine shard this server sends commands to.
        snapshot_dir: where the embedded engine keeps its snapshots (default: beside
            the database).
        rate_limit_per_s: sustained requests per second allowed per user.
        rate_limit_burst: requests a user may send at once before being limited.
        public_rate_limit_per_s: sustained public market-data requests per second per
            client address.
        public_rate_limit_burst: public requests an address may send at once.
        auth_rate_limit_per_s: sustained sign-ups and sign-ins per second per address.
        auth_rate_limit_burst: sign-ups and sign-ins an address may send at once.
        signin_free_failures: failed sign-ins of one account before lockouts start.
        signin_address_free_failures: failed sign-ins from one address (any accounts)
            before that address is locked out.
        signin_lockout_s: the first lockout; it doubles with each further failure.
        signin_lockout_max_s: the longest lockout.
        ws_max_channels: channels one WebSocket connection may hold.
        ws_max_connections_per_address: open WebSocket connections per client address.
        ws_subscribe_per_s: channels per second an address may subscribe to.
        ws_subscribe_burst: channels an address may subscribe to at once.
        ws_messages_per_s: WebSocket frames per second an address may send; beyond
            that its connections are read no further until a frame is due again.
        ws_messages_burst: frames an address may send at once.
        max_body_bytes: largest request body accepted (413 above it).
        max_connections: open client connections in all (0: the file-descriptor limit
            less a reserve, ``connections``); more are answered 503 and closed.
        max_connections_per_address: open HTTP connections per peer address (trusted
            proxies exempt); more are answered 503 and closed.
        request_read_timeout_s: the time a client has to send a whole request, from the
            connection's opening or the request's first byte (408 and closed past it).
        max_user_balance: the most cash (units) one account may hold after a deposit; a
            deposit past it is refused (409 ``balance_limit``); 0: no per-account limit.
            The exchange-wide ``units.MAX_TOTAL_MONEY`` stays as an overflow guard far
            above it, so one account cannot starve everyone else's deposits.
        max_open_orders: the most open orders one account may have; a placement at
            that many is refused (409 ``open_order_limit``); 0: no limit. Bounds what one
            account holds in memory and what one cancel-all must undo.
        request_timeout_s: how long a request waits for the engine's reply.
        consistency_timeout_s: how long a read waits for the projection of earlier writes.
        bcrypt_rounds: bcrypt work factor of new password hashes.
        bcrypt_threads: threads of the password-hashing pool (apart from the pool that
            runs database reads).
        bcrypt_max_waiting: password checks allowed to wait for that pool; more are
            refused at once (503 with Retry-After).
        log_requests: log one structured line per request.
        worker_process: embedded only — run the database worker in a child process
            (``pmarket.worker.process``) rather than as a task of this one
            (``PMARKET_WORKER_PROCESS=0``).
        reap_groups_after_s: a server's liveness mark lives this long after its last
            renewal; another server's group on the event stream is removed once its mark
            expired and its consumers were idle this long (0: never remove any).
        worker_stall_s: the database projection counts as stalled (``/health`` worker
            down, reads after writes refused at once) once it has been behind the event
            stream this long without advancing.
        health_interval_s: rest between two attempts of each of ``/health``'s background
            checks (``health``).
        health_timeout_s: longest attempt of a ``/health`` check: a dependency that dies
            or stalls shows within ``health_interval_s + health_timeout_s``, and a
            result older than that plus 1 s is reported stale (``down``).
        api_key_secret: HMAC key of the stored API-key hashes (``PMARKET_API_KEY_SECRET``;
            unset: derived from the JWT secret, so rotating that one voids every key).
        auth_sync_s: how often each server polls the database for revoked credentials
            (the worst delay when the bus's wake-up does not arrive).
        auth_max_stale_s: deployment: a server that could not poll for this long refuses
            user credentials (503 ``auth_unavailable``) until it can.
        auth_cache_s: a user's or API key's state is re-read from the database after
            this long (catches rows removed by hand).
        api_key_touch_s: how often the API keys' ``last_used_at`` is written (batched).
        read_model: answer balances, positions, open orders, events and markets from the
            in-memory read model (``readmodel``); ``PMARKET_READ_MODEL=0`` reads them from
            the database instead.
        fee_rate: the taker fee rate (units: 700 is 7%) of an event created without one
            (``PMARKET_FEE_RATE``, a decimal from 0 to 0.25; default 0: no fees).
        trusted_proxies: reverse proxies (addresses or CIDR networks) whose
            ``X-Forwarded-For`` names the client (``PMARKET_TRUSTED_PROXIES``); empty
            (the default): the client is the connection's peer and forwarded headers
            are ignored (``clientaddr``).
    """

    database_url: str = ""
    redis_url: str | None = None
    jwt_secret: str = ""
    jwt_ttl_s: int = 24 * 3600
    admin_email: str | None = None
    admin_password: str | None = None
    admin_name: str = "Administrator"
    bus_prefix: str = "pmarket"
    shard: str = "main"
    snapshot_dir: str | None = None
    rate_limit_per_s: float = 500.0
    rate_limit_burst: int = 1000
    public_rate_limit_per_s: float = 100.0
    public_rate_limit_burst: int = 200
    auth_rate_limit_per_s: float = 2.0
    auth_rate_limit_burst: int = 20
    signin_free_failures: int = 5
    signin_address_free_failures: int = 50
    signin_lockout_s: float = 1.0
    signin_lockout_max_s: float = 900.0
    ws_max_channels: int = 200
    ws_max_connections_per_address: int = 50
    ws_subscribe_per_s: float = 20.0
    ws_subscribe_burst: int = 400
    ws_messages_per_s: float = 50.0
    ws_messages_burst: int = 200
    max_body_bytes: int = 64 * 1024
    max_connections: int = 0
    max_connections_per_address: int = 256
    request_read_timeout_s: float = 10.0
    max_user_balance: int = 10_000_000 * units.SCALE
    max_open_orders: int = 10_000
    request_timeout_s: float = 10.0
    consistency_timeout_s: float = 5.0
    bcrypt_rounds: int = 12
    bcrypt_threads: int = 1
    bcrypt_max_waiting: int = 32
    log_requests: bool = True
    worker_process: bool = True
    reap_groups_after_s: float = 60.0
    worker_stall_s: float = 10.0
    health_interval_s: float = 1.0
    health_timeout_s: float = 2.0
    read_model: bool = True
    api_key_secret: str | None = None
    auth_sync_s: float = 1.0
    auth_max_stale_s: float = 10.0
    auth_cache_s: float = 300.0
    api_key_touch_s: float = 60.0
    fee_rate: int = 0
    trusted_proxies: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        """True when engine and worker run inside the server process."""
        return self.redis_url is None

    @classmethod
    def load(cls, **overrides) -> Settings:
        """Settings from ``PMARKET_*`` variables, then ``overrides`` (None values ignored).

        Raises:
            WeakSecret: the JWT secret given is too short or a placeholder.
        """
        env = os.environ
        settings = cls(
            database_url=env.get("PMARKET_DATABASE_URL") or default_database_url(),
            redis_url=env.get("PMARKET_REDIS_URL") or None,
            jwt_secret=env.get("PMARKET_JWT_SECRET", ""),
            jwt_ttl_s=_env_int("PMARKET_JWT_TTL_S", 24 * 3600),
            admin_email=env.get("PMARKET_ADMIN_EMAIL") or None,
            admin_password=env.get("PMARKET_ADMIN_PASSWORD") or None,
            admin_name=env.get("PMARKET_ADMIN_NAME") or "Administrator",
            bus_prefix=env.get("PMARKET_REDIS_PREFIX") or "pmarket",
            shard=env.get("PMARKET_SHARD") or "main",
            snapshot_dir=env.get("PMARKET_SNAPSHOT_DIR") or None,
            rate_limit_per_s=_env_float("PMARKET_RATE_LIMIT_PER_S", 500.0),
            rate_limit_burst=_env_int("PMARKET_RATE_LIMIT_BURST", 1000),
            public_rate_limit_per_s=_env_float("PMARKET_PUBLIC_RATE_LIMIT_PER_S", 100.0),
            public_rate_limit_burst=_env_int("PMARKET_PUBLIC_RATE_LIMIT_BURST", 200),
            auth_rate_limit_per_s=_env_float("PMARKET_AUTH_RATE_LIMIT_PER_S", 2.0),
            auth_rate_limit_burst=_env_int("PMARKET_AUTH_RATE_LIMIT_BURST", 20),
            signin_free_failures=_env_int("PMARKET_SIGNIN_FREE_FAILURES", 5),
            signin_address_free_failures=_env_int("PMARKET_SIGNIN_ADDRESS_FREE_FAILURES", 50),
            signin_lockout_s=_env_float("PMARKET_SIGNIN_LOCKOUT_S", 1.0),
            signin_lockout_max_s=_env_float("PMARKET_SIGNIN_LOCKOUT_MAX_S", 900.0),
            ws_max_channels=_env_int("PMARKET_WS_MAX_CHANNELS", 200),
            ws_max_connections_per_address=_env_int("PMARKET_WS_MAX_CONNECTIONS_PER_IP", 50),
            ws_subscribe_per_s=_env_float("PMARKET_WS_SUBSCRIBE_PER_S", 20.0),
            ws_subscribe_burst=_env_int("PMARKET_WS_SUBSCRIBE_BURST", 400),
            ws_messages_per_s=_env_float("PMARKET_WS_MESSAGES_PER_S", 50.0),
            ws_messages_burst=_env_int("PMARKET_WS_MESSAGES_BURST", 200),
            max_body_bytes=_env_int("PMARKET_MAX_BODY_BYTES", 64 * 1024),
            max_connections=_env_count("PMARKET_MAX_CONNECTIONS", 0),
            max_connections_per_address=_env_count("PMARKET_MAX_CONNECTIONS_PER_IP", 256),
            request_read_timeout_s=_env_seconds("PMARKET_REQUEST_READ_TIMEOUT_S", 10.0),
            max_user_balance=_env_money("PMARKET_MAX_USER_BALANCE", 10_000_000 * units.SCALE),
            max_open_orders=_env_count("PMARKET_MAX_OPEN_ORDERS", 10_000),
            bcrypt_rounds=_env_int("PMARKET_BCRYPT_ROUNDS", 12),
            bcrypt_threads=_env_int("PMARKET_BCRYPT_THREADS", 1),
            bcrypt_max_waiting=_env_int("PMARKET_BCRYPT_MAX_WAITING", 32),
            log_requests=env.get("PMARKET_LOG_REQUESTS", "1") != "0",
            worker_process=env.get("PMARKET_WORKER_PROCESS", "1") != "0",
            reap_groups_after_s=_env_float("PMARKET_REAP_GROUPS_AFTER_S", 60.0),
            worker_stall_s=_env_float("PMARKET_WORKER_STALL_S", 10.0),
            health_interval_s=_env_seconds("PMARKET_HEALTH_INTERVAL_S", 1.0),
            health_timeout_s=_env_seconds("PMARKET_HEALTH_TIMEOUT_S", 2.0),
            read_model=env.get("PMARKET_READ_MODEL", "1") != "0",
            api_key_secret=env.get("PMARKET_API_KEY_SECRET") or None,
            auth_sync_s=_env_float("PMARKET_AUTH_SYNC_S", 1.0),
            auth_max_stale_s=_env_float("PMARKET_AUTH_MAX_STALE_S", 10.0),
            auth_cache_s=_env_float("PMARKET_AUTH_CACHE_S", 300.0),
            api_key_touch_s=_env_float("PMARKET_API_KEY_TOUCH_S", 60.0),
            fee_rate=_env_fee_rate("PMARKET_FEE_RATE"),
            trusted_proxies=tuple(str(n) for n in parse_trusted_proxies(
                env.get("PMARKET_TRUSTED_PROXIES"))),
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        return settings.with_secret()

    def with_secret(self) -> Settings:
        """These settings with a checked (or generated and persisted) JWT secret, and a
        checked first-start admin password.

        Raises:
            WeakSecret: the JWT secret or the admin password is too weak.
        """
        if self.admin_email and self.admin_password:
            problem = account_problem(self.admin_email, self.admin_name, self.admin_password)
            if problem is not None:  # the API's input limits, as for any account
                raise WeakSecret(f"the first-start admin's {problem}")
            problem = password_problem(self.admin_password, self.admin_email)
            if problem is not None:
                raise WeakSecret(f"PMARKET_ADMIN_PASSWORD: {problem}")
        if self.api_key_secret:
            check_secret(self.api_key_secret, "PMARKET_API_KEY_SECRET")
        if self.jwt_secret:
            check_secret(self.jwt_secret)
            return self
        return replace(self, jwt_secret=persisted_secret(self.secret_file()))

    def secret_file(self) -> Path:
        """Where a generated secret is kept: beside the SQLite file, else in the cwd."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).with_name(Path(url.database).name + SECRET_FILE_SUFFIX)
        return Path.cwd() / f"pmarket{SECRET_FILE_SUFFIX}"

    def snapshot_path(self) -> Path:
        """Directory of the embedded engine's snapshots."""
        if self.snapshot_dir:
            return Path(self.snapshot_dir)
        return self.secret_file().with_name(self.secret_file().name.replace(
            SECRET_FILE_SUFFIX, ".snapshots"))


def check_secret(secret: str, name: str = "PMARKET_JWT_SECRET") -> None:
    """Refuse a secret a stranger could guess.

    Raises:
        WeakSecret: shorter than ``MIN_SECRET_LENGTH`` or a known placeholder.
    """
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        raise WeakSecret(f"{name} is a placeholder; set a random secret "
                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < 8:
        raise WeakSecret(f"{name} must be at least {MIN_SECRET_LENGTH} "
                         "characters of random text")


def persisted_secret(path: Path) -> str:
    """The secret stored at ``path``, created (mode 0600) with a random value if absent."""
    if path.exists():
        secret = path.read_text().strip()
        check_secret(secret)
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
