"""Database lists (order history, trades, candles, payouts): a small cost per page
whatever its offset, and no stall for anyone else.

A list page is three index-served steps, never a sort of the whole history:

1. ``total``: ``count(*)`` of the filtered rows, answered from a covering index (the
   rows themselves are never read);
2. the page's keys: the key column alone, walked in index order from the nearer end
   of the list (a page past the middle walks from the other end with the mirrored
   offset, so the last page is as cheap as the first);
3. the page's rows, by key (at most ``limit``), as plain Core rows with the columns the
   answer needs, rendered into API objects in the same worker thread.

The work runs on a small pool of its own (``LIST_THREADS``), never on the default
executor that the read barrier, credential look-ups and health checks share, and one
user has at most one list read in flight (``read_list``), until its query ends even if
the client went away: a client paging deep offsets back to back waits behind its own
requests, not other users. Rendering hands the GIL to the event loop every ``PACE``
rows (``paced``).

Invariant: ``total`` is exact (a count of the same filtered rows) and the pages, over
all offsets, are exactly the filtered rows in the list's order; every query is served
by an index in the list's order (``tests/db/test_lists.py``: hypothesis, and the plans
on SQLite and PostgreSQL; ``tests/server/test_lists.py``: over HTTP).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, union_all
from sqlalchemy.engine import Connection

from ..runtime import Runtime
from .common import Paging

T = TypeVar("T")

LIST_THREADS = 2
"""Threads running database list reads (apart from every other database read)."""
PACE = 25
"""Rows a list thread renders between two hand-overs of the GIL (``paced``)."""

_pool = ThreadPoolExecutor(max_workers=LIST_THREADS, thread_name_prefix="pmarket-lists")
_locks: weakref.WeakValueDictionary[Any, asyncio.Lock] = weakref.WeakValueDictionary()


async def read_list(runtime: Runtime, key: Any, query: Callable[[Connection], T], *,
                    consistent: bool = True) -> T:
    """Run ``query(connection)`` on the list pool, after the read-your-writes barrier,
    at most one at a time per ``key`` (the caller's user id; a public list's market)."""
    if consistent:
        await runtime.barrier.for_database()
    key = (id(runtime), key)
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    async with lock:
        def run() -> T:
            with runtime.db.connect() as conn:
                return query(conn)

        running = asyncio.get_running_loop().run_in_executor(_pool, run)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            # The client went away: its query runs on regardless, so its user's turn
            # ends when the query does (else a client that sends and disconnects, again
            # and again, would run as many queries as the pool has threads).
            await asyncio.wait([running])
            raise


def count(conn: Connection, *selects: Select) -> int:
    """The rows of the key-only ``selects`` (disjoint), counted each from its index."""
    return sum(conn.execute(select(func.count()).select_from(s.subquery())).scalar_one()
               for s in selects)


def page_keys(conn: Connection, total: int, paging: Paging,
              ordered: Callable[[bool, int, str], Any], *,
              newest_first: bool = True) -> list[Any]:
    """The keys of one page, in the list's order.

    Args:
        total: the list's length (``count``).
        ordered: ``ordered(descending, depth, dialect)`` is the key-only select of the
            list's rows in descending or ascending key order, of which the first
            ``depth`` are needed (``merged``); it is limited and offset here.
        newest_first: the list is in descending key order.
    """
    if paging.offset >= total:
        return []
    limit = min(paging.limit, total - paging.offset)
    forward = paging.offset + limit / 2 <= total / 2
    offset = paging.offset if forward else total - paging.offset - limit
    descending = newest_first == forward
    stmt = ordered(descending, offset + limit, conn.dialect.name)
    keys = list(conn.execute(stmt.limit(limit).offset(offset)).scalars())
    return keys if forward else keys[::-1]


def merged(arms: Sequence[Select]) -> Callable[[bool, int, str], Any]:
    """``ordered`` for a list made of disjoint key-only ``arms``, each walked in key
    order from its own index and merged (never one query sorting them all).

    SQLite merges a ``UNION ALL`` of index-ordered arms by itself; PostgreSQL sorts one
    unless each arm is ordered and limited on its own (then it merges them: Merge
    Append), so there each arm is cut at ``depth`` (offset + limit), no further than the
    page needs.
    """
    def ordered(descending: bool, depth: int, dialect: str):
        if len(arms) == 1:
            key = arms[0].selected_columns[0]
            return arms[0].order_by(key.desc() if descending else key)
        parts = arms
        if dialect == "postgresql":
            parts = [a.order_by(a.selected_columns[0].desc() if descending
                                else a.selected_columns[0]).limit(depth) for a in arms]
        both = union_all(*parts).subquery()
        key = both.c[0]
        return select(key).order_by(key.desc() if descending else key)

    return ordered


@dataclass(frozen=True)
class Listing:
    """One list's queries: the key-only selects whose rows it counts (disjoint), and
    ``ordered``, its keys in order (see ``page_keys``, ``merged``)."""

    counted: tuple[Select, ...]
    ordered: Callable[[bool, int, str], Any]
    newest_first: bool = True

    def page(self, conn: Connection, paging: Paging) -> tuple[int, list[Any]]:
        """The list's exact length and the keys of the page ``paging`` names."""
        total = count(conn, *self.counted)
        return total, page_keys(conn, total, paging, self.ordered,
                                newest_first=self.newest_first)


def in_order(rows: Sequence[Any], keys: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    """``rows`` (fetched by key, in any order) in the order of ``keys``."""
    by_key = {key(r): r for r in rows}
    return [by_key[k] for k in keys if k in by_key]


def paced(items: Iterable[T]) -> Iterator[T]:
    """``items``, handing the GIL over every ``PACE`` of them: rendering a page of 500
    rows in a thread would otherwise keep the event loop waiting up to a switch
    interval (5 ms) each time it needs the GIL back."""
    for n, item in enumerate(items):
        if n and n % PACE == 0:
            time.sleep(0)  # releases the GIL; a waiting event loop takes it at once
        yield item
