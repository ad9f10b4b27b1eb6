"""Sign-up and sign-in of users, admin sign-in, sign-out everywhere, and ``/me``.

Users and admins are rows the server writes itself; a user's database id is their
engine user id. Passwords are hashed and checked on the runtime's own bounded bcrypt
pool (``security.PasswordHasher``), never on the pool that serves database reads. A
sign-in first passes the address's rate limit (``AuthLimited``) and the lockouts of
``throttle.SigninGuard`` (per account and per address), which refuse it before any
bcrypt work.

A user's token carries their session epoch (``sessions``): ``/auth/signout-all`` moves
the epoch on, so every token issued before stops working at once (API keys are not
sessions: they stay until deleted). A disabled user's correct password gets 403
``account_disabled``, never a token.

Invariant: a response carries a token and public fields only — never the password hash —
and a wrong email and a wrong password are indistinguishable: same answer, same bcrypt
cost (a dummy hash of the configured cost), same lockouts.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from pmarket import api
from pmarket.db import Admin, User

from ..deps import AuthLimited, CurrentPrincipal, RuntimeDep, SessionUser, client_address
from ..errors import ApiError, not_found
from ..exactjson import ExactJSONRoute
from ..passwords import password_problem
from ..security import HasherBusy, create_token
from ..sessions import next_auth_seq
from ..throttle import retry_after
from .common import ERRORS, ok, read

router = APIRouter(route_class=ExactJSONRoute, tags=["auth"],
                   responses={**ERRORS, 503: ERRORS[429]})


def _busy() -> ApiError:
    return ApiError(503, "unavailable",
                    "the server is busy checking passwords; retry in a moment",
                    {"Retry-After": "1"})


def _public(row) -> dict:
    return {"id": row.id, "email": row.email, "name": row.name}


@router.post("/auth/signup", status_code=201, response_model=api.Auth,
             dependencies=[AuthLimited])
async def signup(body: api.SignUp, runtime: RuntimeDep):
    """Create a user account and return a token for it (422 ``weak_password`` says why a
    password is refused: shorter than 10, common, a run, or containing the e-mail's
    name)."""
    email = body.email.strip().lower()
    problem = password_problem(body.password, email)
    if problem is not None:
        raise ApiError(422, "weak_password", problem)
    try:
        hashed = await runtime.hasher.hash(body.password)
    except HasherBusy:
        raise _busy() from None

    def run() -> int:
        with runtime.db.begin() as conn:
            # An admin's address is taken too: nobody may sign up as the operator.
            if conn.execute(select(Admin.id).where(Admin.email == email)).first():
                raise IntegrityError("email of an admin", None, Exception())
            return conn.execute(insert(User).values(email=email, name=body.name,
                                                    password_hash=hashed)
                                .returning(User.id)).scalar_one()

    try:
        user_id = await asyncio.to_thread(run)
    except IntegrityError:
        raise ApiError(409, "email_taken", "an account with this email exists") from None
    token = create_token(user_id, "user", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s)
    return ok({"token": token, "user": {"id": user_id, "email": email, "name": body.name}},
              201)


def _signin_columns(table) -> list:
    columns = [table.id, table.email, table.name, table.password_hash]
    if table is User:  # a user's session: its epoch, and whether it may have one
        columns += [User.session_epoch, User.disabled_at]
    return columns


async def _signin(runtime, request: Request, table, role: str, email: str, password: str):
    email = email.strip().lower()
    account, address = f"{role}:{email}", client_address(request)
    wait = runtime.signin_guard.attempt(account, address)
    if wait:
        runtime.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited",
                       "too many failed sign-ins; wait before trying again",
                       {"Retry-After": retry_after(wait)})
    try:
        row = await read(runtime, lambda conn: conn.execute(
            select(*_signin_columns(table)).where(table.email == email)).first(),
            consistent=False)
        valid = await runtime.hasher.verify(password, row.password_hash if row else None)
    except BaseException as exc:
        # Never checked (database outage, hasher busy, cancelled): not a failed guess.
        runtime.signin_guard.withdraw(account, address)
        if isinstance(exc, HasherBusy):
            raise _busy() from None
        raise
    if row is None or not valid:
        raise ApiError(401, "invalid_credentials", "email or password is wrong")
    runtime.signin_guard.succeeded(account, address)
    return row


@router.post("/auth/signin", response_model=api.Auth, dependencies=[AuthLimited])
async def signin(body: api.SignIn, request: Request, runtime: RuntimeDep):
    """Exchange a user's email and password for a token."""
    row = await _signin(runtime, request, User, "user", body.email, body.password)
    if row.disabled_at is not None:
        raise ApiError(403, "account_disabled", "this account is disabled")
    token = create_token(row.id, "user", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s, row.session_epoch)
    return ok({"token": token, "user": _public(row)})


@router.post("/auth/signout-all", status_code=204, response_class=Response)
async def signout_all(user: SessionUser, runtime: RuntimeDep):
    """End every session of the caller: all their tokens (this one too) stop working at
    once, on every server. API keys are not sessions: delete them one by one."""
    def run() -> None:
        with runtime.db.begin() as conn:
            conn.execute(update(User).where(User.id == user.id).values(
                session_epoch=User.session_epoch + 1, auth_seq=next_auth_seq(conn)))

    await asyncio.to_thread(run)
    await runtime.sessions.changed()
    return Response(status_code=204)


@router.post("/auth/admin/signin", response_model=api.AdminAuth, dependencies=[AuthLimited])
async def admin_signin(body: api.SignIn, request: Request, runtime: RuntimeDep):
    """Exchange an admin's email and password for an admin token."""
    row = await _signin(runtime, request, Admin, "admin", body.email, body.password)
    token = create_token(row.id, "admin", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s)
    return ok({"token": token, "admin": _public(row)})


@router.get("/me", response_model=api.Me)
async def me(principal: CurrentPrincipal, runtime: RuntimeDep):
    """Who the token belongs to."""
    table = User if principal.role == "user" else Admin
    row = await read(runtime, lambda conn: conn.execute(
        select(table.id, table.email, table.name).where(table.id == principal.id)).first(),
        consistent=False)
    if row is None:
        raise not_found("account")
    return ok({**_public(row), "role": principal.role})


__all__ = ["router"]
