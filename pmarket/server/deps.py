"""FastAPI dependencies: the runtime, the caller, rate limits and ownership.

``CurrentUser`` / ``CurrentAdmin`` accept only a valid token of that role (401 without
or with a bad token, 403 with a token of the other role) and charge the caller's rate
limit (429). ``PublicLimited`` and ``AuthLimited`` charge the client address instead
(public market data; sign-up and sign-in). ``OwnedOrder`` loads an order of the caller
or answers 404 — also when the order exists but belongs to someone else, so its
existence is never revealed.

Invariant: every route that touches an account depends on one of these; no handler
reads a user id from the request body.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy import select

from pmarket.db import Order

from .errors import ApiError, not_found
from .ratelimit import RateLimiter
from .runtime import Runtime
from .security import InvalidToken, Principal, decode_token

_BEARER = "bearer "


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, {"WWW-Authenticate": "Bearer"})


def _principal(request: Request, runtime: Runtime) -> Principal:
    header = request.headers.get("authorization", "")
    if not header[:len(_BEARER)].lower() == _BEARER:
        raise _unauthenticated("missing bearer token")
    try:
        return decode_token(header[len(_BEARER):].strip(), runtime.settings.jwt_secret)
    except InvalidToken as exc:
        raise _unauthenticated(str(exc)) from None


def _charge(runtime: Runtime, key: object, limiter: RateLimiter | None = None) -> None:
    limiter = limiter or runtime.limiter
    wait = limiter.allow(key)
    if wait:
        runtime.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited", "too many requests; slow down",
                       {"Retry-After": limiter.retry_after(wait)})


def client_address(request: Request) -> str:
    """The client's address (uvicorn puts a trusted proxy's X-Forwarded-For there)."""
    return request.client.host if request.client else "unknown"


async def rate_limit_public(request: Request, runtime: RuntimeDep) -> None:
    """Charge the client address for a public market-data request."""
    _charge(runtime, client_address(request), runtime.public_limiter)


async def rate_limit_auth(request: Request, runtime: RuntimeDep) -> None:
    """Charge the client address for a sign-up or sign-in."""
    _charge(runtime, client_address(request), runtime.auth_limiter)


async def current_user(request: Request, runtime: RuntimeDep) -> Principal:
    principal = _principal(request, runtime)
    if principal.role != "user":
        raise ApiError(403, "forbidden", "this route needs a user token")
    _charge(runtime, ("user", principal.id))
    return principal


async def current_admin(request: Request, runtime: RuntimeDep) -> Principal:
    principal = _principal(request, runtime)
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this route needs an admin token")
    _charge(runtime, ("admin", principal.id))
    return principal


async def current_principal(request: Request, runtime: RuntimeDep) -> Principal:
    principal = _principal(request, runtime)
    _charge(runtime, (principal.role, principal.id))
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
CurrentAdmin = Annotated[Principal, Depends(current_admin)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
PublicLimited = Depends(rate_limit_public)
"""Per-address limit of public market data (``PMARKET_PUBLIC_RATE_LIMIT_*``)."""
AuthLimited = Depends(rate_limit_auth)
"""Per-address limit of sign-ups and sign-ins (``PMARKET_AUTH_RATE_LIMIT_*``)."""

OrderId = Annotated[int, Path(ge=1, le=2**62)]


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
