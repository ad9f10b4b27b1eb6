"""Sessions and API keys: session epochs, disabled users, hashed API keys, auth sequence.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pmarket.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("disabled_at", pmarket.db.types.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("auth_seq", sa.BigInteger(), server_default="0",
                                   nullable=False))
        batch.create_index(batch.f("ix_users_auth_seq"), ["auth_seq"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", pmarket.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("auth_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_api_keys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"], unique=False)
    op.create_index(op.f("ix_api_keys_auth_seq"), "api_keys", ["auth_seq"], unique=False)
    table = op.create_table(
        "auth_sequence",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sequence")),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("auth_sequence")
    op.drop_index(op.f("ix_api_keys_auth_seq"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("users") as batch:
        batch.drop_index(batch.f("ix_users_auth_seq"))
        batch.drop_column("auth_seq")
        batch.drop_column("disabled_at")
        batch.drop_column("session_epoch")
