"""Finding saved objects: manifests by tags, class and time; content records by manifest.

```python
from datetime import UTC, datetime, timedelta

from lakery.core import fetch_contents, find_manifests, get_manifests

async with new_session() as session:
    records = await find_manifests(
        session,
        tags={"project": "alpha"},  # every given tag must match
        cls=ExperimentData,  # a storable class or a class id
        since=datetime.now(UTC) - timedelta(days=7),
        limit=10,  # newest first
    )
    contents = await fetch_contents(session, records)  # {manifest id: [ContentRecord]}
```

The tag filter uses JSONB containment (``tags @> '{...}'``) on PostgreSQL, which the GIN
index on ``lakery_manifests.tags`` serves, and ``json_extract`` on SQLite. Filters on
Dagster's asset key and partition tags are answered newest first by one composite index on
both databases (`lakery.core.tag_index`). Newest-first order with a limit is served by the
``created_at`` index, and by the ``(class_id, created_at)`` index when a class is given.

Records returned here are detached from the session: they stay usable after it commits,
expires or closes, and can be passed to `load_one` / `Loader.load_soon` directly (records
found with ``with_contents=True``, or passed through `fetch_contents`, carry their content
rows so that loading them issues no further content query).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy import type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorableTypeError
from lakery.common.tags import validate_tags
from lakery.core.boundaries import database_calls
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import normalize_class_id
from lakery.core.tag_index import INDEXED_TAG_KEYS
from lakery.core.tag_index import is_plain_tag_key
from lakery.core.tag_index import tag_text

__all__ = [
    "ClassFilter",
    "fetch_contents",
    "find_manifests",
    "get_manifests",
    "select_manifests",
]

ClassFilter = type[Storable] | uuid.UUID | str
"""A storable class, or its class id (a UUID or 8-32 hex characters)."""


class ManifestQuery(TypedDict, total=False):
    """The filters of `select_manifests` and `find_manifests`, to pass on with ``**``."""

    tags: Mapping[str, str] | None
    cls: ClassFilter | None
    since: datetime | None
    before: datetime | None


_IN_CHUNK = 500
"""Ids per ``IN (...)`` list (stays under every backend's bound-parameter limit)."""


def select_manifests(
    *,
    dialect: str,
    tags: Mapping[str, str] | None = None,
    cls: ClassFilter | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    limit: int | None = 100,
) -> Select[ManifestRecord]:
    """The SELECT statement behind `find_manifests`, to extend or inspect.

    Args:
        dialect: the database dialect name (``session.get_bind().dialect.name``); the tag
            filter is written differently for PostgreSQL and SQLite.
        tags: tags that every returned manifest has (with these exact values).
        cls: only manifests of this storable class (or class id).
        since: only manifests created at or after this time (timezone-aware).
        before: only manifests created before this time (timezone-aware).
        limit: at most this many manifests; None for no limit.
    """
    statement = select(ManifestRecord)
    conditions: list[ColumnElement[bool]] = []
    wanted = validate_tags(tags, what="the tags to find")
    if wanted:
        conditions.extend(_tag_conditions(wanted, dialect))
    if cls is not None:
        conditions.append(ManifestRecord.class_id == _class_id(cls))
    if since is not None:
        conditions.append(ManifestRecord.created_at >= _aware(since, "since"))
    if before is not None:
        conditions.append(ManifestRecord.created_at < _aware(before, "before"))
    if conditions:
        statement = statement.where(*conditions)
    statement = statement.order_by(ManifestRecord.created_at.desc(), ManifestRecord.id.desc())
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            msg = f"limit must be a positive int or None, got {limit!r}"
            raise ConfigurationError(msg)
        statement = statement.limit(limit)
    return statement


async def find_manifests(
    session: AsyncSession,
    *,
    tags: Mapping[str, str] | None = None,
    cls: ClassFilter | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    limit: int | None = 100,
    with_contents: bool = False,
) -> list[ManifestRecord]:
    """Manifests that match every filter, newest first.

    Args:
        session: the database session.
        tags: tags that every returned manifest has (with these exact values).
        cls: only manifests of this storable class (or class id).
        since: only manifests created at or after this time (timezone-aware).
        before: only manifests created before this time (timezone-aware).
        limit: at most this many manifests (default 100); None for no limit.
        with_contents: also fetch their content records (in one more query).

    Returns:
        Detached manifest records, newest first (ties broken by id).
    """
    statement = select_manifests(
        dialect=_dialect(session), tags=tags, cls=cls, since=since, before=before, limit=limit
    )
    if with_contents:
        statement = statement.options(selectinload(ManifestRecord.contents))
    with database_calls(session, "finding manifests"):
        records = list((await session.execute(statement)).scalars().all())
    _detach(session, records)
    return records


async def get_manifests(
    session: AsyncSession,
    ids: Iterable[uuid.UUID | str],
    *,
    with_contents: bool = False,
) -> dict[uuid.UUID, ManifestRecord]:
    """Manifests by id; ids that do not exist are absent from the result.

    Args:
        session: the database session.
        ids: manifest ids (UUIDs or their string form).
        with_contents: also fetch their content records.
    """
    wanted = list(dict.fromkeys(as_manifest_id(i) for i in ids))
    found: dict[uuid.UUID, ManifestRecord] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        statement = select(ManifestRecord).where(
            ManifestRecord.id.in_(wanted[start : start + _IN_CHUNK])
        )
        if with_contents:
            statement = statement.options(selectinload(ManifestRecord.contents))
        with database_calls(session, "getting manifests by id"):
            rows = (await session.execute(statement)).scalars().all()
        for record in rows:
            found[record.id] = record
    _detach(session, list(found.values()))
    return found


async def fetch_contents(
    session: AsyncSession,
    manifests: Iterable[ManifestRecord | uuid.UUID | str],
) -> dict[uuid.UUID, list[ContentRecord]]:
    """Content records of the given manifests (or manifest ids), ordered by content key.

    Manifest records passed in get these rows attached as their ``contents``, so loading
    them afterwards reads no content rows again. Every requested id is in the result (with
    an empty list when it has no content rows or does not exist).
    """
    records: list[ManifestRecord] = []
    ids: list[uuid.UUID] = []
    for item in manifests:
        if isinstance(item, ManifestRecord):
            records.append(item)
            ids.append(item.id)
        else:
            ids.append(as_manifest_id(item))
    ids = list(dict.fromkeys(ids))
    found: dict[uuid.UUID, list[ContentRecord]] = {i: [] for i in ids}
    for start in range(0, len(ids), _IN_CHUNK):
        statement = (
            select(ContentRecord)
            .where(ContentRecord.manifest_id.in_(ids[start : start + _IN_CHUNK]))
            .order_by(ContentRecord.manifest_id, ContentRecord.content_key)
        )
        with database_calls(session, "getting content records"):
            rows = (await session.execute(statement)).scalars().all()
        for content in rows:
            found[content.manifest_id].append(content)
    for contents in found.values():
        for content in contents:
            if content in session:
                session.expunge(content)
    for record in records:
        set_committed_value(record, "contents", list(found[record.id]))
    return found


def _tag_conditions(tags: dict[str, str], dialect: str) -> list[ColumnElement[bool]]:
    indexed = [
        tag_text(ManifestRecord.tags, key, dialect) == tags[key]
        for key in INDEXED_TAG_KEYS
        if key in tags
    ]
    if dialect == "postgresql":
        # `@>` on the JSONB column is what the GIN index answers; the indexed keys (if
        # given) let the planner take the tag index instead, newest first.
        return [type_coerce(ManifestRecord.tags, JSONB).contains(tags), *indexed]
    if dialect == "sqlite":
        return [_sqlite_tag_equals(key, value) for key, value in tags.items()]
    return [ManifestRecord.tags[key].as_string() == value for key, value in tags.items()]


def _sqlite_tag_equals(key: str, value: str) -> ColumnElement[bool]:
    if is_plain_tag_key(key):
        return tag_text(ManifestRecord.tags, key, "sqlite") == value
    # A JSON path cannot hold a '"', and it is matched against the key as written in the
    # JSON text (non-ASCII keys are stored \u-escaped): compare decoded entries instead.
    entries = func.json_each(ManifestRecord.tags).table_valued("key", "value")
    return exists(
        select(literal_column("1"))
        .select_from(entries)
        .where(entries.c.key == key, entries.c.value == value)
    )


def _class_id(cls: object) -> uuid.UUID:
    if isinstance(cls, type):
        if issubclass(cls, Storable):
            return get_class_id(cls)
        msg = f"cls must be a storable class or a class id, got the class {cls.__qualname__}"
        raise StorableTypeError(msg)
    if isinstance(cls, uuid.UUID | str):
        return normalize_class_id(cls, owner="the class filter")
    msg = f"cls must be a storable class or a class id, got {cls!r}"
    raise StorableTypeError(msg)


def as_manifest_id(value: uuid.UUID | str) -> uuid.UUID:
    """A manifest id from a UUID or its string form; a clear error for anything else."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        msg = f"{value!r} is not a manifest id (a UUID such as str(record.id))"
        raise ConfigurationError(msg) from None


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        msg = f"{name} must be a datetime, got {type(value).__name__}"
        raise ConfigurationError(msg)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be timezone-aware, e.g. datetime.now(UTC); got {value!r}"
        raise ConfigurationError(msg)
    return value


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _detach(session: AsyncSession, records: Sequence[ManifestRecord]) -> None:
    for record in records:
        if record in session:
            session.expunge(record)  # cascades to loaded contents
