"""Event title search that uses the right index on each database.

Every word of the query (letters and digits; punctuation separates words) must occur
in the title, case-insensitively. PostgreSQL matches each as a word or a word's prefix
with full-text search over ``to_tsvector('simple', title)``, the expression the
``ix_events_title_fts`` GIN index is built on (so the index serves it); SQLite matches
each as a substring (``LIKE``). A query without words matches nothing.

Invariant: the query text only ever travels as a bound parameter, reduced to words
first, so nothing in it means anything to ``tsquery`` or ``LIKE``.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, and_, false, func, literal_column

from .models import Event

_WORD = re.compile(r"\w+", re.UNICODE)
_SIMPLE = literal_column("'simple'::regconfig")  # must equal the index expression


def title_search(query: str, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause matching events whose title contains ``query``.

    Args:
        query: what the user typed (``GET /events?q=``).
        dialect: ``engine.dialect.name`` (``postgresql`` or ``sqlite``).
    """
    words = [w for w in _WORD.findall(query.lower()) if w.strip("_")]
    if not words:
        return false()
    if dialect == "postgresql":
        tsquery = " & ".join(f"{word}:*" for word in words)
        return func.to_tsvector(_SIMPLE, Event.title).op("@@")(
            func.to_tsquery(_SIMPLE, tsquery))
    return and_(*(Event.title.ilike(f"%{w}%".replace("_", "\\_"), escape="\\")
                  for w in words))
