"""Deleting manifests: by id or by a tag / class / time query, with a dry run.

A manifest and its content rows go in one transaction. The blobs they referenced stay in
their storages, since other manifests may share them (identical content is stored once);
garbage collection (`lakery.maintenance.collect_garbage`) removes those no content record
references any more, once they are older than its grace period.

Lineage: a manifest's own derived-from edges go with it. A manifest that other manifests
were derived from (its dependants) is not deleted unless ``force=True``
(`HasDependantsError` names them); with force, the dependants' edges stay and name a
missing parent (`lakery.core.Lineage.missing`, reported by `lakery verify`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import HasDependantsError
from lakery.common.tags import validate_tags
from lakery.core.query import ClassFilter
from lakery.core.query import ManifestQuery
from lakery.core.query import as_manifest_id
from lakery.core.query import find_manifests
from lakery.core.query import select_manifests
from lakery.core.records import ContentRecord
from lakery.core.records import LineageRecord
from lakery.core.records import ManifestRecord
from lakery.maintenance.progress import Progress
from lakery.maintenance.progress import report

__all__ = ["DeleteResult", "delete_manifests"]

_IN_CHUNK = 500


@dataclass
class DeleteResult:
    """What `delete_manifests` deleted or, in a dry run, would delete.

    Attributes:
        manifests: the matching manifest records (detached), newest first.
        contents: how many content records they have (deleted with them).
        content_bytes: the total size of those content parts.
        missing: requested ids that match no manifest (or not the other filters).
        dry_run: True if nothing was deleted.
        dependants: the matching manifests that others (not deleted with them) were
            derived from, each with those others' ids; a delete of these needs
            ``force=True``, and leaves the others' edges naming a missing parent.
    """

    manifests: list[ManifestRecord]
    contents: int = 0
    content_bytes: int = 0
    missing: list[uuid.UUID] = field(default_factory=list)
    dry_run: bool = False
    dependants: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        """How many manifests were deleted (0 in a dry run)."""
        return 0 if self.dry_run else len(self.manifests)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "dry_run": self.dry_run,
            "manifests": [str(m.id) for m in self.manifests],
            "deleted": self.deleted,
            "contents": self.contents,
            "content_bytes": self.content_bytes,
            "missing": [str(m) for m in self.missing],
            "dependants": {str(p): [str(c) for c in cs] for p, cs in self.dependants.items()},
        }


async def delete_manifests(
    session: AsyncSession,
    *,
    ids: Iterable[uuid.UUID | str] | None = None,
    tags: Mapping[str, str] | None = None,
    cls: ClassFilter | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> DeleteResult:
    """Delete manifests and their content records; their blobs are left for gc.

    Every given filter must match (ids and a query together select the listed ids that
    also match the query). At least one filter is required, so that a forgotten argument
    cannot delete everything.

    Args:
        session: the database session; it is committed (or rolled back on error).
        ids: manifest ids (UUIDs or their string form).
        tags: tags every deleted manifest has (with these exact values).
        cls: only manifests of this storable class (or class id).
        since: only manifests created at or after this time (timezone-aware).
        before: only manifests created before this time (timezone-aware).
        limit: at most this many manifests (the newest); None for all that match.
        dry_run: only report what would be deleted (dependants included, not raised).
        force: delete manifests that others were derived from too; the others' lineage
            edges stay, naming a missing parent.
        progress: called with ``("delete", done, total)`` as manifests are deleted.

    Returns:
        The matching manifests, how many content records and bytes they hold, the
        requested ids that were not found, and the manifests derived from them.

    Raises:
        HasDependantsError: other manifests were derived from some of the matching ones
            and `force` is False; nothing was deleted.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        msg = f"limit must be a positive int or None, got {limit!r}"
        raise ConfigurationError(msg)
    wanted_tags = validate_tags(tags, what="the tags to delete by")
    id_list = None if ids is None else list(dict.fromkeys(as_manifest_id(i) for i in ids))
    if id_list is None and not (wanted_tags or cls is not None or since or before):
        msg = (
            "delete_manifests needs ids or a query (tags, cls, since or before); "
            "nothing was deleted"
        )
        raise ConfigurationError(msg)
    query: ManifestQuery = {
        "tags": wanted_tags or None,
        "cls": cls,
        "since": since,
        "before": before,
    }
    try:
        if id_list is None:
            manifests = await find_manifests(session, **query, limit=limit)
            missing: list[uuid.UUID] = []
        else:
            manifests, missing = await _by_ids(session, id_list, query, limit)
        result = DeleteResult(manifests, missing=missing, dry_run=dry_run)
        result.contents, result.content_bytes = await _content_totals(session, manifests)
        result.dependants = await _dependants(session, [m.id for m in manifests])
        if result.dependants and not (dry_run or force):
            raise _refused(result.dependants)
        if not dry_run:
            await _delete(session, [m.id for m in manifests], progress)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return result


async def _by_ids(
    session: AsyncSession,
    ids: list[uuid.UUID],
    query: ManifestQuery,
    limit: int | None,
) -> tuple[list[ManifestRecord], list[uuid.UUID]]:
    dialect = session.get_bind().dialect.name
    found: dict[uuid.UUID, ManifestRecord] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        statement = select_manifests(dialect=dialect, **query, limit=None)
        statement = statement.where(ManifestRecord.id.in_(chunk))
        for record in (await session.execute(statement)).scalars():
            found[record.id] = record
    for record in found.values():
        session.expunge(record)
    manifests = sorted(found.values(), key=lambda m: (m.created_at, m.id), reverse=True)
    if limit is not None:
        manifests = manifests[:limit]
    return manifests, [i for i in ids if i not in found]


async def _content_totals(
    session: AsyncSession, manifests: Sequence[ManifestRecord]
) -> tuple[int, int]:
    count = total = 0
    ids = [m.id for m in manifests]
    for start in range(0, len(ids), _IN_CHUNK):
        statement = select(
            func.count(ContentRecord.id), func.coalesce(func.sum(ContentRecord.content_size), 0)
        ).where(ContentRecord.manifest_id.in_(ids[start : start + _IN_CHUNK]))
        row = (await session.execute(statement)).one()
        count += int(row[0])
        total += int(row[1])
    return count, total


async def _dependants(
    session: AsyncSession, ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The manifests derived from those of `ids`, except those in `ids` themselves."""
    deleted = set(ids)
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        statement = (
            select(LineageRecord.parent_id, LineageRecord.child_id)
            .where(LineageRecord.parent_id.in_(ids[start : start + _IN_CHUNK]))
            .distinct()
            .order_by(LineageRecord.parent_id, LineageRecord.child_id)
        )
        for parent, child in (await session.execute(statement)).all():
            if child not in deleted:
                found.setdefault(parent, []).append(child)
    return found


def _refused(dependants: dict[uuid.UUID, list[uuid.UUID]]) -> HasDependantsError:
    shown = "; ".join(
        f"{parent} has {len(children)} ({', '.join(str(c) for c in children[:3])}"
        + (", ...)" if len(children) > 3 else ")")
        for parent, children in list(dependants.items())[:5]
    )
    more = f"; and {len(dependants) - 5} more" if len(dependants) > 5 else ""
    msg = (
        f"refusing to delete {len(dependants)} manifest(s) that others were derived from: "
        f"{shown}{more}. Delete the dependants too, or pass force=True (lakery delete "
        "--force) to keep their lineage edges naming a missing parent; nothing was deleted"
    )
    return HasDependantsError(msg, dependants=dependants)


async def _delete(session: AsyncSession, ids: list[uuid.UUID], progress: Progress | None) -> None:
    """Content and lineage rows first (SQLite enforces the cascade only with PRAGMA
    foreign_keys=ON); edges naming a deleted manifest as parent stay."""
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        await session.execute(delete(ContentRecord).where(ContentRecord.manifest_id.in_(chunk)))
        await session.execute(delete(LineageRecord).where(LineageRecord.child_id.in_(chunk)))
        await session.execute(delete(ManifestRecord).where(ManifestRecord.id.in_(chunk)))
        report(progress, "delete", min(start + _IN_CHUNK, len(ids)), len(ids))
