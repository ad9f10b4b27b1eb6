"""Passwords and tokens: bcrypt hashes and HS256 JWTs with a pinned algorithm.

Invariant: a token is accepted only if it is an HS256 JWT signed with this server's
secret whose every claim has exactly the type and range this server issues
(``check_claims``: an ASCII-digit subject within a positive BIGINT, a known role,
integer times, no unknown claim) and is unexpired; anything else (``alg: none``,
another algorithm, a wrong signature, a past ``exp``, a malformed or missing claim,
garbage) raises ``InvalidToken`` with a sentence saying which, never PyJWT's text.
Password hashes never leave this module's callers' database rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt
import jwt

log = logging.getLogger("pmarket.server.security")

ALGORITHM = "HS256"
HASHER_NICE = 10
"""How much lower than the server's the hashing threads' CPU priority is (Linux)."""
ROLES = ("user", "admin")
BCRYPT_MAX_BYTES = 72


class InvalidToken(Exception):
    """The bearer token cannot be trusted (reason in the message)."""


class PasswordTooLong(ValueError):
    """bcrypt only reads the first 72 bytes; longer passwords are refused, not truncated."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for.

    Attributes:
        id: the user's (or admin's) database id; a user's id is their engine user id.
        role: ``user`` or ``admin``.
        epoch: the user's session epoch the token was issued in (``sessions``).
        key_id: the API key's id when the caller used a key rather than a token.
        trade: False for a "read" API key: it may change nothing.
    """

    id: int
    role: str
    epoch: int = 0
    key_id: int | None = None
    trade: bool = True


def _password_bytes(password: str) -> bytes:
    data = password.encode("utf-8")
    if len(data) > BCRYPT_MAX_BYTES:
        raise PasswordTooLong(
            f"password is {len(data)} bytes long; at most {BCRYPT_MAX_BYTES} bytes are allowed")
    return data


def hash_password(password: str, rounds: int = 12) -> str:
    """The bcrypt hash of ``password``.

    Raises:
        PasswordTooLong: the UTF-8 password exceeds 72 bytes.
    """
    return bcrypt.hashpw(_password_bytes(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True if ``password`` matches ``password_hash`` (False for over-long passwords)."""
    try:
        return bcrypt.checkpw(_password_bytes(password), password_hash.encode("ascii"))
    except (PasswordTooLong, ValueError):
        return False


def _lower_priority() -> None:
    """Run in each hashing thread: lower its CPU priority by ``HASHER_NICE``.

    bcrypt releases the GIL and keeps a core busy for ~250 ms a check: a sign-in flood
    keeps the pool's thread running flat out, and on a small machine the event loop
    serving everyone else then gets half the CPU (measured: other users' read p99 and
    /health several times slower during 20 wrong-password sign-ins). A lower priority
    lets the loop run first; sign-ins take longer only while the machine is saturated.
    Linux only (there a thread has a priority of its own; elsewhere this call would
    lower the whole process): said in the log otherwise.
    """
    if not sys.platform.startswith("linux"):
        log.warning("password hashing runs at the server's CPU priority on %s: a sign-in "
                    "flood competes with requests for the CPU", sys.platform)
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                       min(19, os.getpriority(os.PRIO_PROCESS, 0) + HASHER_NICE))
    except OSError as exc:
        log.warning("could not lower the password hashing thread's priority (%s): a "
                    "sign-in flood competes with requests for the CPU", exc)


class HasherBusy(Exception):
    """Too many password hashes are waiting already; the caller should retry later."""


class PasswordHasher:
    """bcrypt off the event loop, on a bounded pool of its own.

    Hashing costs ~250 ms of CPU at cost 12. On the shared default executor a burst of
    sign-ins used to queue every database read behind it; here it has ``threads`` threads
    of its own (bcrypt releases the GIL while it works) at a lower CPU priority than the
    event loop's (``_lower_priority``), and at most ``max_waiting`` calls may wait for
    one — more raise ``HasherBusy`` at once instead of piling up.

    An unknown account is checked against a dummy hash of the same cost as real ones
    (``rounds``), so a sign-in takes as long whether or not the e-mail exists.

    Args:
        rounds: bcrypt cost of new hashes (and of the dummy hash).
        threads: threads hashing at once.
        max_waiting: calls allowed to wait for a thread.
    """

    def __init__(self, rounds: int = 12, threads: int = 1, max_waiting: int = 32):
        self.rounds = rounds
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="pmarket-bcrypt",
                                        initializer=_lower_priority)
        self._pending = 0
        self._dummy: str | None = None

    @property
    def pending(self) -> int:
        """Calls queued or running now."""
        return self._pending

    async def _run(self, fn, *args):
        if self._pending >= self.max_waiting:
            raise HasherBusy(f"{self._pending} password checks are waiting already")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    async def warm(self) -> None:
        """Make the dummy hash now, so the first unknown e-mail costs no more than later
        ones."""
        if self._dummy is None:
            self._dummy = await self._run(hash_password, "not a real password", self.rounds)

    async def hash(self, password: str) -> str:
        """The bcrypt hash of ``password`` at this hasher's cost.

        Raises:
            PasswordTooLong: over 72 bytes.
            HasherBusy: too many calls waiting.
        """
        return await self._run(hash_password, password, self.rounds)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True if ``password`` matches; with no hash (unknown account) it checks a dummy
        hash of the same cost and returns False.

        Raises:
            HasherBusy: too many calls waiting.
        """
        if password_hash is None:
            await self.warm()
            await self._run(verify_password, password, self._dummy)
            return False
        return await self._run(verify_password, password, password_hash)

    def close(self) -> None:
        """Stop the pool's threads (after the calls in flight)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def create_token(subject: int, role: str, secret: str, ttl_s: int, epoch: int = 0) -> str:
    """A signed token for ``subject`` in ``role``, expiring ``ttl_s`` seconds from now,
    issued in the user's session ``epoch`` (claim ``ep``)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = int(time.time())
    claims = {"sub": str(subject), "role": role, "iat": now, "exp": now + ttl_s,
              "ep": epoch}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_VERIFIED: dict[tuple[str, str], tuple[Principal, float]] = {}
_VERIFIED_MAX = 50_000


def decode_token(token: str, secret: str) -> Principal:
    """The principal a token names.

    A token verified once is remembered with its expiry (PyJWT costs ~120 µs a decode
    here, more than the rest of an order request's own work): later uses only check the
    expiry. Only valid tokens are remembered, keyed by token *and* secret.

    Raises:
        InvalidToken: wrong algorithm or signature, expired, or malformed claims.
    """
    key = (token, secret)
    known = _VERIFIED.get(key)
    if known is not None:
        if known[1] > time.time():
            return known[0]
        _VERIFIED.pop(key, None)
        raise InvalidToken("token has expired")
    principal, exp = _verify(token, secret)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[key] = (principal, exp)
    return principal


def token_expiry(token: str, secret: str) -> float:
    """When a token ``decode_token`` accepts expires (seconds since the epoch).

    Raises:
        InvalidToken: as ``decode_token``.
    """
    known = _VERIFIED.get((token, secret))
    return known[1] if known is not None else _verify(token, secret)[1]


MAX_SUBJECT = 2**63 - 1
"""The largest user id a token may name (a positive BIGINT)."""
MAX_TIMESTAMP_S = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest ``exp``/``iat`` (the API's timestamp range)."""
MAX_EPOCH = 2**62
CLOCK_SKEW_S = 60
"""How far in the future a token's ``iat`` may be (another server's clock)."""
CLAIMS = frozenset({"sub", "role", "exp", "iat", "ep"})
"""Every claim ``create_token`` writes: a token carrying any other is refused."""
_DIGITS = re.compile(r"[1-9][0-9]{0,18}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_TOKEN_CHARS = 4096
# PyJWT checks signature and header only; every claim is ours to check (below), exactly.
_DECODE_OPTIONS = {"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                   "verify_iat": False, "verify_aud": False, "verify_iss": False,
                   "verify_sub": False, "verify_jti": False, "require": []}


def _timestamp(claims: dict, name: str) -> int:
    value = claims[name]
    if type(value) is not int or not 0 <= value <= MAX_TIMESTAMP_S:
        raise InvalidToken(f"token claim {name!r} must be an integer number of seconds "
                           "from 1970 to 9999")
    return value


def check_claims(claims: object, now: float | None = None) -> tuple[Principal, float]:
    """The principal and expiry of a token's verified claims, each checked for its exact
    type and range: ``sub`` a string of ASCII digits naming 1 .. 2^63 - 1 (no sign,
    space or leading zero), ``role`` one of ``ROLES``, ``exp`` (required) and ``iat``
    integers within the API's timestamp range (``exp`` in the future, ``iat`` not more
    than ``CLOCK_SKEW_S`` ahead), ``ep`` an integer 0 .. 2^62; no other claim.

    Raises:
        InvalidToken: the first claim that breaks its rule (named), or expired.
    """
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token: its claims are not a JSON object")
    unknown = sorted(str(k)[:40] for k in claims if k not in CLAIMS)
    if unknown:
        raise InvalidToken(f"token carries a claim this server does not issue: {unknown[0]!r}")
    for name in ("sub", "role", "exp"):
        if name not in claims:
            raise InvalidToken(f"token has no {name!r} claim")
    subject, role = claims["sub"], claims["role"]
    if not isinstance(subject, str) or _DIGITS.fullmatch(subject) is None or \
            int(subject) > MAX_SUBJECT:
        raise InvalidToken("token claim 'sub' must be a user id: ASCII digits, "
                           f"1 to {MAX_SUBJECT}")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidToken(f"token claim 'role' must be one of {', '.join(ROLES)}")
    exp = _timestamp(claims, "exp")
    now = time.time() if now is None else now
    if "iat" in claims and _timestamp(claims, "iat") > now + CLOCK_SKEW_S:
        raise InvalidToken("token claim 'iat' lies in the future")
    epoch = claims.get("ep", 0)
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidToken(f"token claim 'ep' must be an integer from 0 to {MAX_EPOCH}")
    if exp <= now:
        raise InvalidToken("token has expired")
    return Principal(int(subject), role, epoch), float(exp)


def _verify(token: str, secret: str) -> tuple[Principal, float]:
    if len(token) > _MAX_TOKEN_CHARS or _TOKEN.fullmatch(token) is None:
        raise InvalidToken("malformed token: expected a JWT (three base64url parts "
                           "separated by dots) or an API key (pmk_...)")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token algorithm {str(header.get('alg'))[:20]!r} is not "
                               "accepted")
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options=_DECODE_OPTIONS)
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature is not valid") from None
    except jwt.PyJWTError:
        raise InvalidToken("malformed token: it does not decode as a signed JWT") from None
    return check_claims(claims)


API_KEY_PREFIX = "pmk_"
API_KEY_CHARS = 43  # token_urlsafe(32)
_API_KEY = re.compile(rf"{API_KEY_PREFIX}[A-Za-z0-9_-]{{{API_KEY_CHARS}}}")


def new_api_key() -> str:
    """A fresh API key: ``pmk_`` and 256 random bits (URL-safe base64)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(key: str, secret: bytes) -> str | None:
    """The stored form of ``key``: hex HMAC-SHA256 under the server's key secret, or
    None if ``key`` cannot be a key (prefix, length, alphabet), so junk costs no hashing
    and no database query.

    A keyed hash rather than bcrypt: keys are 256 random bits (nothing to brute-force),
    and they are checked on every request of the order path, where bcrypt's ~250 ms
    would be absurd; the HMAC costs ~1 µs, and a stolen table is useless without the
    secret.
    """
    if _API_KEY.fullmatch(key) is None:
        return None
    return hmac.new(secret, key.encode("ascii"), hashlib.sha256).hexdigest()


def api_key_secret(jwt_secret: str, configured: str | None) -> bytes:
    """The HMAC key of API-key hashes: ``PMARKET_API_KEY_SECRET`` if set, else derived
    from the JWT secret (domain-separated, so neither reveals the other)."""
    if configured:
        return configured.encode()
    return hmac.new(jwt_secret.encode(), b"pmarket api-key hashing", hashlib.sha256).digest()
