"""Alembic migrations of the pmarket schema, shipped in the package (``pmarket.db.migrate``)."""
