"""Alembic environment: runs on the connection ``pmarket.db.migrate`` hands over.

There is no ``alembic.ini``: ``pmarket.db.migrate.alembic_config`` builds the
configuration in code and passes an open connection in ``config.attributes``, so the
migrations work from an installed package. On PostgreSQL a transaction-scoped advisory
lock serialises concurrent upgrades (the server and the worker both upgrade at start).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from pmarket.db.migrate import MIGRATION_LOCK, include_object
from pmarket.db.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through pmarket.db.migrate (pmarket db upgrade)")
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; use pmarket db upgrade")
run_migrations()
