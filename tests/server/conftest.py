"""Fixtures: a module-scoped server per deployment kind, and a client for each test.

Tests of a module share one server (startup costs a migration) and isolate themselves by
creating their own users and events. ``server`` is parametrised over the embedded
exchange and the Redis + PostgreSQL deployment (skipped when those are not running).
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from .harness import Client, start_server

KINDS = ["embedded", pytest.param("deployment", marks=[pytest.mark.redis,
                                                       pytest.mark.postgres])]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=KINDS)
async def server(request, tmp_path_factory):
    srv = await start_server(request.param, tmp_path_factory.mktemp("server"))
    try:
        yield srv
    finally:
        await srv.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def client(server):
    c = Client(server)
    try:
        yield c
    finally:
        await c.aclose()
