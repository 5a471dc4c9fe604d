"""The initial schema: manifests, contents and blobs (as `BaseRecord.create_all` in 0.1).

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TAGS = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lakery_manifests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("unpacker_name", sa.String(255), nullable=False),
        sa.Column("tags", TAGS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lakery_manifests_created_at", "lakery_manifests", ["created_at"])
    op.create_index("ix_lakery_manifests_class_id", "lakery_manifests", ["class_id"])
    op.create_index(
        "ix_lakery_manifests_class_id_created_at", "lakery_manifests", ["class_id", "created_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_lakery_manifests_tags_gin", "lakery_manifests", ["tags"], postgresql_using="gin"
        )

    op.create_table(
        "lakery_contents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("manifest_id", sa.Uuid(), nullable=False),
        sa.Column("content_key", sa.String(1024), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("content_encoding", sa.String(64), nullable=True),
        sa.Column("content_size", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("content_hash_algorithm", sa.String(32), nullable=False),
        sa.Column("serializer_name", sa.String(255), nullable=False),
        sa.Column("serializer_type", sa.String(16), nullable=False),
        sa.Column("storage_name", sa.String(255), nullable=False),
        sa.Column("storage_data", sa.JSON(), nullable=False),
        sa.Column("tags", TAGS, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["manifest_id"], ["lakery_manifests.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("manifest_id", "content_key", name="uq_lakery_contents_manifest_key"),
    )
    op.create_index("ix_lakery_contents_content_hash", "lakery_contents", ["content_hash"])

    op.create_table(
        "lakery_blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("lakery_blobs")
    op.drop_index("ix_lakery_contents_content_hash", table_name="lakery_contents")
    op.drop_table("lakery_contents")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_lakery_manifests_tags_gin", table_name="lakery_manifests")
    op.drop_index("ix_lakery_manifests_class_id_created_at", table_name="lakery_manifests")
    op.drop_index("ix_lakery_manifests_class_id", table_name="lakery_manifests")
    op.drop_index("ix_lakery_manifests_created_at", table_name="lakery_manifests")
    op.drop_table("lakery_manifests")
