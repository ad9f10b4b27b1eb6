"""Helpers shared by the route modules: paging, database reads, ids and responses.

Invariant: every database read goes through ``read``, which first waits for this
server's earlier writes to be projected (``consistency.ReadBarrier``) and runs the query
off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from sqlalchemy.orm import Session

from pmarket import api

from ..errors import JSON
from ..params import MAX_LIMIT, Limit, Offset, QueryId
from ..runtime import Runtime

__all__ = ["MAX_LIMIT", "QueryId"]  # re-exported for the route modules

T = TypeVar("T")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": api.Error} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)}
"""Documented error responses of every route (503: an outage, with ``Retry-After``)."""


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int


async def paging(limit: Limit = 50, offset: Offset = 0) -> Paging:
    return Paging(limit, offset)


PageParams = Annotated[Paging, Depends(paging)]


async def read(runtime: Runtime, query: Callable[[Session], T], *,
               consistent: bool = True) -> T:
    """Run ``query(session)`` in a worker thread, after the read-your-writes barrier."""
    if consistent:
        await runtime.barrier.for_database()

    def run() -> T:
        with Session(runtime.db) as session:
            return query(session)

    return await asyncio.to_thread(run)


def page(items: list[Any], total: int) -> dict[str, Any]:
    return {"items": items, "total": total}


def ok(body: Any, status: int = 200) -> JSON:
    return JSON(body, status_code=status)


def tick(runtime: Runtime, market_id: int) -> int:
    """A market's tick (0.0001 if unknown)."""
    return runtime.replica.tick_of(market_id)
