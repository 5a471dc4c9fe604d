"""The composite index on the asset key and partition tags (lakery.core.tag_index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEYS = ("dagster/asset_key", "dagster/partition")


def _name(dialect: str) -> str:
    return f"ix_lakery_manifests_tag_keys_{dialect}"


def _tag(key: str, dialect: str) -> sa.TextClause:
    if dialect == "postgresql":
        return sa.text(f"(tags ->> '{key}')")
    return sa.text(f"""json_extract(tags, '$."{key}"')""")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return
    columns = [_tag(key, dialect) for key in KEYS]
    # IF NOT EXISTS: tables made by a newer create_all already have it when adopted.
    op.create_index(
        _name(dialect),
        "lakery_manifests",
        [*columns, sa.text("created_at"), sa.text("id")],
        if_not_exists=True,
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        op.drop_index(_name(dialect), table_name="lakery_manifests", if_exists=True)
