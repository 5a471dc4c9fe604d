"""lakery's records of saved Dagster outputs: the newest of each partition, or a run's.

`newest_outputs` answers "for each of these partitions of this asset, what did the newest
save write" — a single manifest, or every item of a saved collection — with one query for
the newest manifest per partition (with its content rows), and one more only when some of
them are collection items. The newest manifest of one partition is one probe of the
composite index on the asset key and partition tags (`lakery.core.tag_index`): the query
filters on the same expressions, written by `tag_text`:

- SQLite: ``json_extract(tags, '$."dagster/asset_key"') = ?`` and
  ``json_extract(tags, '$."dagster/partition"') = <each wanted value>``, newest first by
  ``created_at DESC, id DESC``, ``LIMIT 1`` per partition (the wanted partitions come from
  ``json_each(?)``, one JSON array parameter);
- PostgreSQL: ``(tags ->> 'dagster/asset_key') = $1`` and
  ``(tags ->> 'dagster/partition') = <each value of json_array_elements_text($2)>``.

An unpartitioned asset's newest manifest is the newest with the asset key and no partition
tag (``... 'dagster/partition' ... IS NULL``). Extra tags (a run id, user tags) are further
conditions on the same rows.

Each statement's manifests come with their content rows in the same query (an outer
join), built into detached records without the ORM's identity map (which costs more than
the query for hundreds of manifests), ready for `Loader.load_soon`.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

from sqlalchemy import String
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy import type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import JSON

from lakery.core.boundaries import database_calls
from lakery.core.gcpause import gc_paused
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.tag_index import is_plain_tag_key
from lakery.core.tag_index import tag_text
from lakery_dagster.shapes import Kind
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Stored
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import COLLECTION
from lakery_dagster.tags import COLLECTION_ID
from lakery_dagster.tags import COLLECTION_KEY
from lakery_dagster.tags import PARTITION
from lakery_dagster.tags import RUN_ID

__all__ = ["newest_outputs", "run_outputs", "stored_from_records"]


R = TypeVar("R", ManifestRecord, ContentRecord)

_CHUNK = 500
"""Values per ``IN (...)`` list."""


async def newest_outputs(
    session: AsyncSession,
    *,
    asset_key: str,
    partitions: Sequence[str | None],
    tags: Mapping[str, str] | None = None,
) -> dict[str | None, Stored]:
    """The newest saved output of each partition (``[None]``: of the unpartitioned asset).

    Args:
        session: a session on lakery's database.
        asset_key: the asset key as the ``dagster/asset_key`` tag has it.
        partitions: partition keys, or ``[None]`` for an unpartitioned asset.
        tags: other tags that the manifests must have (e.g. a run id).

    Returns:
        ``{partition: Stored}`` for the partitions that have a saved output.
    """
    wanted = list(dict.fromkeys(partitions))
    partitioned = wanted != [None]
    if partitioned and None in wanted:
        msg = "partitions mixes None (unpartitioned) with partition keys"
        raise ValueError(msg)
    extra = {k: v for k, v in (tags or {}).items() if k not in (ASSET_KEY, PARTITION)}
    newest = await _newest_records(session, asset_key, wanted, extra)
    collections = {
        record.tags[COLLECTION_ID]: partition
        for partition, record in newest.items()
        if record.tags.get(COLLECTION_ID)
    }
    members = await _members(session, asset_key, collections, partitioned)
    found: dict[str | None, Stored] = {}
    for partition, record in newest.items():
        collection_id = record.tags.get(COLLECTION_ID)
        group = [record] if not collection_id else members.get((collection_id, partition), [])
        if group:
            found[partition] = stored_from_records(group)
    return found


async def _newest_records(
    session: AsyncSession,
    asset_key: str,
    partitions: list[str | None],
    extra: Mapping[str, str],
) -> dict[str | None, ManifestRecord]:
    """The newest manifest of each partition of the asset that has the `extra` tags."""
    dialect = session.get_bind().dialect.name
    partitioned = partitions != [None]
    statement = _newest_statement(dialect, partitioned, tuple(sorted(extra)))
    parameters: dict[str, Any] = {"asset": asset_key, **_tag_parameters(extra, dialect)}
    chunks = [partitions[i : i + _CHUNK] for i in range(0, len(partitions), _CHUNK)]
    newest: dict[str | None, ManifestRecord] = {}
    for chunk in chunks if partitioned else [None]:
        if chunk is not None:
            parameters["partitions"] = json.dumps(chunk)
        for record in await _fetch(session, statement, parameters):
            newest[_partition_of(record.tags, partitioned)] = record
    return newest


async def _members(
    session: AsyncSession,
    asset_key: str,
    collections: Mapping[str, str | None],
    partitioned: bool,
) -> dict[tuple[str, str | None], list[ManifestRecord]]:
    """The items of each collection (``{collection_id: partition}``) in that partition."""
    statement = _members_statement(session.get_bind().dialect.name, partitioned)
    ids = list(collections)
    members: dict[tuple[str, str | None], list[ManifestRecord]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        parameters: dict[str, Any] = {"asset": asset_key, "collections": chunk}
        if partitioned:
            parameters["partitions"] = sorted({str(collections[i]) for i in chunk})
        for record in await _fetch(session, statement, parameters):
            key = (record.tags[COLLECTION_ID], _partition_of(record.tags, partitioned))
            members.setdefault(key, []).append(record)
    return members


async def run_outputs(
    session: AsyncSession, *, asset_key: str, run_id: str
) -> dict[str | None, Stored]:
    """Every partition's output of `asset_key` saved by Dagster run `run_id`.

    When a partition was saved more than once by the run (a retried step), its newest
    output is returned.
    """
    dialect = session.get_bind().dialect.name
    parameters = {"asset": asset_key, **_tag_parameters({RUN_ID: run_id}, dialect)}
    records = await _fetch(session, _run_statement(dialect), parameters)
    records.sort(key=lambda r: (r.created_at, r.id))
    by_output: dict[tuple[str | None, str], list[ManifestRecord]] = {}
    for record in records:  # oldest first: a later save of the same partition replaces it
        group = record.tags.get(COLLECTION_ID) or str(record.id)
        by_output.setdefault((record.tags.get(PARTITION), group), []).append(record)
    found: dict[str | None, Stored] = {}
    for (partition, _), group in by_output.items():
        found[partition] = stored_from_records(group)
    return found


def stored_from_records(records: Sequence[ManifestRecord]) -> Stored:
    """The layout of one saved output from its records (a collection's items, or one)."""
    first = records[0]
    if not first.tags.get(COLLECTION_ID):
        return Stored(Layout("single", [("", str(first.id))]), (first,))
    kind: Kind = "list" if first.tags.get(COLLECTION) == "list" else "mapping"

    def order(record: ManifestRecord) -> Any:
        key = record.tags.get(COLLECTION_KEY, "")
        if kind == "list":
            return (0, int(key)) if key.isdigit() else (1, key)
        return (0, key)

    ordered = sorted(records, key=order)
    layout = Layout(kind, [(r.tags.get(COLLECTION_KEY, ""), str(r.id)) for r in ordered])
    return Stored(layout, tuple(ordered))


# -- statements (built once per shape, values bound as parameters) -------------------------


@functools.cache
def _newest_statement(dialect: str, partitioned: bool, extra_keys: tuple[str, ...]) -> Any:
    """Manifests (with contents) that are the newest of each wanted partition.

    Parameters: ``asset``; ``partitions`` (a JSON array) when partitioned; the extra tags
    (`_tag_parameters`).
    """
    newest = aliased(ManifestRecord, name="newest")
    conditions = [
        _text(newest.tags, ASSET_KEY, dialect) == bindparam("asset"),
        *_tag_conditions(newest.tags, extra_keys, dialect),
    ]
    partition = tag_text(newest.tags, PARTITION, dialect)
    order = (newest.created_at.desc(), newest.id.desc())
    if not partitioned:
        ids = select(newest.id).where(*conditions, partition.is_(None)).order_by(*order).limit(1)
    else:
        wanted = _values(dialect)
        per_partition = (
            select(newest.id)
            .where(*conditions, type_coerce(partition, String) == wanted.c.value)
            .order_by(*order)
            .limit(1)
            .correlate(wanted)
            .scalar_subquery()
        )
        ids = select(per_partition).select_from(wanted)
    return _joined(ManifestRecord.__table__.c.id.in_(ids))


@functools.cache
def _members_statement(dialect: str, partitioned: bool) -> Any:
    """Items of the given collections. Parameters: ``asset``, ``collections`` and, when
    partitioned, ``partitions`` (lists)."""
    tags = ManifestRecord.__table__.c.tags
    if partitioned:
        partition = _text(tags, PARTITION, dialect).in_(bindparam("partitions", expanding=True))
    else:
        partition = tag_text(tags, PARTITION, dialect).is_(None)
    return _joined(
        and_(
            _text(tags, ASSET_KEY, dialect) == bindparam("asset"),
            partition,
            _text(tags, COLLECTION_ID, dialect).in_(bindparam("collections", expanding=True)),
        )
    )


@functools.cache
def _run_statement(dialect: str) -> Any:
    """Manifests of an asset saved by one run. Parameters: ``asset`` and the run id tag."""
    tags = ManifestRecord.__table__.c.tags
    return _joined(
        and_(
            _text(tags, ASSET_KEY, dialect) == bindparam("asset"),
            *_tag_conditions(tags, (RUN_ID,), dialect),
        )
    )


def _text(tags: Any, key: str, dialect: str) -> Any:
    """`tag_text` (the indexed expression), compared as a string."""
    return type_coerce(tag_text(tags, key, dialect), String)


def _values(dialect: str) -> Any:
    """A one-column table (``value``) of the strings in the JSON array ``partitions``."""
    parameter = bindparam("partitions", type_=String)
    if dialect == "postgresql":
        function = func.json_array_elements_text(cast(parameter, JSON))
    else:
        function = func.json_each(parameter)
    return function.table_valued("value").alias("wanted")


def _tag_conditions(tags: Any, keys: Sequence[str], dialect: str) -> list[Any]:
    """Conditions that the tags have the values bound by `_tag_parameters`."""
    if not keys:
        return []
    if dialect == "postgresql":
        # `@>` on the JSONB column: the GIN index answers it.
        return [type_coerce(tags, JSONB).contains(bindparam("tags", type_=JSONB))]
    conditions = []
    for index, key in enumerate(keys):
        value = bindparam(f"tag_{index}", type_=String)
        if dialect != "sqlite" or is_plain_tag_key(key):
            conditions.append(_text(tags, key, dialect) == value)
            continue
        # A JSON path cannot name this key: compare decoded entries instead.
        entries = func.json_each(tags).table_valued("key", "value")
        conditions.append(
            exists(
                select(literal_column("1"))
                .select_from(entries)
                .where(entries.c.key == key, entries.c.value == value)
            )
        )
    return conditions


def _tag_parameters(wanted: Mapping[str, str], dialect: str) -> dict[str, Any]:
    """The parameters of `_tag_conditions` for the keys ``sorted(wanted)``."""
    if not wanted:
        return {}
    if dialect == "postgresql":
        return {"tags": dict(wanted)}
    return {f"tag_{i}": wanted[key] for i, key in enumerate(sorted(wanted))}


# -- records from rows ----------------------------------------------------------------------

_MANIFEST_COLUMNS = [c.label(f"m_{c.name}") for c in ManifestRecord.__table__.c]
_CONTENT_COLUMNS = [c.label(f"c_{c.name}") for c in ContentRecord.__table__.c]
_MANIFEST_KEYS = [c.name for c in ManifestRecord.__table__.c]
_CONTENT_KEYS = [c.name for c in ContentRecord.__table__.c]


def _joined(condition: Any) -> Any:
    """Manifests that meet `condition`, outer-joined with their content rows."""
    manifests = ManifestRecord.__table__
    contents = ContentRecord.__table__
    return (
        select(*_MANIFEST_COLUMNS, *_CONTENT_COLUMNS)
        .select_from(manifests.outerjoin(contents, contents.c.manifest_id == manifests.c.id))
        .where(condition)
    )


async def _fetch(
    session: AsyncSession, statement: Any, parameters: Mapping[str, Any]
) -> list[ManifestRecord]:
    """Run a `_joined` statement; detached records with their content rows attached.

    Built without the ORM's identity map (which costs more than the query for hundreds
    of manifests).
    """
    with database_calls(session, "looking up stored Dagster outputs"):
        connection = await session.connection()
        rows = (await connection.execute(statement, dict(parameters))).all()
    configure_mappers()
    width = len(_MANIFEST_COLUMNS)
    records: dict[uuid.UUID, ManifestRecord] = {}
    parts: dict[uuid.UUID, list[ContentRecord]] = {}
    with gc_paused():  # many small objects at once (see lakery.core.gcpause)
        for row in rows:
            manifest_id = row[0]
            if manifest_id not in records:
                fields = dict(zip(_MANIFEST_KEYS, row[:width], strict=True))
                records[manifest_id] = _transient(ManifestRecord, fields)
                parts[manifest_id] = []
            if row[width] is not None:
                fields = dict(zip(_CONTENT_KEYS, row[width:], strict=True))
                parts[manifest_id].append(_transient(ContentRecord, fields))
        for manifest_id, record in records.items():
            ordered = sorted(parts[manifest_id], key=lambda c: c.content_key)
            set_committed_value(record, "contents", ordered)
    return list(records.values())


def _transient(model: type[R], row: Mapping[str, Any]) -> R:
    instance: R = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(row)
    return instance


def _partition_of(tags: Mapping[str, Any], partitioned: bool) -> str | None:
    return str(tags.get(PARTITION)) if partitioned else None
