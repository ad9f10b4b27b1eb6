"""``pmarket bench readmodel`` measures the read model's memory and seeding time on a
throwaway database (SQLite, or a PostgreSQL schema) and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pmarket.bench import readmodel as bench
from tests.services import postgres_url_or_skip

from .helpers import run_cli, schema_exists

FIELDS = {"backend", "users", "positions", "orders", "seed_s", "total_bytes",
          "bytes_per_user", "bytes_per_position", "bytes_per_order"}


def spy_databases(monkeypatch: pytest.MonkeyPatch) -> list:
    made = []

    class Database(bench.ThrowawayDatabase):
        def __enter__(self) -> str:
            url = super().__enter__()
            made.append((self.schema, Path(self.tmp.name) if self.tmp else None))
            return url

    monkeypatch.setattr(bench, "ThrowawayDatabase", Database)
    return made


def assert_sane(figures: dict, users: int) -> None:
    assert set(figures) == FIELDS
    assert figures["users"] == users
    assert 0 < figures["positions"] <= users * 5 and figures["orders"] == users * 5
    assert figures["seed_s"] > 0
    # Each kind of row costs something, and no more than a few kilobytes.
    for name in ("bytes_per_user", "bytes_per_position", "bytes_per_order"):
        assert 50 < figures[name] < 5_000, (name, figures[name])
    assert figures["total_bytes"] >= (figures["bytes_per_order"] * figures["orders"])


def test_sqlite(monkeypatch: pytest.MonkeyPatch):
    made = spy_databases(monkeypatch)
    figures = bench.run(bench.Options(users=400, events=20)).as_dict()
    assert_sane(orjson.loads(orjson.dumps(figures)), 400)
    assert figures["backend"] == "sqlite"
    assert [d is not None and not d.exists() for _, d in made] == [True]


@pytest.mark.postgres
def test_cli_json_on_postgres(monkeypatch: pytest.MonkeyPatch):
    url = postgres_url_or_skip()
    made = spy_databases(monkeypatch)
    out = run_cli("bench", "readmodel", "--users", "300", "--database-url", url,
                  "--json").stdout
    figures = orjson.loads(out)
    assert_sane(figures, 300)
    assert figures["backend"] == "postgresql"
    assert [s is not None and not schema_exists(url, s) for s, _ in made] == [True]
