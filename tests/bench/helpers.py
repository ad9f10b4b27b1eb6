"""Shared pieces of the benchmark tests: run a ``pmarket bench`` command in this process,
and prove that a run left nothing behind — no Redis key, no PostgreSQL schema, no
temporary file (processes: see conftest.py).

The figures themselves are never compared with the performance targets here (the test
machines are shared and noisy); only that they are there and consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import redis
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from pmarket.cli import load_commands


def run_cli(*args: str) -> Result:
    """``pmarket *args`` in this process (so the spies below see the run); must exit 0."""
    result = CliRunner().invoke(load_commands(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@dataclass
class Throwaway:
    """A throwaway database a run made: its PostgreSQL schema or SQLite directory, and
    whether the benchmark's tables were in it just before it was dropped."""

    schema: str | None
    directory: Path | None
    had_tables: bool = False


@dataclass
class Traces:
    """What a run did with Redis keys and databases, recorded by spies."""

    prefixes: list[str] = field(default_factory=list)  # key prefixes the run wrote under
    deleted: dict[str, int] = field(default_factory=dict)  # prefix -> keys it held
    databases: list[Throwaway] = field(default_factory=list)


def spy(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> Traces:
    """Record the ``delete_keys`` and ``ThrowawayDatabase`` calls of a benchmark module
    (``pmarket.bench.services`` or ``pmarket.bench.http``); the caller records the
    prefixes the run used."""
    traces = Traces()
    really_delete = module.delete_keys

    def delete_keys(url: str, prefix: str) -> None:
        traces.deleted[prefix] = len(keys_under(url, prefix))
        really_delete(url, prefix)

    class Database(module.ThrowawayDatabase):
        def __enter__(self) -> str:
            self.url = super().__enter__()
            self.record = Throwaway(self.schema, Path(self.tmp.name) if self.tmp else None)
            traces.databases.append(self.record)
            return self.url

        def __exit__(self, *exc: object) -> None:
            engine = sa.create_engine(self.url)
            try:
                self.record.had_tables = "orders" in sa.inspect(engine).get_table_names()
            finally:
                engine.dispose()
            super().__exit__(*exc)

    monkeypatch.setattr(module, "delete_keys", delete_keys)
    monkeypatch.setattr(module, "ThrowawayDatabase", Database)
    return traces


def keys_under(redis_url: str, prefix: str) -> list[bytes]:
    """Every Redis key whose name starts with ``prefix``."""
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"{prefix}*", count=1_000))
    finally:
        client.close()


def schema_exists(postgres_url: str, schema: str) -> bool:
    """Whether the PostgreSQL database holds ``schema``."""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                                {"s": schema}).first() is not None
    finally:
        engine.dispose()


def assert_nothing_left(traces: Traces, redis_url: str | None, postgres_url: str | None
                        ) -> None:
    """The run's Redis keys were deleted, and so were its throwaway databases — and the
    check is not vacuous: there were keys, and the tables were in the throwaway database."""
    assert traces.databases, "the run made no throwaway database"
    for db in traces.databases:
        assert db.had_tables, f"the benchmark's tables were not in {db}"
        if db.schema is not None:
            assert db.schema.startswith("pmbench_")
            assert postgres_url is not None and not schema_exists(postgres_url, db.schema)
        else:
            assert db.directory is not None and not db.directory.exists()
    if redis_url is None:
        assert not traces.prefixes and not traces.deleted
        return
    assert traces.prefixes, "the run used no Redis prefix"
    assert set(traces.deleted) == set(traces.prefixes)
    for prefix in traces.prefixes:
        assert traces.deleted[prefix] > 0, f"the run wrote no Redis key under {prefix}"
        assert keys_under(redis_url, prefix) == []
