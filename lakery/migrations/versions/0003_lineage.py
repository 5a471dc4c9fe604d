"""Lineage: the derived-from edges between manifests (lakery.core.lineage).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: tables made by a newer create_all already have it when adopted.
    op.create_table(
        "lakery_lineage",
        sa.Column("child_id", sa.Uuid(), nullable=False),
        # No foreign key: an edge outlives a parent deleted with force=True.
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("child_id", "parent_id", "label"),
        sa.ForeignKeyConstraint(["child_id"], ["lakery_manifests.id"], ondelete="CASCADE"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_lakery_lineage_parent_id", "lakery_lineage", ["parent_id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_lakery_lineage_parent_id", table_name="lakery_lineage")
    op.drop_table("lakery_lineage")
