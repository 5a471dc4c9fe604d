"""`load_input` of `LakeryIOManager`: pick the manifests, load them in one bulk load.

Which manifests an input loads, per upstream partition:

1. ``AssetIn(metadata={"lakery/manifest_id": ...})``: that manifest id (or, for partitioned
   inputs, ``{partition_key: manifest_id}``);
2. ``"lakery/run_id"`` or ``"lakery/match_tags"``: the newest manifest of the upstream
   (and partition) saved by that run / carrying all those tags;
3. otherwise the manifests recorded by the upstream's latest materialization of that
   partition in the Dagster instance's event log — what the Dagster UI shows — falling
   back to the newest manifest of the upstream (and partition) in lakery's database when
   the instance has no lakery materialization for it (e.g. a different instance made it).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from dagster import AssetKey
from dagster import AssetRecordsFilter
from dagster import DagsterEventType
from dagster import IdentityPartitionMapping
from dagster import InputContext

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.sync import run_sync
from lakery.core.records import ManifestRecord
from lakery_dagster.metadata import LAYOUT
from lakery_dagster.metadata import LAYOUTS
from lakery_dagster.outputs import MAPPING_KEY
from lakery_dagster.shapes import Layout
from lakery_dagster.tags import ALLOW_MISSING_METADATA
from lakery_dagster.tags import AS_MAPPING_METADATA
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import COLLECTION
from lakery_dagster.tags import COLLECTION_ID
from lakery_dagster.tags import COLLECTION_KEY
from lakery_dagster.tags import MANIFEST_ID_METADATA
from lakery_dagster.tags import MATCH_TAGS_METADATA
from lakery_dagster.tags import OUTPUT
from lakery_dagster.tags import PARTITION
from lakery_dagster.tags import RUN_ID
from lakery_dagster.tags import RUN_ID_METADATA
from lakery_dagster.tags import STEP
from lakery_dagster.tags import WRAPPED

if TYPE_CHECKING:
    from lakery_dagster.resource import LakeryResource

__all__ = ["load_input"]

_BATCH = 500


def load_input(context: InputContext, resource: LakeryResource) -> tuple[Any, dict[str, str]]:
    """The input value, and ``{label: manifest_id}`` of what was loaded (for lineage)."""
    metadata = {k: getattr(v, "value", v) for k, v in (context.definition_metadata or {}).items()}
    where = _describe(context)
    partitions = [str(k) for k in context.asset_partition_keys] if _partitioned(context) else None
    wanted: list[str | None] = list(partitions) if partitions is not None else [None]
    layouts = _select(context, resource, metadata, wanted, where)
    missing = [p for p in wanted if p not in layouts]
    if missing and not metadata.get(ALLOW_MISSING_METADATA):
        shown = ", ".join(repr(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
        what = f"partitions {shown} of " if partitions is not None else ""
        msg = (
            f"lakery has nothing saved for {what}{where}: materialize "
            f"{'them' if partitions is not None else 'it'} first, or let the input skip "
            f'missing partitions with AssetIn(metadata={{"{ALLOW_MISSING_METADATA}": True}})'
        )
        raise NotFoundError(msg)
    values = _load_layouts(resource, layouts, where)
    lineage = {
        _label(partition, key): manifest_id
        for partition, layout in layouts.items()
        for key, manifest_id in layout.items
    }
    if partitions is not None and _as_mapping(context, metadata, partitions):
        return {p: values[p] for p in partitions if p in values}, lineage
    if not values:
        return None, lineage  # the only partition is missing and allowed to be
    return next(iter(values.values())), lineage


def _select(
    context: InputContext,
    resource: LakeryResource,
    metadata: Mapping[str, Any],
    wanted: list[str | None],
    where: str,
) -> dict[str | None, Layout]:
    pinned = metadata.get(MANIFEST_ID_METADATA)
    if pinned is not None:
        return _pinned(pinned, wanted, where)
    base = _upstream_tags(context)
    run_id = metadata.get(RUN_ID_METADATA)
    match = metadata.get(MATCH_TAGS_METADATA)
    if run_id is not None or match is not None:
        if match is not None and not isinstance(match, Mapping):
            msg = f'"{MATCH_TAGS_METADATA}" of {where} must be a mapping of str to str'
            raise ConfigurationError(msg)
        base = {**base, **(match or {}), **({RUN_ID: str(run_id)} if run_id else {})}
        return _newest_by_tags(resource, base, wanted)
    layouts: dict[str | None, Layout] = {}
    if context.has_asset_key:
        layouts = _from_event_log(context, wanted)
    rest = [p for p in wanted if p not in layouts]
    if rest:
        if context.has_asset_key and layouts == {}:
            context.log.debug("lakery: no materialization of %s in this instance", where)
        layouts.update(_newest_by_tags(resource, base, rest))
    return layouts


def _pinned(pinned: Any, wanted: list[str | None], where: str) -> dict[str | None, Layout]:
    if isinstance(pinned, Mapping):
        if wanted == [None]:
            msg = f'"{MANIFEST_ID_METADATA}" of unpartitioned {where} must be one manifest id'
            raise ConfigurationError(msg)
        return {p: Layout("single", [("", str(pinned[p]))]) for p in wanted if p in pinned}
    if len(wanted) != 1:
        msg = (
            f'"{MANIFEST_ID_METADATA}" of {where} names one manifest, but {len(wanted)} '
            "partitions are loaded; give {partition_key: manifest_id}"
        )
        raise ConfigurationError(msg)
    return {wanted[0]: Layout("single", [("", str(pinned))])}


def _from_event_log(context: InputContext, wanted: list[str | None]) -> dict[str | None, Layout]:
    """The layouts recorded by the latest materialization of each wanted partition."""
    instance = context.instance
    asset_key = context.asset_key
    found: dict[str | None, Layout] = {}
    if wanted == [None]:
        result = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key), limit=1)
        for record in result.records:
            layout = _layout_of(record, None)
            if layout is not None:
                found[None] = layout
        return found
    latest = _latest_storage_ids(instance, asset_key, wanted)
    storage_ids = list(latest.values())
    for start in range(0, len(storage_ids), _BATCH):
        chunk = storage_ids[start : start + _BATCH]
        records_filter = AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk)
        for record in instance.fetch_materializations(records_filter, limit=len(chunk)).records:
            partition = record.partition_key
            layout = _layout_of(record, partition)
            if layout is not None and partition is not None:
                found[str(partition)] = layout
    return found


def _latest_storage_ids(instance: Any, asset_key: AssetKey, wanted: list[Any]) -> dict[str, int]:
    try:
        return dict(
            instance.get_latest_storage_id_by_partition(
                asset_key, DagsterEventType.ASSET_MATERIALIZATION, set(wanted)
            )
        )
    except (AttributeError, TypeError, NotImplementedError):
        # Older instances: walk the materializations of these partitions, newest first.
        latest: dict[str, int] = {}
        cursor = None
        records_filter = AssetRecordsFilter(asset_key=asset_key, asset_partitions=wanted)
        while True:
            result = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor)
            for record in result.records:
                if record.partition_key is not None:
                    latest.setdefault(str(record.partition_key), record.storage_id)
            if not result.has_more or len(latest) == len(wanted):
                return latest
            cursor = result.cursor


def _layout_of(record: Any, partition: str | None) -> Layout | None:
    materialization = record.asset_materialization
    if materialization is None:
        return None
    metadata = materialization.metadata
    layout = Layout.from_json(metadata.get(LAYOUT))
    if layout is None and LAYOUTS in metadata:
        layouts = getattr(metadata[LAYOUTS], "value", metadata[LAYOUTS]) or {}
        layout = Layout.from_json(layouts.get(str(partition)))
    return layout


def _newest_by_tags(
    resource: LakeryResource, base: Mapping[str, str], wanted: list[str | None]
) -> dict[str | None, Layout]:
    """The newest manifest (or collection) with `base` tags, per partition."""
    found: dict[str | None, Layout] = {}
    for partition in wanted:
        tags = dict(base)
        if partition is not None:
            tags[PARTITION] = partition
        newest = resource.find(tags=tags, limit=1)
        if not newest:
            continue
        record = newest[0]
        collection_id = record.tags.get(COLLECTION_ID)
        if not collection_id:
            found[partition] = Layout("single", [("", str(record.id))])
            continue
        items = resource.find(tags={**tags, COLLECTION_ID: collection_id}, limit=None)
        kind = record.tags.get(COLLECTION, "mapping")
        pairs = [(r.tags.get(COLLECTION_KEY, ""), str(r.id)) for r in items]
        pairs.sort(key=lambda pair: int(pair[0]) if kind == "list" else pair[0])
        found[partition] = Layout("list" if kind == "list" else "mapping", pairs)
    return found


def _load_layouts(
    resource: LakeryResource, layouts: Mapping[str | None, Layout], where: str
) -> dict[str | None, Any]:
    """Load every manifest of every layout in one bulk load and rebuild the shapes."""
    ids = [manifest_id for layout in layouts.values() for manifest_id in layout.manifest_ids]
    try:
        parsed = [uuid.UUID(i) for i in ids]
    except ValueError:
        msg = f"{where}: {ids!r} holds a value that is not a manifest id (a UUID string)"
        raise ConfigurationError(msg) from None
    client = resource.client

    async def fetch_and_load() -> tuple[dict[uuid.UUID, ManifestRecord], list[Any]]:
        records = await client.get_many(parsed)
        absent = [str(i) for i in parsed if i not in records]
        if absent:
            msg = (
                f"{where}: manifests {absent[:5]!r} are not in the lakery database "
                f"({client.settings.redacted_url}); is LakeryResource.database_url the one "
                "the upstream was saved to?"
            )
            raise NotFoundError(msg)
        ordered = [records[i] for i in parsed]
        return records, await client.load_many(ordered)

    records, objects = run_sync(fetch_and_load())
    loaded = iter(zip(parsed, objects, strict=True))
    values: dict[str | None, Any] = {}
    for partition, layout in layouts.items():
        items = []
        for key, _ in layout.items:
            manifest_id, obj = next(loaded)
            if records[manifest_id].tags.get(WRAPPED) == "true":
                obj = getattr(obj, "value", obj)
            items.append((key, obj))
        if layout.kind == "single":
            values[partition] = items[0][1]
        elif layout.kind == "list":
            values[partition] = [obj for _, obj in items]
        else:
            values[partition] = dict(items)
    return values


def _upstream_tags(context: InputContext) -> dict[str, str]:
    if context.has_asset_key:
        return {ASSET_KEY: context.asset_key.to_user_string()}
    upstream = context.upstream_output
    if upstream is None:
        msg = f"{_describe(context)} has no upstream output to load from lakery"
        raise ConfigurationError(msg)
    tags = {RUN_ID: upstream.run_id, STEP: upstream.step_key, OUTPUT: upstream.name}
    if upstream.mapping_key:
        tags[MAPPING_KEY] = upstream.mapping_key
    return tags


def _partitioned(context: InputContext) -> bool:
    try:
        return context.has_asset_key and context.has_asset_partitions
    except Exception:
        return False


def _as_mapping(context: InputContext, metadata: Mapping[str, Any], partitions: list[str]) -> bool:
    """Whether partitions load as ``{partition_key: value}`` (else the one value itself)."""
    override = metadata.get(AS_MAPPING_METADATA)
    if override is not None:
        return bool(override)
    if len(partitions) != 1:
        return True
    try:
        step = context.step_context
        assets_def = step.assets_def
    except Exception:
        return False
    if assets_def is None:
        return False
    policy = assets_def.backfill_policy
    if policy is not None and policy.policy_type.value == "SINGLE_RUN":
        return True  # single-run assets get {partition_key: value} however many partitions
    if not step.has_partition_key and not step.has_partition_key_range:
        return True  # an unpartitioned asset over a partitioned upstream
    mapping = assets_def.get_partition_mapping(context.asset_key)
    if mapping is not None:
        return not isinstance(mapping, IdentityPartitionMapping)
    return assets_def.partitions_def != context.asset_partitions_def


def _label(partition: str | None, key: str) -> str:
    return "/".join(part for part in (partition, key) if part)


def _describe(context: InputContext) -> str:
    name = context.name if context.has_input_name else "?"
    if context.has_asset_key:
        return f"input {name!r} (asset {context.asset_key.to_user_string()!r})"
    return f"input {name!r}"
