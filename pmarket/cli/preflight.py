"""Checks a command makes once as it starts: are its Redis and database there?

A service that cannot reach Redis or its database at the very start is almost always
misconfigured (a wrong URL, a database not created, a server not started): it stops at
once with one or two lines (``failures.describe`` words the exception raised here)
instead of retrying forever. Once a command runs, outages are waited out and heal as
before (see docs/SERVICES.md).
"""

from __future__ import annotations

CHECK_TIMEOUT_S = 3.0


def require(redis_url: str | None = None, database_url: str | None = None) -> None:
    """Check each service given a URL (``None``: not used by this command)."""
    if redis_url:
        require_redis(redis_url)
    if database_url:
        require_database(database_url)


def require_redis(url: str) -> None:
    """Ping the Redis at ``url`` once; raise what redis-py raises if it does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S,
                                  socket_timeout=CHECK_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()


def check_database_url(url: str) -> None:
    """Parse ``url`` and load its dialect (no connection): a malformed URL or an unknown
    kind of database raises SQLAlchemy's error."""
    from pmarket.db import normalize_url

    normalize_url(url).get_dialect()


def require_database(url: str) -> None:
    """Connect to the database at ``url`` once; raise what SQLAlchemy raises if it cannot."""
    import sqlalchemy

    from pmarket.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()
