"""API keys: a user creates, lists and revokes keys for their bots.

A key (``pmk_`` and 256 random bits) is shown once, at creation; the database keeps
only its HMAC-SHA256 under the server's key secret (``security.api_key_digest``), so
a stolen table opens nothing. A key works wherever a user token does (checked by
``sessions.Sessions``); a "read" key may only read. Creating and revoking keys needs a
signed-in user's token (``SessionUser``): a leaked key cannot mint its successor.
``last_used_at`` is written in batches (``Sessions.flush_touches``), not per request;
this server's uses not yet written are merged into the listing.

Invariant: at most ``MAX_KEYS`` unrevoked keys per user; a revoked key is refused by
this server before ``DELETE`` answers, and by every other server within the credential
sync bound (``sessions``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from sqlalchemy import func, insert, select, update

from pmarket import api
from pmarket.db import ApiKey, User

from .. import views
from ..deps import CurrentUser, RuntimeDep, SessionUser
from ..errors import ApiError, not_found
from ..exactjson import ExactJSONRoute
from ..params import PathId
from ..security import api_key_digest, new_api_key
from ..sessions import next_auth_seq
from .common import ERRORS, PageParams, ok, page, read

router = APIRouter(route_class=ExactJSONRoute, tags=["api keys"], responses=ERRORS)

MAX_KEYS = 20
KeyId = PathId


def _scopes(requested: list[str]) -> list[str]:
    """``["read"]`` or ``["read", "trade"]`` (422 for anything else)."""
    chosen = set(requested)
    if chosen not in ({"read"}, {"read", "trade"}):
        raise ApiError(422, "invalid_field",
                       'scopes: give ["read"] or ["read", "trade"]')
    return ["read", "trade"] if "trade" in chosen else ["read"]


@router.post("/api-keys", status_code=201, response_model=api.ApiKeyCreated)
async def create_key(body: api.ApiKeyCreate, user: SessionUser, runtime: RuntimeDep):
    """Create a key; its secret (``key``) is in this answer only (409 past 20 keys)."""
    scopes = _scopes(body.scopes)
    key = new_api_key()
    digest = api_key_digest(key, runtime.sessions.key_secret)
    now = datetime.now(UTC)

    def run() -> int | None:
        with runtime.db.begin() as conn:
            # The user's row lock serialises their creations (PostgreSQL; SQLite
            # serialises writers anyway), so two at once cannot pass the count.
            conn.execute(select(User.id).where(User.id == user.id).with_for_update())
            count = conn.execute(select(func.count()).select_from(ApiKey).where(
                ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))).scalar_one()
            if count >= MAX_KEYS:
                return None
            return conn.execute(insert(ApiKey).values(
                user_id=user.id, name=body.name, scopes=",".join(scopes), key_hash=digest,
                created_at=now).returning(ApiKey.id)).scalar_one()

    key_id = await asyncio.to_thread(run)
    if key_id is None:
        raise ApiError(409, "too_many_api_keys",
                       f"at most {MAX_KEYS} API keys per user; delete one first")
    return ok({"id": key_id, "name": body.name, "scopes": scopes, "key": key,
               "created_at": views.iso(now)}, 201)


@router.get("/api-keys", response_model=api.Page[api.ApiKey])
async def list_keys(user: CurrentUser, runtime: RuntimeDep, paging: PageParams):
    """The caller's keys that are not revoked, oldest first (never their secret)."""
    def query(conn):
        where = (ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        total = conn.execute(select(func.count()).select_from(ApiKey).where(*where)
                             ).scalar_one()
        rows = conn.execute(select(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.created_at,
                                   ApiKey.last_used_at).where(*where).order_by(ApiKey.id)
                            .limit(paging.limit).offset(paging.offset)).all()
        return total, rows

    total, rows = await read(runtime, query, consistent=False)
    pending = runtime.sessions.touched
    items = []
    for r in rows:
        used = r.last_used_at
        if r.id in pending:
            recent = datetime.fromtimestamp(pending[r.id], UTC)
            used = recent if used is None or recent > used else used
        items.append({"id": r.id, "name": r.name, "scopes": r.scopes.split(","),
                      "created_at": views.iso(r.created_at), "last_used_at": views.iso(used)})
    return ok(page(items, total))


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response)
async def delete_key(key_id: KeyId, user: SessionUser, runtime: RuntimeDep):
    """Revoke a key: it stops working at once (404 if it is not the caller's)."""
    def run() -> bool:
        with runtime.db.begin() as conn:
            seq = next_auth_seq(conn)
            done = conn.execute(update(ApiKey).where(
                ApiKey.id == key_id, ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC), auth_seq=seq)).rowcount
            return bool(done)  # none: a skipped auth_seq value, harmless

    if not await asyncio.to_thread(run):
        raise not_found(f"API key {key_id}")
    await runtime.sessions.changed()
    return Response(status_code=204)


__all__ = ["router"]
