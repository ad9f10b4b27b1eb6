"""Passwords and tokens: bcrypt hashes and HS256 JWTs with a pinned algorithm.

Invariant: a token is accepted only if it is an HS256 JWT signed with this server's
secret, unexpired, and carries a subject and a known role; anything else (``alg: none``,
another algorithm, a wrong signature, a past ``exp``, missing claims) raises
``InvalidToken``. Password hashes never leave this module's callers' database rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import bcrypt
import jwt

ALGORITHM = "HS256"
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
    """

    id: int
    role: str


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


def create_token(subject: int, role: str, secret: str, ttl_s: int) -> str:
    """A signed token for ``subject`` in ``role``, expiring ``ttl_s`` seconds from now."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = int(time.time())
    claims = {"sub": str(subject), "role": role, "iat": now, "exp": now + ttl_s}
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


def _verify(token: str, secret: str) -> tuple[Principal, float]:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token algorithm {header.get('alg')!r} is not accepted")
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub", "role"]})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token has expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token is not valid: {exc}") from None
    role, subject = claims.get("role"), claims.get("sub")
    if role not in ROLES or not isinstance(subject, str) or not subject.isdigit():
        raise InvalidToken("token claims are malformed")
    try:
        exp = float(claims["exp"])
    except (TypeError, ValueError):
        raise InvalidToken("token claims are malformed") from None
    return Principal(int(subject), role), exp
