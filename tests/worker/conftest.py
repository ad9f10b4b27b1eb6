"""Database fixtures (SQLite and PostgreSQL) for these tests: see tests/dbfixtures.py."""

from tests.dbfixtures import database, empty_database_url, migrated  # noqa: F401
