"""Load what an input selected: every manifest of every partition in one bulk load."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.core.records import ManifestRecord
from lakery_dagster.selection.strategy import Selected
from lakery_dagster.selection.strategy import layout_of
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Stored
from lakery_dagster.shapes import restore_type
from lakery_dagster.tags import WRAPPED

if TYPE_CHECKING:
    from lakery_dagster.client import LakeryClient

__all__ = ["lineage", "load_selected"]


async def load_selected(
    client: LakeryClient,
    selected: Mapping[str | None, Selected],
    where: str,
    columns: list[str] | None,
) -> dict[str | None, Any]:
    """``{partition: value}``: the manifests fetched where only their ids are known, all
    loaded at once, each partition's output rebuilt in its saved shape."""
    ids = _manifest_ids(selected, where)
    records = await _records(client, selected, ids, where)
    objects = await client.load_many([records[i] for i in ids], columns=columns)
    loaded = iter(zip(ids, objects, strict=True))
    values: dict[str | None, Any] = {}
    for partition, chosen in selected.items():
        layout = layout_of(chosen)
        items: list[tuple[str, Any, Mapping[str, str]]] = []
        for key, _ in layout.items:
            manifest_id, obj = next(loaded)
            tags = records[manifest_id].tags
            if tags.get(WRAPPED) == "true":
                obj = getattr(obj, "value", obj)
            items.append((key, obj, tags))
        values[partition] = _rebuild(layout, items)
    return values


def lineage(selected: Mapping[str | None, Selected]) -> dict[str, str]:
    """``{label: manifest_id}`` of what was loaded: ``partition/key``, "" for a lone one."""
    return {
        "/".join(part for part in (partition, key) if part): manifest_id
        for partition, chosen in selected.items()
        for key, manifest_id in layout_of(chosen).items
    }


def _manifest_ids(selected: Mapping[str | None, Selected], where: str) -> list[uuid.UUID]:
    ids = [i for chosen in selected.values() for i in layout_of(chosen).manifest_ids]
    try:
        return [uuid.UUID(i) for i in ids]
    except ValueError:
        msg = f"{where}: {ids!r} holds a value that is not a manifest id (a UUID string)"
        raise ConfigurationError(msg) from None


async def _records(
    client: LakeryClient,
    selected: Mapping[str | None, Selected],
    ids: list[uuid.UUID],
    where: str,
) -> dict[uuid.UUID, ManifestRecord]:
    """The records of `ids`: those at hand, the others fetched (all must exist)."""
    records = {
        record.id: record
        for chosen in selected.values()
        if isinstance(chosen, Stored)
        for record in chosen.records
    }
    unknown = [i for i in ids if i not in records]
    if unknown:
        records.update(await client.get_many(unknown))
    absent = [str(i) for i in ids if i not in records]
    if absent:
        msg = (
            f"{where}: manifests {absent[:5]!r} are not in the lakery database "
            f"({client.settings.redacted_url}); is LakeryResource.database_url the one "
            "the upstream was saved to?"
        )
        raise NotFoundError(msg)
    return records


def _rebuild(layout: Layout, items: list[tuple[str, Any, Mapping[str, str]]]) -> Any:
    """One saved output from its loaded items ``(key, object, manifest tags)``."""
    if layout.kind == "single":
        return restore_type(items[0][1], items[0][2])
    if layout.kind == "list":
        return restore_type([obj for _, obj, _ in items], items[0][2] if items else {})
    return {key: obj for key, obj, _ in items}
