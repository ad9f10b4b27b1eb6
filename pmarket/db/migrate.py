"""Schema migrations: Alembic, configured in code, scripts inside the package.

``upgrade(url)`` brings any database (empty or older) to the newest schema; the server
and the worker call it at start and ``pmarket db upgrade`` calls it by hand.

Invariant: the schema only ever changes through the scripts in ``migrations/versions``,
and one upgrade runs in one transaction (PostgreSQL: serialised by an advisory lock), so
a crash mid-upgrade leaves the previous revision intact.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from .session import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

MIGRATION_LOCK = 0x706D6B74  # "pmkt": PostgreSQL advisory lock id held during upgrades

DIALECT_ONLY_INDEXES = frozenset({"ix_events_title_fts"})
"""Indexes the migrations create on one dialect only; the models do not declare them."""


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate filter: leave dialect-specific indexes out of model comparisons."""
    return not (type_ == "index" and name in DIALECT_ONLY_INDEXES)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, bound to ``connection``."""
    config = Config()
    # ConfigParser interpolates '%': escape it in case the install path holds one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the packaged migrations define."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in the package")
    return head


def upgrade(url: str | URL, revision: str = "head") -> str:
    """Apply every migration up to ``revision`` to the database at ``url``.

    Args:
        url: SQLAlchemy URL of the database (created empty if it is a new SQLite file).
        revision: the target revision (default: the newest).

    Returns:
        The revision the database is at afterwards.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
        return current_revision(engine) or ""
    finally:
        engine.dispose()


def current_revision(bind) -> str | None:
    """The revision a database (engine or connection) is at, None if never migrated."""
    if isinstance(bind, Connection):
        return MigrationContext.configure(bind).get_current_revision()
    with bind.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
