"""A stand-in for `lakery.core.lineage` (built on another branch) with its contract:

``async def find_lineage(session, manifest_id, *, up=True, down=True, depth=3) -> Lineage``
with ``Lineage(root, manifests, edges)`` and ``LineageEdge(parent_id, child_id, label)``.

It reads the ``dagster/input/<name>`` tags (the parents' ids) by scanning every manifest,
fine for a test store only. `install` makes it ``lakery.core.lineage`` when the real module
does not exist; ``--registry-module tests.viewer.lineage_plugin`` does that in a ``lakery
serve`` subprocess.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import uuid
from dataclasses import dataclass
from dataclasses import field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery import ManifestRecord

__all__ = ["Lineage", "LineageEdge", "find_lineage", "install"]

INPUT_PREFIX = "dagster/input/"


@dataclass(frozen=True)
class LineageEdge:
    parent_id: uuid.UUID
    child_id: uuid.UUID
    label: str


@dataclass
class Lineage:
    root: uuid.UUID
    manifests: dict[uuid.UUID, ManifestRecord] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)


def _parents(record: ManifestRecord) -> list[tuple[uuid.UUID, str]]:
    found = []
    for key, value in record.tags.items():
        if key.startswith(INPUT_PREFIX):
            try:
                found.append((uuid.UUID(value), key[len(INPUT_PREFIX) :]))
            except ValueError:
                continue
    return found


async def find_lineage(
    session: AsyncSession,
    manifest_id: uuid.UUID,
    *,
    up: bool = True,
    down: bool = True,
    depth: int = 3,
) -> Lineage:
    records = {r.id: r for r in (await session.execute(select(ManifestRecord))).scalars()}
    for record in records.values():
        session.expunge(record)
    all_edges = [
        LineageEdge(parent, record.id, label)
        for record in records.values()
        for parent, label in _parents(record)
    ]
    lineage = Lineage(manifest_id)
    if manifest_id in records:
        lineage.manifests[manifest_id] = records[manifest_id]
    for direction, wanted in (("up", up), ("down", down)):
        if not wanted:
            continue
        frontier = {manifest_id}
        for _ in range(depth):
            step = [
                e
                for e in all_edges
                if (e.child_id if direction == "up" else e.parent_id) in frontier
            ]
            frontier = {e.parent_id if direction == "up" else e.child_id for e in step}
            for edge in step:
                if edge not in lineage.edges:
                    lineage.edges.append(edge)
            for node in frontier:
                if node in records:
                    lineage.manifests[node] = records[node]
    return lineage


def install() -> None:
    """Make this module importable as `lakery.core.lineage` when that does not exist."""
    if "lakery.core.lineage" in sys.modules:
        return
    if importlib.util.find_spec("lakery.core.lineage") is not None:
        return
    module = types.ModuleType("lakery.core.lineage", __doc__)
    module.Lineage = Lineage  # type: ignore[attr-defined]
    module.LineageEdge = LineageEdge  # type: ignore[attr-defined]
    module.find_lineage = find_lineage  # type: ignore[attr-defined]
    sys.modules["lakery.core.lineage"] = module
