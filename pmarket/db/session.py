"""Database connections: one engine per URL, sessions from a factory.

URLs are SQLAlchemy URLs: ``postgresql+psycopg://user@host:5432/db`` (psycopg 3) in
deployment, ``sqlite:///path/to/pmarket.db`` embedded. A bare ``postgresql://`` URL is
read as psycopg 3, the driver this project ships with.

Invariant: every SQLite connection runs in WAL mode with foreign keys enforced and a
busy timeout, so the server's readers and the worker's writer can share one file.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL_ENV = "PMARKET_DATABASE_URL"
DEFAULT_SQLITE_FILE = "pmarket.db"


def default_database_url() -> str:
    """``PMARKET_DATABASE_URL``, else a SQLite file ``pmarket.db`` in the working directory."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, choosing psycopg 3 for a PostgreSQL URL without a driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs) -> Engine:
    """A SQLAlchemy engine for ``url`` with pmarket's connection settings.

    Args:
        url: the database URL.
        **kwargs: passed on to ``sqlalchemy.create_engine``.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
