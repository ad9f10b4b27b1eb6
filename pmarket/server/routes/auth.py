"""Sign-up and sign-in of users, admin sign-in, and ``/me``.

Users and admins are rows the server writes itself; a user's database id is their
engine user id. Invariant: a response carries a token and public fields only — never
the password hash — and a wrong email and a wrong password are indistinguishable.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from pmarket.db import Admin, User

from ..deps import AddressLimited, CurrentPrincipal, RuntimeDep
from ..errors import ApiError, not_found
from ..schemas import AdminAuthOut, AuthOut, MeOut, SignIn, SignUp
from ..security import create_token, hash_password, verify_password
from .common import ERRORS, ok, read

router = APIRouter(tags=["auth"], responses=ERRORS)

# Verifying against a real hash when the email is unknown keeps both failures equally slow.
_DUMMY_HASH = hash_password("not a real password", 4)


def _public(row) -> dict:
    return {"id": row.id, "email": row.email, "name": row.name}


@router.post("/auth/signup", status_code=201, response_model=AuthOut,
             dependencies=[AddressLimited])
async def signup(body: SignUp, runtime: RuntimeDep):
    """Create a user account and return a token for it."""
    email = body.email.strip().lower()
    hashed = await asyncio.to_thread(hash_password, body.password,
                                     runtime.settings.bcrypt_rounds)

    def insert_user(conn) -> int:
        return conn.execute(insert(User).values(email=email, name=body.name,
                                                password_hash=hashed)
                            .returning(User.id)).scalar_one()

    def run() -> int:
        with runtime.db.begin() as conn:
            return insert_user(conn)

    try:
        user_id = await asyncio.to_thread(run)
    except IntegrityError:
        raise ApiError(409, "email_taken", "an account with this email exists") from None
    token = create_token(user_id, "user", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s)
    return ok({"token": token, "user": {"id": user_id, "email": email, "name": body.name}},
              201)


async def _signin(runtime, table, email: str, password: str):
    email = email.strip().lower()
    row = await read(runtime, lambda conn: conn.execute(
        select(table.id, table.email, table.name, table.password_hash)
        .where(table.email == email)).first(), consistent=False)
    valid = await asyncio.to_thread(verify_password, password,
                                    row.password_hash if row else _DUMMY_HASH)
    if row is None or not valid:
        raise ApiError(401, "invalid_credentials", "email or password is wrong")
    return row


@router.post("/auth/signin", response_model=AuthOut, dependencies=[AddressLimited])
async def signin(body: SignIn, runtime: RuntimeDep):
    """Exchange a user's email and password for a token."""
    row = await _signin(runtime, User, body.email, body.password)
    token = create_token(row.id, "user", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s)
    return ok({"token": token, "user": _public(row)})


@router.post("/auth/admin/signin", response_model=AdminAuthOut, dependencies=[AddressLimited])
async def admin_signin(body: SignIn, runtime: RuntimeDep):
    """Exchange an admin's email and password for an admin token."""
    row = await _signin(runtime, Admin, body.email, body.password)
    token = create_token(row.id, "admin", runtime.settings.jwt_secret,
                         runtime.settings.jwt_ttl_s)
    return ok({"token": token, "admin": _public(row)})


@router.get("/me", response_model=MeOut)
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
