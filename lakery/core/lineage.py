"""Lineage: which manifests a manifest was derived from, and what was derived from it.

A save records its inputs with ``derived_from=`` (`save_one`, `Saver.save_soon`): a
sequence of parents (`ManifestRecord` or manifest id), or a mapping of labels (the input's
name) to parents. Each becomes an edge in ``lakery_lineage`` (`LineageRecord`), inserted
in the save's transaction. `find_lineage` walks the edges both ways:

```python
record = await save_one(report, session=session, registry=registry,
                        derived_from={"raw": raw_record, "config": [config_id]})
lineage = await find_lineage(session, record.id, up=True, down=False, depth=5)
for edge in lineage.edges:
    print(lineage.manifests.get(edge.parent_id), "->", edge.child_id, edge.label)
```

Each direction is one recursive query (``WITH RECURSIVE ... UNION``: duplicate rows are
dropped, so even a cycle inserted by hand ends), then one query fetches the manifests.
A parent deleted with ``force=True`` keeps its edges; it is listed in `Lineage.missing`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Select
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorableTypeError
from lakery.common.tags import _is_text
from lakery.core.boundaries import database_calls
from lakery.core.records import LineageRecord
from lakery.core.records import ManifestRecord

__all__ = ["DerivedFrom", "Lineage", "LineageEdge", "Parent", "find_lineage"]

Parent = ManifestRecord | uuid.UUID
"""A parent manifest: its record or its id."""

DerivedFrom = Iterable[Parent] | Mapping[str, Parent | Iterable[Parent]]
"""What ``derived_from=`` takes: parents (label ``""``), or labels mapped to parents."""

Edge = tuple[uuid.UUID, str]
"""A parent id and the edge's label, before the child's id is known."""

_IN_CHUNK = 5000
"""Ids per ``IN (...)`` list (one query for all but the largest batches)."""

_HOW = (
    "pass derived_from=[record, ...] (ManifestRecord or uuid.UUID) or "
    "derived_from={'label': record or [records]}"
)


@dataclass(frozen=True)
class LineageEdge:
    """One derived-from edge: `child_id` was made from `parent_id` (as input `label`)."""

    parent_id: uuid.UUID
    child_id: uuid.UUID
    label: str


@dataclass(frozen=True)
class Lineage:
    """The ancestors and descendants of a manifest, as `find_lineage` found them.

    Attributes:
        root: the manifest asked about.
        manifests: every manifest of the graph that exists, by id (the root included);
            detached records without their contents.
        edges: the edges walked, sorted by (parent id, child id, label).
        missing: parents named by edges whose manifests no longer exist (deleted with
            ``force=True``).
    """

    root: uuid.UUID
    manifests: dict[uuid.UUID, ManifestRecord]
    edges: list[LineageEdge]
    missing: frozenset[uuid.UUID]


async def find_lineage(
    session: AsyncSession,
    manifest_id: uuid.UUID,
    *,
    up: bool = True,
    down: bool = True,
    depth: int | None = 3,
) -> Lineage:
    """The lineage of a manifest: its ancestors (`up`) and descendants (`down`).

    Args:
        session: the database session.
        manifest_id: the manifest to start from (a UUID or its string form).
        up: follow edges to parents, their parents, and so on.
        down: follow edges to children, their children, and so on.
        depth: how many levels to follow each way (>= 1); None for all of them (the
            walk still ends, also on a cycle inserted by hand).

    Raises:
        NotFoundError: no manifest has the id `manifest_id`.
    """
    root = _as_uuid(manifest_id)
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        msg = f"depth must be a positive int or None (all levels), got {depth!r}"
        raise ConfigurationError(msg)
    found: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
    with database_calls(session, "finding lineage"):
        for walk_up, wanted in ((True, up), (False, down)):
            if wanted:
                rows = await session.execute(_walk(root, depth, up=walk_up))
                found.update((row[0], row[1], row[2]) for row in rows)
        ids = {root} | {i for child, parent, _ in found for i in (child, parent)}
        manifests = await _manifests(session, ids)
    if root not in manifests:
        raise NotFoundError(f"no lakery manifest has the id {root}")
    edges = [LineageEdge(parent, child, label) for child, parent, label in found]
    edges.sort(key=lambda e: (e.parent_id, e.child_id, e.label))
    return Lineage(root, manifests, edges, frozenset(ids - manifests.keys()))


def _walk(root: uuid.UUID, depth: int | None, *, up: bool) -> Select[Any]:
    """One recursive query: the edges within `depth` levels of `root`, one way."""
    table = LineageRecord.__table__
    near = table.c.child_id if up else table.c.parent_id  # the side already reached
    columns: list[ColumnElement[Any]] = [table.c.child_id, table.c.parent_id, table.c.label]
    if depth is None:  # no level column: UNION drops repeated edges, so cycles end
        walk = select(*columns).where(near == root).cte("lineage_walk", recursive=True)
        reached = walk.c.parent_id if up else walk.c.child_id
        walk = walk.union(select(*columns).join(walk, near == reached))
        return select(walk.c.child_id, walk.c.parent_id, walk.c.label)
    level = literal(1).label("level")
    walk = select(*columns, level).where(near == root).cte("lineage_walk", recursive=True)
    reached = walk.c.parent_id if up else walk.c.child_id
    step = (
        select(*columns, walk.c.level + 1).join(walk, near == reached).where(walk.c.level < depth)
    )
    walk = walk.union(step)
    return select(walk.c.child_id, walk.c.parent_id, walk.c.label).distinct()


async def _manifests(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, ManifestRecord]:
    wanted = sorted(ids)
    found: dict[uuid.UUID, ManifestRecord] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        statement = select(ManifestRecord).where(ManifestRecord.id.in_(chunk))
        for record in (await session.execute(statement)).scalars():
            found[record.id] = record
    for record in found.values():
        if record in session:
            session.expunge(record)
    return found


# -- saving: derived_from= -------------------------------------------------------------


def parent_edges(derived_from: DerivedFrom | None) -> tuple[Edge, ...]:
    """``derived_from=`` as (parent id, label) pairs, each once; checked before saving.

    Raises:
        StorableTypeError: parents that are not records or UUIDs, or labels not str.
        ConfigurationError: a label with a NUL character or a lone surrogate.
    """
    if derived_from is None:
        return ()
    edges: list[Edge] = []
    if isinstance(derived_from, Mapping):
        for label, parents in derived_from.items():
            _check_label(label)
            if isinstance(parents, ManifestRecord | uuid.UUID):
                edges.append((_parent_id(parents), label))
            else:
                edges.extend((p, label) for p in _parent_ids(parents, f"label {label!r}"))
    else:
        edges.extend((p, "") for p in _parent_ids(derived_from, "derived_from"))
    return tuple(dict.fromkeys(edges))


def _parent_ids(parents: Any, where: str) -> list[uuid.UUID]:
    if isinstance(parents, str | bytes | ManifestRecord | uuid.UUID) or not isinstance(
        parents, Iterable
    ):
        msg = f"{where} must be a sequence of parents, got {type(parents).__name__}; {_HOW}"
        raise StorableTypeError(msg)
    return [_parent_id(parent) for parent in parents]


def _parent_id(parent: Any) -> uuid.UUID:
    if isinstance(parent, uuid.UUID):
        return parent
    if isinstance(parent, ManifestRecord):
        manifest_id = parent.__dict__.get("id")
        if isinstance(manifest_id, uuid.UUID):
            return manifest_id
        msg = "a parent ManifestRecord has no id yet: save it (or flush it) first"
        raise StorableTypeError(msg)
    hint = " (convert it with uuid.UUID(text))" if isinstance(parent, str) else ""
    msg = f"a parent must be a ManifestRecord or a uuid.UUID, got {parent!r}{hint}; {_HOW}"
    raise StorableTypeError(msg)


def _check_label(label: Any) -> None:
    if not isinstance(label, str):
        msg = f"derived_from labels must be str (the input's name), got {label!r}; {_HOW}"
        raise StorableTypeError(msg)
    if not _is_text(label):
        msg = (
            f"the derived_from label {label!r} must be plain text: remove NUL characters "
            "('\\x00') and lone surrogates"
        )
        raise ConfigurationError(msg)


async def check_parents(session: AsyncSession, parents: Sequence[uuid.UUID]) -> None:
    """Raise `NotFoundError` naming the parents that do not exist (one query per
    `_IN_CHUNK` ids). On PostgreSQL the parents found are locked ``FOR SHARE`` until the
    save commits, so a concurrent delete cannot orphan the new edges."""
    wanted = list(dict.fromkeys(parents))
    found: set[uuid.UUID] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        statement = select(ManifestRecord.id).where(ManifestRecord.id.in_(chunk))
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(read=True)
        found.update((await session.execute(statement)).scalars())
    missing = [str(p) for p in wanted if p not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        msg = (
            f"derived_from names {len(missing)} manifest(s) that do not exist: {shown}; "
            "nothing was saved (pass the records or ids of saved manifests)"
        )
        raise NotFoundError(msg)


async def insert_edges(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert edge rows (``child_id``, ``parent_id``, ``label``) in one statement."""
    if rows:
        await session.execute(insert(LineageRecord.__table__), rows)


def _as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, ManifestRecord):
        return value.id
    try:
        return uuid.UUID(str(value))
    except ValueError:
        msg = f"{value!r} is not a manifest id (a UUID such as record.id)"
        raise ConfigurationError(msg) from None
