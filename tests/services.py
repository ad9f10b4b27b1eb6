"""Where the tests find Redis and PostgreSQL, and what happens when they are missing.

Each ``*_url_or_skip`` returns the service's URL after one quick connection check. A test
that needs a missing service is skipped with a message naming the service and the URL
tried — unless ``PMARKET_REQUIRE_SERVICES=1`` is set (CI), where a missing service is a
failure, so a misconfigured pipeline cannot pass by skipping everything.

Each service is probed once per URL per test session. Import it as
``from tests.services import redis_url_or_skip`` (test folders are packages).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

REDIS_DEFAULT = "redis://127.0.0.1:6379"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_probed: dict[str, str | None] = {}  # url -> why it is unusable (None: it works)


def services_required() -> bool:
    """True when missing services must fail the tests instead of skipping them."""
    return os.environ.get("PMARKET_REQUIRE_SERVICES", "") == "1"


def redis_url_or_skip() -> str:
    """The Redis URL for tests (``PMARKET_REDIS_URL`` or the local default).

    Skips the calling test when Redis does not answer (fails it under
    ``PMARKET_REQUIRE_SERVICES=1``).
    """
    url = os.environ.get("PMARKET_REDIS_URL") or REDIS_DEFAULT
    return _require("Redis", "PMARKET_REDIS_URL", url, _probe_redis)


def postgres_url_or_skip() -> str:
    """The PostgreSQL SQLAlchemy URL for tests (``PMARKET_TEST_POSTGRES_URL`` or default).

    Skips the calling test when PostgreSQL does not accept a connection (fails it under
    ``PMARKET_REQUIRE_SERVICES=1``).
    """
    url = os.environ.get("PMARKET_TEST_POSTGRES_URL") or POSTGRES_DEFAULT
    return _require("PostgreSQL", "PMARKET_TEST_POSTGRES_URL", url, _probe_postgres)


def _require(name: str, env: str, url: str, probe: Callable[[str], None]) -> str:
    if url not in _probed:
        try:
            probe(url)
            _probed[url] = None
        except Exception as exc:  # any failure to connect means "not available"
            _probed[url] = f"{type(exc).__name__}: {exc}"
    problem = _probed[url]
    if problem is None:
        return url
    message = f"{name} is not reachable at {url} (set {env}): {problem}"
    if services_required():
        pytest.fail(f"{message}; PMARKET_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(message)


def _probe_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _probe_postgres(url: str) -> None:
    import sqlalchemy

    parsed = sqlalchemy.make_url(url)
    # A closed port should not cost a driver's full connect timeout.
    with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 1):
        pass
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()
