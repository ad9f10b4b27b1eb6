"""Database fixtures shared by tests/db and tests/worker: SQLite and real PostgreSQL.

Every database test runs on both backends. PostgreSQL tests get a schema of their own
(``pmt_<random>``, selected through the connection's ``search_path`` and dropped
afterwards), so runs on one server never collide; they skip when PostgreSQL is down
(fail under ``PMARKET_REQUIRE_SERVICES=1``, see tests/services.py).

``database`` is a migrated database shared by a test module and emptied before each
test; ``empty_database_url`` is a brand-new, never-migrated database per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from pmarket.db import Base, make_engine, upgrade
from tests.services import postgres_url_or_skip

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _with_search_path(url: str, schema: str) -> str:
    parsed = sa.make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


@dataclass
class Database:
    """A migrated test database: its URL, an engine and the backend's name."""

    url: str
    engine: Engine
    backend: str

    def clear(self) -> None:
        """Delete every row of every table (schema kept)."""
        tables = list(reversed(Base.metadata.sorted_tables))
        with self.engine.begin() as conn:
            if self.backend == "postgres":
                names = ", ".join(t.name for t in tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())


def _make_url(backend: str, directory) -> tuple[str, str | None]:
    """A fresh database URL for ``backend`` and the PostgreSQL schema it uses."""
    if backend == "sqlite":
        return f"sqlite:///{directory / f'{uuid.uuid4().hex}.db'}", None
    base = postgres_url_or_skip()
    schema = f"pmt_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    finally:
        admin.dispose()
    return _with_search_path(base, schema), schema


def _drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    admin = sa.create_engine(postgres_url_or_skip())
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def migrated(request, tmp_path_factory) -> Iterator[Database]:
    """One migrated database per backend per test module."""
    url, schema = _make_url(request.param, tmp_path_factory.mktemp("db"))
    upgrade(url)
    engine = make_engine(url)
    try:
        yield Database(url, engine, request.param)
    finally:
        engine.dispose()
        _drop_schema(schema)


@pytest.fixture
def database(migrated: Database) -> Database:
    """The module's migrated database, emptied for this test."""
    migrated.clear()
    return migrated


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A database nobody has migrated yet (a new SQLite file or PostgreSQL schema)."""
    url, schema = _make_url(request.param, tmp_path)
    try:
        yield url
    finally:
        _drop_schema(schema)
