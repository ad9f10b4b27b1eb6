"""Title search finds events by the words of their title on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pmarket.db import Event, from_ms
from pmarket.db.search import title_search
from tests.dbfixtures import Database

TITLES = {1: "Who wins the 2028 final?", 2: "Will it rain in Paris tomorrow?",
          3: "Rainfall above 50mm in May", 4: "100% sure_thing"}


def _seed(database: Database) -> None:
    now = from_ms(1_767_225_600_000)
    with database.engine.begin() as conn:
        conn.execute(sa.insert(Event), [
            {"id": i, "title": t, "status": "active", "tick": 100, "created_at": now,
             "updated_at": now} for i, t in TITLES.items()])


def _search(database: Database, query: str) -> set[int]:
    clause = title_search(query, database.engine.dialect.name)
    with database.engine.connect() as conn:
        return set(conn.scalars(sa.select(Event.id).where(clause)))


def test_search_finds_titles_by_word_case_insensitively(database: Database):
    _seed(database)
    assert _search(database, "final") == {1}
    assert _search(database, "WHO wins") == {1}
    assert _search(database, "2028") == {1}
    assert _search(database, "rain") == {2, 3}  # a word and a word's prefix
    assert _search(database, "paris, rain!") == {2}  # every word, in any order


def test_search_text_is_never_interpreted(database: Database):
    _seed(database)
    assert _search(database, "%") == set()
    assert _search(database, "_") == set()
    assert _search(database, "') | !(") == set()
    assert _search(database, "sure_thing") == {4}
    assert _search(database, "nothing like it") == set()


def test_postgresql_search_uses_the_title_index(database: Database):
    if database.backend != "postgres":
        pytest.skip("SQLite has no full-text index here")
    _seed(database)
    query = sa.select(Event.id).where(title_search("rain", "postgresql"))
    with database.engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.execute(sa.text(f"EXPLAIN {compiled}")))
    assert "ix_events_title_fts" in plan
