"""FastAPI dependencies: the runtime, the caller, rate limits and ownership.

``CurrentUser`` / ``CurrentAdmin`` accept only a valid credential of that role (401
without or with a bad, expired or revoked token or API key, 403 with a token of the
other role or a "read" key on a write) and charge the caller's rate limit (429); the
check itself is ``sessions.Sessions.authenticate``, shared with the fast paths and the
WebSocket. ``SessionUser`` is a user who signed in (a token, not an API key): only
they manage keys and sessions. ``PublicLimited`` and ``AuthLimited`` charge the client
address instead (public market data; sign-up and sign-in). ``OwnedOrder`` loads an
order of the caller or answers 404 — also when the order exists but belongs to someone
else, so its existence is never revealed.

Invariant: every route that touches an account depends on one of these; no handler
reads a user id from the request body.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from pmarket.db import Order

from .clientaddr import scope_address
from .errors import ApiError, not_found
from .params import PathId
from .ratelimit import RateLimiter
from .runtime import Runtime
from .security import Principal
from .sessions import unauthenticated

_BEARER = "bearer "
_BEARER_BYTES = b"bearer "


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _principal(request: Request, runtime: Runtime) -> Principal:
    header = request.headers.get("authorization", "")
    if not header[:len(_BEARER)].lower() == _BEARER:
        raise unauthenticated("missing bearer token")
    return await runtime.sessions.authenticate(header[len(_BEARER):].strip(" \t"),
                                               request.method)


async def asgi_user(scope, runtime: Runtime) -> Principal | None:
    """The caller of an ASGI request (``fastpath``, ``readpath``) if it carries exactly
    one good user credential for this method, else None: the request then goes to
    FastAPI, whose dependencies give the exact error."""
    header = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            if header is not None:
                return None  # several: let FastAPI decide
            header = value
    if header is None or header[:7].lower() != _BEARER_BYTES:
        return None
    try:
        principal = await runtime.sessions.authenticate(
            header[7:].decode("latin-1").strip(" \t"), scope["method"])
    except Exception:  # refused, or an outage while loading: FastAPI answers the same
        return None
    return principal if principal.role == "user" else None


def _charge(runtime: Runtime, key: object, limiter: RateLimiter | None = None) -> None:
    limiter = limiter or runtime.limiter
    wait = limiter.allow(key)
    if wait:
        runtime.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited", "too many requests; slow down",
                       {"Retry-After": limiter.retry_after(wait)})


def client_address(request: Request) -> str:
    """The client's address: the TCP peer, or what a trusted proxy forwarded
    (``clientaddr``)."""
    return scope_address(request.scope)


async def rate_limit_public(request: Request, runtime: RuntimeDep) -> None:
    """Charge the client address for a public market-data request."""
    _charge(runtime, client_address(request), runtime.public_limiter)


async def rate_limit_auth(request: Request, runtime: RuntimeDep) -> None:
    """Charge the client address for a sign-up or sign-in."""
    _charge(runtime, client_address(request), runtime.auth_limiter)


async def current_user(request: Request, runtime: RuntimeDep) -> Principal:
    principal = await _principal(request, runtime)
    if principal.role != "user":
        raise ApiError(403, "forbidden", "this route needs a user token")
    _charge(runtime, ("user", principal.id))
    return principal


async def current_admin(request: Request, runtime: RuntimeDep) -> Principal:
    principal = await _principal(request, runtime)
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this route needs an admin token")
    _charge(runtime, ("admin", principal.id))
    return principal


async def current_principal(request: Request, runtime: RuntimeDep) -> Principal:
    principal = await _principal(request, runtime)
    _charge(runtime, (principal.role, principal.id))
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentAdmin = Annotated[Principal, Depends(current_admin)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def session_user(user: CurrentUser) -> Principal:
    """A user who signed in with a password: an API key may not create or revoke keys
    nor end sessions (a leaked key must not be able to mint the next one)."""
    if user.key_id is not None:
        raise ApiError(403, "forbidden", "this route needs a signed-in user's token, "
                       "not an API key")
    return user


SessionUser = Annotated[Principal, Depends(session_user)]
PublicLimited = Depends(rate_limit_public)
"""Per-address limit of public market data (``PMARKET_PUBLIC_RATE_LIMIT_*``)."""
AuthLimited = Depends(rate_limit_auth)
"""Per-address limit of sign-ups and sign-ins (``PMARKET_AUTH_RATE_LIMIT_*``)."""

OrderId = PathId


async def owned_order(order_id: int, user_id: int, runtime: Runtime) -> Any:
    """The user's order row (after earlier writes are projected), else 404."""
    await runtime.barrier.for_database()

    def load() -> Any:
        with runtime.db.connect() as conn:
            return conn.execute(select(Order).where(Order.id == order_id)).first()

    row = await asyncio.to_thread(load)
    if row is None or row.user_id != user_id:
        raise not_found(f"order {order_id}")
    return row


async def _owned_order_dep(order_id: OrderId, user: CurrentUser, runtime: RuntimeDep) -> Any:
    return await owned_order(order_id, user.id, runtime)


OwnedOrder = Annotated[Any, Depends(_owned_order_dep)]
