"""Database records: one manifest per saved object, one content record per part.

Tables (SQLAlchemy 2 ORM, async engines; SQLite and PostgreSQL):

- ``lakery_manifests``: what was saved (class id, unpacker, tags, when).
- ``lakery_contents``: each part: how it was serialized, where it is, its size and hash.
- ``lakery_blobs``: bytes kept in the database itself by `DatabaseStorage`.
- ``lakery_lineage``: derived-from edges between manifests (`lakery.core.lineage`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Generator
from datetime import UTC
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeVar

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import DateTime
from sqlalchemy import Dialect
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import TypeDecorator
from sqlalchemy import UniqueConstraint
from sqlalchemy import Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from sqlalchemy.pool import SingletonThreadPool
from sqlalchemy.pool import StaticPool

from lakery.common.sync import run_sync
from lakery.core.tag_index import INDEXED_TAG_KEYS
from lakery.core.tag_index import tag_text

__all__ = [
    "BaseRecord",
    "BlobRecord",
    "ContentRecord",
    "LineageRecord",
    "ManifestRecord",
    "Runnable",
]

T = TypeVar("T")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "lakery timestamps must be timezone-aware"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


TagsJSON = JSON().with_variant(JSONB(), "postgresql")


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Runnable(Generic[T]):
    """An awaitable that synchronous code can also `.run()` to completion."""

    def __init__(
        self, coroutine_function: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> None:
        self._function = coroutine_function
        self._args = args

    def __await__(self) -> Generator[Any, None, T]:
        return self._function(*self._args).__await__()

    def run(self) -> T:
        """Run to completion from synchronous code, on lakery's bridge loop
        (`lakery.common.sync.run_sync`; also from a thread that runs another loop, e.g. a
        notebook's)."""
        return run_sync(self._function(*self._args))


class BaseRecord(DeclarativeBase):
    """Declarative base of lakery's tables."""

    type_annotation_map = {dict[str, Any]: TagsJSON, datetime: UTCDateTime}

    if TYPE_CHECKING:
        # Each of lakery's records is mapped to a Table (DeclarativeBase allows any
        # FromClause), so `insert(ManifestRecord.__table__)` and `.c` type-check.
        __table__: ClassVar[Table]

    @classmethod
    def create_all(cls, engine: AsyncEngine) -> Runnable[None]:
        """Create lakery's tables if missing: `await BaseRecord.create_all(engine)`.

        Synchronous scripts can call `BaseRecord.create_all(engine).run()` instead.
        """
        return Runnable(_create_all, cls, engine)


async def _create_all(base: type[BaseRecord], engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(base.metadata.create_all)
    if not isinstance(engine.pool, StaticPool | SingletonThreadPool):
        # Connections are bound to the loop they were made on; `.run()` uses the bridge
        # loop, so leave none behind in the pool for the caller's loop to trip over.
        await engine.dispose()


class ManifestRecord(BaseRecord):
    """One saved storable: its class, unpacker and tags."""

    __tablename__ = "lakery_manifests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    class_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    unpacker_name: Mapped[str] = mapped_column(String(255))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)

    contents: Mapped[list[ContentRecord]] = relationship(
        back_populates="manifest",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ContentRecord.content_key",
    )

    __table_args__ = (
        Index("ix_lakery_manifests_tags_gin", "tags", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
        # Newest-first queries for one class (find_manifests(cls=..., limit=...)).
        Index("ix_lakery_manifests_class_id_created_at", "class_id", "created_at"),
    )

    def __repr__(self) -> str:
        return f"<ManifestRecord {self.id} class_id={self.class_id.hex} tags={self.tags!r}>"


def _tag_index(dialect: str) -> Index:
    table = ManifestRecord.__table__
    values = [tag_text(table.c.tags, key, dialect) for key in INDEXED_TAG_KEYS]
    name = f"ix_lakery_manifests_tag_keys_{dialect}"
    return Index(name, *values, table.c.created_at, table.c.id).ddl_if(dialect=dialect)


# Newest manifest of an (asset, partition) tag pair: see lakery.core.tag_index.
_tag_index("sqlite")
_tag_index("postgresql")


class ContentRecord(BaseRecord):
    """One content part of a saved storable: how it was serialized and where it lives."""

    __tablename__ = "lakery_contents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    manifest_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lakery_manifests.id", ondelete="CASCADE")
    )
    content_key: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str] = mapped_column(String(255))
    content_encoding: Mapped[str | None] = mapped_column(String(64))
    content_size: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(128), index=True)
    content_hash_algorithm: Mapped[str] = mapped_column(String(32))
    serializer_name: Mapped[str] = mapped_column(String(255))
    serializer_type: Mapped[str] = mapped_column(String(16))
    storage_name: Mapped[str] = mapped_column(String(255))
    storage_data: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    manifest: Mapped[ManifestRecord] = relationship(back_populates="contents", lazy="raise")

    __table_args__ = (
        UniqueConstraint("manifest_id", "content_key", name="uq_lakery_contents_manifest_key"),
    )

    def __repr__(self) -> str:
        return (
            f"<ContentRecord {self.content_key!r} of {self.manifest_id} "
            f"{self.content_type} {self.content_size} bytes in {self.storage_name}>"
        )


class BlobRecord(BaseRecord):
    """Bytes kept in the database by `DatabaseStorage`, addressed by their sha256."""

    __tablename__ = "lakery_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class LineageRecord(BaseRecord):
    """One derived-from edge: manifest `child_id` was made from manifest `parent_id`.

    `parent_id` has no foreign key on purpose: an edge outlives a parent deleted with
    ``force=True`` (`lakery.maintenance.delete_manifests`), which then shows up in
    `Lineage.missing`. Deleting the child deletes its edges.
    """

    __tablename__ = "lakery_lineage"

    child_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lakery_manifests.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True, default="")
    """The input's name (e.g. a Dagster input), "" when none was given."""

    __table_args__ = (Index("ix_lakery_lineage_parent_id", "parent_id"),)

    def __repr__(self) -> str:
        return f"<LineageRecord {self.parent_id} -> {self.child_id} label={self.label!r}>"
