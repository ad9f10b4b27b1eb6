"""Who may use the exchange right now: sessions (tokens), disabled users and API keys.

``Sessions.authenticate`` is THE check of a credential — the FastAPI dependencies
(``deps``), the fast order and read paths (``fastpath``, ``readpath``) and the
WebSocket ``user`` channel all call it, so they accept and refuse exactly the same.
A credential is a user or admin JWT (``security.decode_token``) or an API key
(``pmk_...``, looked up by its HMAC, ``security.api_key_digest``). A user credential
is good only while, in this server's cache of the database:

* the user exists and is not disabled;
* a token's session epoch (claim ``ep``) is the user's current one — signing out
  everywhere and disabling move the epoch on;
* a key is not revoked; a "read" key may only read (``write`` requests: 403).

The cache answers the order path without any I/O (a dict lookup after the token's
cached signature check); a user or key seen for the first time, or not for
``cache_s``, is loaded from the database.

How a revocation reaches every server. Each change (sign-out-everywhere, disable,
enable, key revoked) is written with the next ``auth_seq`` (from the one-row
``auth_sequence`` table, whose row lock makes changes commit in ``auth_seq`` order).
Every server polls ``auth_seq > watermark`` every ``sync_s`` and applies what changed;
the server that made the change applies it before it answers, then appends a wake-up
to the bus stream ``{prefix}:auth``, which the others tail to poll at once. So a
revocation reaches other servers in milliseconds, within ``sync_s`` when the bus is
down (the database is the authority, the stream only a doorbell), and a server that
cannot poll the database for ``max_stale_s`` refuses user credentials (503
``auth_unavailable``) rather than trust a stale cache. The embedded exchange is the
only server of its database (``dblock``), so it applies every change itself and keeps
serving on its cache during a database outage (``/health`` shows the failing sync).

Invariant: a credential revoked on any server is refused everywhere within
``max_stale_s`` at worst — never silently later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, String, and_, bindparam, literal, or_, select, union_all, update

from pmarket.bus import Append, Bus
from pmarket.db import ApiKey, AuthSequence, User

from .errors import ApiError
from .security import InvalidToken, Principal, api_key_digest, decode_token, token_expiry

log = logging.getLogger("pmarket.server.sessions")

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NEGATIVE_MAX = 10_000  # unknown key digests remembered (junk keys cost no query)
_STREAM_TTL_MS = 24 * 3600 * 1000
_DIGESTS_MAX = 100_000  # keys in use whose HMAC is remembered
_MISSING_S = 1.0  # how long "no such user" is believed before reading again


def is_write(method: str) -> bool:
    """True for a request that may change state (anything but GET, HEAD, OPTIONS)."""
    return method not in _READ_METHODS


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, {"WWW-Authenticate": "Bearer"})


@dataclass(slots=True)
class UserState:
    """A user as far as credentials go. ``exists`` False: no such user (deleted)."""

    epoch: int
    disabled: bool
    seq: int
    loaded: float
    exists: bool = True


@dataclass(slots=True)
class KeyState:
    """An API key (by digest). ``id`` 0: no key has this digest."""

    id: int
    user_id: int
    trade: bool
    revoked: bool
    seq: int
    loaded: float
    principal: Principal | None = None  # made once: the order path asks per request


def next_auth_seq(conn) -> int:
    """Take the next ``auth_seq`` inside the caller's transaction (locks the row until
    it commits: see the module docstring). Call it before touching other rows, so every
    such transaction takes its locks in one order."""
    conn.execute(update(AuthSequence).where(AuthSequence.id == 1)
                 .values(value=AuthSequence.value + 1))
    return conn.execute(select(AuthSequence.value).where(AuthSequence.id == 1)).scalar_one()


class Sessions:
    """The credential cache of one server and its synchronisation (module docstring).

    Args:
        db: the database.
        bus: the bus (its ``{prefix}:auth`` stream carries wake-ups between servers).
        jwt_secret: the tokens' key.
        key_secret: the API keys' HMAC key (``security.api_key_secret``).
        embedded: the only server of its database (no stream, no stale refusal).
        sync_s: how often the database is polled for changes.
        max_stale_s: deployment: refuse user credentials once the last successful poll
            is this old.
        cache_s: a user or key is re-read from the database after this long.
        touch_s: how often the API keys' ``last_used_at`` is written (batched).
    """

    def __init__(self, db: Engine, bus: Bus, *, jwt_secret: str, key_secret: bytes,
                 embedded: bool, sync_s: float = 1.0, max_stale_s: float = 10.0,
                 cache_s: float = 300.0, touch_s: float = 60.0):
        self.db = db
        self.bus = bus
        self.jwt_secret = jwt_secret
        self.key_secret = key_secret
        self.embedded = embedded
        self.sync_s = sync_s
        self.max_stale_s = max_stale_s
        self.cache_s = cache_s
        self.touch_s = touch_s
        self.stream = f"{bus.keys.prefix}:auth"
        self.users: dict[int, UserState] = {}
        self.keys: dict[str, KeyState] = {}
        self.revoked_keys: set[int] = set()  # ids, for open WebSockets (``valid``)
        self._digests: dict[str, str] = {}  # key in use -> its HMAC
        self.touched: dict[int, float] = {}  # key id -> last use (epoch s), not yet written
        self.watermark = 0
        self.last_sync = time.monotonic()
        self.sync_error: str | None = None
        self.on_change: Callable[[set[int]], None] | None = None
        self._wake = asyncio.Event()

    # --- the check --------------------------------------------------------------------

    async def authenticate(self, credential: str, method: str = "GET") -> Principal:
        """The principal ``credential`` speaks for, if it is good right now.

        Args:
            credential: the bearer token or API key (without "Bearer ").
            method: the HTTP method (a WebSocket subscription reads: ``GET``).

        Raises:
            ApiError: 401 bad, expired or revoked; 403 a "read" key on a write;
                503 this server cannot vouch for its cache (or load from the database).
        """
        for _ in range(3):
            principal = self.check(credential, method)
            if principal is not None:
                return principal
            await self._load(credential)
        raise ApiError(503, "auth_unavailable", "credentials cannot be checked right now",
                       {"Retry-After": "1"})

    def expires_at(self, credential: str) -> float | None:
        """When ``credential`` (one ``authenticate`` accepted) stops working by itself:
        a token at its expiry (seconds since the epoch); an API key never (None), it
        works until deleted."""
        if credential.startswith("pmk_"):
            return None
        return token_expiry(credential, self.jwt_secret)

    def check(self, credential: str, method: str) -> Principal | None:
        """``authenticate`` from the cache alone: None when something must be loaded."""
        if credential.startswith("pmk_"):
            return self._check_key(credential, method)
        try:
            principal = decode_token(credential, self.jwt_secret)
        except InvalidToken as exc:
            raise unauthenticated(str(exc)) from None
        if principal.role != "user":
            return principal
        user = self._user(principal.id)
        if user is None:
            return None
        if not user.exists or user.disabled or user.epoch != principal.epoch:
            raise unauthenticated("token has been revoked (signed out or account disabled)")
        return principal

    def _check_key(self, key: str, method: str) -> Principal | None:
        digest = self._digests.get(key)
        if digest is None:
            digest = api_key_digest(key, self.key_secret)
            if digest is None:
                raise unauthenticated("API key is not valid")
        state = self.keys.get(digest)
        if state is None or (state.id and self._expired(state.loaded)):
            self._fresh()
            return None
        if not state.id or state.revoked:
            raise unauthenticated("API key is not valid or has been revoked")
        user = self._user(state.user_id)
        if user is None:
            return None
        if not user.exists or user.disabled:
            raise unauthenticated("API key's account is disabled")
        if not state.trade and is_write(method):
            raise ApiError(403, "forbidden", 'this API key has the "read" scope only')
        self.touched[state.id] = time.time()
        if state.principal is None:
            # Remember the HMAC of a key in use (~4 µs each time otherwise); the
            # revocation still shows, as it is looked up by digest every time.
            if len(self._digests) >= _DIGESTS_MAX:
                self._digests.clear()
            self._digests[key] = digest
            state.principal = Principal(state.user_id, "user", 0, state.id, state.trade)
        return state.principal

    def _user(self, user_id: int) -> UserState | None:
        self._fresh()
        user = self.users.get(user_id)
        if user is None or self._expired(user.loaded) or (
                not user.exists and time.monotonic() - user.loaded > _MISSING_S):
            return None
        return user

    def _expired(self, loaded: float) -> bool:
        return time.monotonic() - loaded > self.cache_s

    def _fresh(self) -> None:
        """Refuse (503) when this server may have missed revocations (deployment)."""
        if not self.embedded and time.monotonic() - self.last_sync > self.max_stale_s:
            raise ApiError(503, "auth_unavailable",
                           "this server cannot check for revoked credentials right now; "
                           "retry in a moment", {"Retry-After": "1"})

    def valid(self, principal: Principal) -> bool:
        """Whether a principal accepted earlier still is (an open WebSocket's)."""
        if principal.role != "user":
            return True
        user = self.users.get(principal.id)
        if user is not None and (not user.exists or user.disabled):
            return False
        if principal.key_id is not None:
            return principal.key_id not in self.revoked_keys
        return user is None or user.epoch == principal.epoch

    # --- loading ----------------------------------------------------------------------

    async def _load(self, credential: str) -> None:
        now = time.monotonic()
        if credential.startswith("pmk_"):
            digest = api_key_digest(credential, self.key_secret) or ""
            key_row, user_row = await asyncio.to_thread(self._read_key, digest)
            if key_row is None:
                if len(self.keys) >= _NEGATIVE_MAX:
                    self.keys = {d: k for d, k in self.keys.items() if k.id}
                self._store_key(digest, KeyState(0, 0, False, True, 0, now))
                return
            self._store_key(digest, KeyState(key_row.id, key_row.user_id,
                                             "trade" in key_row.scopes.split(","),
                                             key_row.revoked_at is not None,
                                             key_row.auth_seq, now))
            user_id = key_row.user_id
        else:
            user_id = decode_token(credential, self.jwt_secret).id
            user_row = await asyncio.to_thread(self._read_user, user_id)
        if user_row is None:  # kept briefly: the id may be taken again (SQLite)
            self._store_user(user_id, UserState(0, True, -1, now, exists=False))
        else:
            self._store_user(user_id, UserState(user_row.session_epoch,
                                                user_row.disabled_at is not None,
                                                user_row.auth_seq, now))

    def _read_user(self, user_id: int):
        with self.db.connect() as conn:
            return conn.execute(select(User.session_epoch, User.disabled_at, User.auth_seq)
                                .where(User.id == user_id)).first()

    def _read_key(self, digest: str):
        with self.db.connect() as conn:
            key = conn.execute(select(ApiKey.id, ApiKey.user_id, ApiKey.scopes,
                                      ApiKey.revoked_at, ApiKey.auth_seq)
                               .where(ApiKey.key_hash == digest)).first()
            if key is None:
                return None, None
            user = conn.execute(select(User.session_epoch, User.disabled_at, User.auth_seq)
                                .where(User.id == key.user_id)).first()
            return key, user

    def _store_user(self, user_id: int, state: UserState) -> None:
        """Keep the newer of what is cached and ``state`` (by ``auth_seq``): a load that
        read the database before a poll applied a later change must not undo it."""
        known = self.users.get(user_id)
        if known is None or state.seq >= known.seq:
            self.users[user_id] = state
        else:
            known.loaded = state.loaded

    def _store_key(self, digest: str, state: KeyState) -> None:
        known = self.keys.get(digest)
        if known is None or state.seq >= known.seq:
            self.keys[digest] = state
            if state.revoked and state.id:
                self.revoked_keys.add(state.id)
        else:
            known.loaded = state.loaded

    # --- synchronisation --------------------------------------------------------------

    async def start(self) -> None:
        """Begin at the database's current ``auth_seq`` (the cache is empty)."""
        def current() -> int:
            with self.db.connect() as conn:
                return conn.execute(select(AuthSequence.value)
                                    .where(AuthSequence.id == 1)).scalar_one()

        self.watermark = await asyncio.to_thread(current)
        self.last_sync = time.monotonic()

    async def refresh(self) -> None:
        """Apply every change committed since the last poll (raises on a database
        error; ``run`` logs it)."""
        rows = await asyncio.to_thread(self._changes, self.watermark)
        now = time.monotonic()
        changed: set[int] = set()
        for kind, row_id, value, flag, seq, digest, scopes in rows:
            if kind == "u":
                self._store_user(row_id, UserState(value, bool(flag), seq, now))
                changed.add(row_id)
            else:
                self._store_key(digest, KeyState(row_id, value, "trade" in scopes.split(","),
                                                 bool(flag), seq, now))
                changed.add(value)
            self.watermark = max(self.watermark, seq)
        self.last_sync = now
        if self.sync_error is not None:
            log.warning("credential sync works again")
            self.sync_error = None
        if changed and self.on_change is not None:
            self.on_change(changed)

    def _changes(self, watermark: int) -> list[tuple]:
        """Users and keys changed after ``watermark``, in ONE statement (one snapshot:
        see the module docstring on why the watermark is then safe)."""
        users = select(literal("u", String).label("kind"), User.id, User.session_epoch,
                       User.disabled_at.is_not(None), User.auth_seq,
                       literal(None, String), literal(None, String)
                       ).where(User.auth_seq > watermark)
        keys = select(literal("k", String), ApiKey.id, ApiKey.user_id,
                      ApiKey.revoked_at.is_not(None), ApiKey.auth_seq, ApiKey.key_hash,
                      ApiKey.scopes).where(ApiKey.auth_seq > watermark)
        with self.db.connect() as conn:
            return [tuple(r) for r in conn.execute(union_all(users, keys))]

    async def changed(self) -> None:
        """Called after this server committed a change: apply it here before answering,
        then ring the other servers' doorbell (best effort: they poll anyway)."""
        await self.refresh()
        if self.embedded:
            return
        try:
            await self.bus.write([Append(self.stream, [b"changed"], _STREAM_TTL_MS)])
        except Exception as exc:
            log.warning("could not announce a credential change on the bus (%s); other "
                        "servers will see it within %.1f s", type(exc).__name__, self.sync_s)

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll every ``sync_s`` (at once when woken), write ``last_used_at`` every
        ``touch_s``; deployment: tail the bus stream for wake-ups."""
        tail = None if self.embedded else asyncio.create_task(self._tail(stopping))
        flushed = time.monotonic()
        try:
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.sync_s)
                self._wake.clear()
                await self._sync_once()
                if time.monotonic() - flushed >= self.touch_s:
                    flushed = time.monotonic()
                    await self.flush_touches()
        finally:
            if tail is not None:
                tail.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await tail
            with contextlib.suppress(Exception):
                await self.flush_touches()

    async def _sync_once(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
            if self.sync_error is None:
                log.error("credential sync failed (%s); %s", error,
                          "serving from the cache (embedded: every change passes here)"
                          if self.embedded else
                          f"user credentials are refused after {self.max_stale_s:.0f} s "
                          "without a sync")
            self.sync_error = error

    async def _tail(self, stopping: asyncio.Event) -> None:
        after = None
        while not stopping.is_set():
            try:
                if after is None:
                    after = await self.bus.last_id(self.stream)
                messages = await self.bus.tail("auth", self.stream, after, block_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                after = None  # the doorbell is down: the poll still runs every sync_s
                await asyncio.sleep(1.0)
                continue
            if messages:
                after = messages[-1].id
                self._wake.set()

    async def flush_touches(self) -> None:
        """Write the API keys' pending ``last_used_at`` in one batch."""
        if not self.touched:
            return
        pending, self.touched = self.touched, {}

        def write() -> None:
            params = [{"key_id": k, "t": datetime.fromtimestamp(t, UTC)}
                      for k, t in pending.items()]
            stmt = (update(ApiKey).where(and_(
                ApiKey.id == bindparam("key_id"),
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < bindparam("t"))))
                .values(last_used_at=bindparam("t")))
            with self.db.begin() as conn:
                conn.execute(stmt, params)

        try:
            await asyncio.to_thread(write)
        except Exception as exc:
            for key_id, t in pending.items():  # keep them for the next flush
                self.touched[key_id] = max(t, self.touched.get(key_id, 0.0))
            log.warning("could not write API keys' last use (%s)", type(exc).__name__)

    def health(self) -> dict:
        """The ``auth`` component of ``/health``."""
        age = time.monotonic() - self.last_sync
        if self.sync_error is None:
            return {"status": "ok", "detail": f"synced {age:.1f} s ago at auth_seq "
                    f"{self.watermark}"}
        refusing = not self.embedded and age > self.max_stale_s
        return {"status": "down" if refusing else "degraded",
                "detail": f"last sync {age:.1f} s ago; {self.sync_error}" +
                ("; refusing user credentials" if refusing else "")}
