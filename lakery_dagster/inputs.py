"""`load_input` of `LakeryIOManager`: pick the manifests, load them in one bulk load.

Which manifests an input loads, per upstream partition:

1. ``AssetIn(metadata={"lakery/manifest_id": ...})``: that manifest id (or, for partitioned
   inputs, ``{partition_key: manifest_id}``);
2. ``"lakery/run_id"`` or ``"lakery/match_tags"``: the newest manifest of the upstream
   (and partition) saved by that run / carrying all those tags;
3. otherwise the manifests recorded by the upstream's latest materialization of that
   partition in the Dagster instance — what the Dagster UI shows — falling back to the
   newest manifest of the upstream (and partition) in lakery's database when the instance
   has no lakery materialization for it (e.g. a different instance made it).

Case 3 is answered without reading materialization events where it can be:

- an upstream output made earlier in the same run, in this process: the records that
  `handle_output` saved (`lakery_dagster.run_outputs`), with no lookup at all;
- otherwise lakery's newest output of every wanted partition, in one query
  (`lakery_dagster.latest`), checked against the data version of the latest
  materialization of each partition (one query on the event log's tag index; for an
  unpartitioned upstream, what the step already fetched, including the run id). lakery
  sets data versions from content hashes, so a match means the same stored content.
  Partitions saved together by a single-run backfill share one data version: they are
  checked together, against what that run saved;
- partitions that do not match (a newer lakery save that no materialization recorded, a
  materialization made by another IO manager, a data version set by the asset, Dagster
  hooks that are missing) take the materialization events, as before.

When two manifests hold the same content, the data versions cannot tell them apart: the
input may then load lakery's newest one instead of the one the UI shows — the same bytes,
under another manifest id (the lineage tags name the one loaded).

Tables (`lakery_dagster.tables`): ``"columns"`` loads only those columns,
``"lakery/concat"`` concatenates the partitions' tables, and a table annotation converts
what was loaded to the annotated library.
"""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple

from dagster import AssetKey
from dagster import AssetRecordsFilter
from dagster import DagsterEventType
from dagster import DagsterInvariantViolationError
from dagster import IdentityPartitionMapping
from dagster import InputContext
from dagster import LastPartitionMapping
from dagster import TimeWindowPartitionMapping

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.sync import run_sync
from lakery.core.records import ManifestRecord
from lakery_dagster.latest import stored_from_records
from lakery_dagster.metadata import LAYOUT
from lakery_dagster.metadata import LAYOUTS
from lakery_dagster.metadata import content_digest
from lakery_dagster.metadata import data_version_of
from lakery_dagster.outputs import MAPPING_KEY
from lakery_dagster.outputs import context_attribute
from lakery_dagster.run_outputs import output_key
from lakery_dagster.run_outputs import recall
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Stored
from lakery_dagster.shapes import restore_type
from lakery_dagster.tables import concat_partitions
from lakery_dagster.tables import convert_input
from lakery_dagster.tables import input_annotation
from lakery_dagster.tables import input_columns
from lakery_dagster.tables import partition_order
from lakery_dagster.tables import wants_concat
from lakery_dagster.tags import ALLOW_MISSING_METADATA
from lakery_dagster.tags import AS_MAPPING_METADATA
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import COLLECTION_ID
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

__all__ = ["load_input", "step_of"]

_BATCH = 500
DATA_VERSION_TAG = "dagster/data_version"
"""The materialization tag that holds the data version (Dagster's ``DATA_VERSION_TAG``)."""
_MAX_RUN_CHECKS = 8
"""Single-run backfills checked per input (one query each) before taking the event log."""


def load_input(context: InputContext, resource: LakeryResource) -> tuple[Any, dict[str, str]]:
    """The input value, and ``{label: manifest_id}`` of what was loaded (for lineage)."""
    metadata = {k: getattr(v, "value", v) for k, v in (context.definition_metadata or {}).items()}
    where = _describe(context)
    partitions = [str(k) for k in context.asset_partition_keys] if _partitioned(context) else None
    wanted: list[str | None] = list(partitions) if partitions is not None else [None]
    columns = input_columns(metadata, where)
    concat = wants_concat(metadata, where)
    selected = _select(context, resource, metadata, wanted, where)
    missing = [p for p in wanted if p not in selected]
    if missing and not metadata.get(ALLOW_MISSING_METADATA):
        shown = ", ".join(repr(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
        what = f"partitions {shown} of " if partitions is not None else ""
        msg = (
            f"lakery has nothing saved for {what}{where}: materialize "
            f"{'them' if partitions is not None else 'it'} first, or let the input skip "
            f'missing partitions with AssetIn(metadata={{"{ALLOW_MISSING_METADATA}": True}})'
        )
        raise NotFoundError(msg)
    values = _load_selected(resource, selected, where, columns)
    lineage = {
        _label(partition, key): manifest_id
        for partition, chosen in selected.items()
        for key, manifest_id in _layout(chosen).items
    }
    annotation = input_annotation(context)
    return _shaped(context, metadata, partitions, values, annotation, concat), lineage


def _shaped(
    context: InputContext,
    metadata: Mapping[str, Any],
    partitions: list[str] | None,
    values: Mapping[str | None, Any],
    annotation: Any,
    concat: bool,
) -> Any:
    """The loaded values as the input gets them: one value, a mapping, or one table.

    As Dagster's `UPathIOManager`: no upstream partition gives None, one its value,
    several ``{partition_key: value}`` (see `_as_mapping` for when one or none is a mapping).
    """
    where = _describe(context)
    as_mapping = partitions is not None and _as_mapping(context, metadata, partitions, annotation)
    if partitions is not None and concat and partitions:
        found = {p: values[p] for p in partitions if p in values}
        table = concat_partitions(found, partition_order(context, partitions), where)
        return convert_input(table, annotation, where)
    if partitions is not None and as_mapping:
        found = {p: values[p] for p in partitions if p in values}
        return convert_input(found, annotation, where)
    if not values:
        return None  # no upstream partition, or the only one is missing and allowed to be
    return convert_input(next(iter(values.values())), annotation, where)


Selected = Stored | Layout
"""What an input loads for one partition: records at hand, or manifest ids to fetch."""


def _select(
    context: InputContext,
    resource: LakeryResource,
    metadata: Mapping[str, Any],
    wanted: list[str | None],
    where: str,
) -> dict[str | None, Selected]:
    pinned = metadata.get(MANIFEST_ID_METADATA)
    if pinned is not None:
        return dict(_pinned(pinned, wanted, where))
    base = _upstream_tags(context)
    run_id = metadata.get(RUN_ID_METADATA)
    match = metadata.get(MATCH_TAGS_METADATA)
    if run_id is not None or match is not None:
        if match is not None and not isinstance(match, Mapping):
            msg = f'"{MATCH_TAGS_METADATA}" of {where} must be a mapping of str to str'
            raise ConfigurationError(msg)
        base = {**base, **(match or {}), **({RUN_ID: str(run_id)} if run_id else {})}
        return dict(_newest_by_tags(resource, base, wanted))
    found: dict[str | None, Selected] = dict(_same_run(context, resource, wanted))
    rest = [p for p in wanted if p not in found]
    if not rest:
        return found
    if not context.has_asset_key or not _has_instance(context):
        # An op output, or a unit test's build_input_context(): lakery's newest manifest.
        found.update(_newest_by_tags(resource, base, rest))
        return found
    found.update(_latest(context, resource, rest, where))
    return found


def _same_run(
    context: InputContext, resource: LakeryResource, wanted: list[str | None]
) -> dict[str | None, Stored]:
    """What this process saved for the upstream earlier in this same run."""
    step = step_of(context)
    upstream = context.upstream_output
    if step is None or upstream is None or context_attribute(upstream, "run_id") != step[0]:
        return {}
    asset_key = context.asset_key.to_user_string() if context.has_asset_key else None
    database = resource.client.settings.url
    found: dict[str | None, Stored] = {}
    for partition in wanted:
        key = output_key(
            asset_key=asset_key,
            partition=partition,
            step_key=context_attribute(upstream, "step_key"),
            output_name=context_attribute(upstream, "name"),
            mapping_key=context_attribute(upstream, "mapping_key"),
        )
        stored = recall(step[0], key, database)
        if stored is not None:
            found[partition] = stored
    return found


def _latest(
    context: InputContext, resource: LakeryResource, wanted: list[str | None], where: str
) -> dict[str | None, Selected]:
    """What the upstream's latest materialization of each partition recorded.

    lakery's newest output of each partition is taken when it matches Dagster's latest
    materialization of that partition (same data version; for an unpartitioned asset also
    the same run, when the step context has it at hand). Partitions whose latest
    materialization does not match (made by another IO manager, a data version given by
    the asset, a stray newer lakery save) are looked up in the event log; those with no
    lakery materialization at all take lakery's newest output.
    """
    asset_key = context.asset_key.to_user_string()
    candidates = run_sync(resource.client.newest_outputs(asset_key=asset_key, partitions=wanted))
    versions, complete = _dagster_versions(context, wanted)
    found: dict[str | None, Selected] = {}
    for partition, stored in candidates.items():
        version = versions.get(partition)
        if version is not None and _matches(stored, version):
            found[partition] = stored
    unverified = [p for p in wanted if p not in found]
    if unverified and wanted != [None]:
        found.update(_verify_by_run(resource, asset_key, candidates, versions, unverified))
        unverified = [p for p in wanted if p not in found]
    if complete and wanted == [None] and not versions:
        # The instance has no materialization of the unpartitioned upstream at all.
        return dict(candidates)
    if complete:
        # Neither lakery nor Dagster has anything of these: never materialized.
        unverified = [p for p in unverified if p in candidates or p in versions]
    if not unverified:
        return found
    logged = _from_event_log(context, unverified)
    if not logged:
        context.log.debug("lakery: no lakery materialization of %s in this instance", where)
    for partition in unverified:
        layout = logged.get(partition)
        candidate = candidates.get(partition)
        if layout is None:
            if candidate is not None:
                found[partition] = candidate  # the instance has no lakery materialization of it
        elif candidate is not None and candidate.layout.items == layout.items:
            found[partition] = candidate
        else:
            found[partition] = layout
    return found


class _Version(NamedTuple):
    data_version: str
    run_id: str | None = None


def _matches(stored: Stored, version: _Version) -> bool:
    if content_digest(stored.items)[:32] != version.data_version:
        return False
    return version.run_id is None or stored.records[0].tags.get(RUN_ID) == version.run_id


def _dagster_versions(
    context: InputContext, wanted: list[str | None]
) -> tuple[dict[str | None, _Version], bool]:
    """The data version of the latest materialization of each partition, where cheap to get,
    and whether partitions left out have no materialization with a data version.

    Partitioned: one query on the event log's tag index. Unpartitioned: what the step
    fetched at its start for Dagster's own staleness bookkeeping (no query).
    """
    try:
        if wanted == [None]:
            info = context.step_context.maybe_fetch_and_get_input_asset_version_info(
                context.asset_key
            )
            if info is None:
                return {}, True
            if info.event_type != DagsterEventType.ASSET_MATERIALIZATION:
                return {}, False
            if info.data_version is None:
                return {}, False
            return {None: _Version(info.data_version.value, info.run_id)}, True
        storage = context.instance.event_log_storage
        versions: dict[str | None, _Version] = {}
        names = [p for p in wanted if p is not None]
        for start in range(0, len(names), _BATCH):
            latest = storage.get_latest_tags_by_partition(
                context.asset_key,
                DagsterEventType.ASSET_MATERIALIZATION,
                [DATA_VERSION_TAG],
                asset_partitions=names[start : start + _BATCH],
            )
            for partition, tags in latest.items():
                if tags.get(DATA_VERSION_TAG):
                    versions[str(partition)] = _Version(tags[DATA_VERSION_TAG])
        return versions, True
    except Exception as exc:  # not public API: without it, every partition takes the event log
        context.log.debug("lakery: cannot read data versions from the instance (%s)", exc)
        return {}, False


def _verify_by_run(
    resource: LakeryResource,
    asset_key: str,
    candidates: Mapping[str | None, Stored],
    versions: Mapping[str | None, _Version],
    unverified: list[str | None],
) -> dict[str | None, Stored]:
    """Partitions saved by one single-run backfill, whose materializations share a version.

    The run's outputs of every partition give the run's data version (`data_version_of`);
    when it is the latest materialization's, the candidates saved by that run are it.
    """
    runs: dict[tuple[str, str], list[str | None]] = {}
    for partition in unverified:
        stored, version = candidates.get(partition), versions.get(partition)
        run_id = stored.records[0].tags.get(RUN_ID) if stored is not None else None
        if stored is not None and version is not None and run_id:
            runs.setdefault((run_id, version.data_version), []).append(partition)
    found: dict[str | None, Stored] = {}
    largest_first = sorted(runs.items(), key=lambda item: -len(item[1]))
    for (run_id, data_version), partitions in largest_first[:_MAX_RUN_CHECKS]:
        outputs = run_sync(resource.client.run_outputs(asset_key=asset_key, run_id=run_id))
        if len(outputs) < 2:
            continue  # one partition: its own content digest was the version to match
        if data_version_of({p: s.items for p, s in outputs.items()}) != data_version:
            continue
        for partition in partitions:
            saved = outputs.get(partition)
            if saved is not None and saved.layout.items == candidates[partition].layout.items:
                found[partition] = candidates[partition]
    return found


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
) -> dict[str | None, Stored]:
    """The newest manifest (or collection) with `base` tags, per partition."""
    asset_key = base.get(ASSET_KEY)
    if asset_key is not None:
        return run_sync(
            resource.client.newest_outputs(asset_key=asset_key, partitions=wanted, tags=base)
        )
    found: dict[str | None, Stored] = {}
    for partition in wanted:  # op outputs (tagged by run, step and output): one partition
        tags = dict(base)
        if partition is not None:
            tags[PARTITION] = partition
        newest = resource.find(tags=tags, limit=1)
        if not newest:
            continue
        collection_id = newest[0].tags.get(COLLECTION_ID)
        if collection_id:
            newest = resource.find(tags={**tags, COLLECTION_ID: collection_id}, limit=None)
        found[partition] = stored_from_records(newest)
    return found


def _load_selected(
    resource: LakeryResource,
    selected: Mapping[str | None, Selected],
    where: str,
    columns: list[str] | None,
) -> dict[str | None, Any]:
    """Load every manifest of every partition in one bulk load and rebuild the shapes."""
    known = {
        record.id: record
        for chosen in selected.values()
        if isinstance(chosen, Stored)
        for record in chosen.records
    }
    ids = [
        manifest_id for chosen in selected.values() for manifest_id in _layout(chosen).manifest_ids
    ]
    try:
        parsed = [uuid.UUID(i) for i in ids]
    except ValueError:
        msg = f"{where}: {ids!r} holds a value that is not a manifest id (a UUID string)"
        raise ConfigurationError(msg) from None
    client = resource.client

    async def fetch_and_load() -> tuple[dict[uuid.UUID, ManifestRecord], list[Any]]:
        records = dict(known)
        unknown = [i for i in parsed if i not in records]
        if unknown:
            records.update(await client.get_many(unknown))
        absent = [str(i) for i in parsed if i not in records]
        if absent:
            msg = (
                f"{where}: manifests {absent[:5]!r} are not in the lakery database "
                f"({client.settings.redacted_url}); is LakeryResource.database_url the one "
                "the upstream was saved to?"
            )
            raise NotFoundError(msg)
        ordered = [records[i] for i in parsed]
        return records, await client.load_many(ordered, columns=columns)

    records, objects = run_sync(fetch_and_load())
    loaded = iter(zip(parsed, objects, strict=True))
    values: dict[str | None, Any] = {}
    for partition, chosen in selected.items():
        layout = _layout(chosen)
        items: list[tuple[str, Any, Mapping[str, str]]] = []
        for key, _ in layout.items:
            manifest_id, obj = next(loaded)
            tags = records[manifest_id].tags
            if tags.get(WRAPPED) == "true":
                obj = getattr(obj, "value", obj)
            items.append((key, obj, tags))
        values[partition] = _rebuild(layout, items)
    return values


def _rebuild(layout: Layout, items: list[tuple[str, Any, Mapping[str, str]]]) -> Any:
    """One saved output from its loaded items ``(key, object, manifest tags)``."""
    if layout.kind == "single":
        return restore_type(items[0][1], items[0][2])
    if layout.kind == "list":
        return restore_type([obj for _, obj, _ in items], items[0][2] if items else {})
    return {key: obj for key, obj, _ in items}


def _layout(chosen: Selected) -> Layout:
    return chosen.layout if isinstance(chosen, Stored) else chosen


def step_of(context: InputContext) -> tuple[str, str] | None:
    """``(run_id, step_key)`` of the step that loads the input, or None outside a step."""
    try:
        step_context = context.step_context
        return step_context.run_id, step_context.step.key
    except Exception:
        return None


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


def _as_mapping(
    context: InputContext, metadata: Mapping[str, Any], partitions: list[str], annotation: Any
) -> bool:
    """Whether partitions load as ``{partition_key: value}`` (else the one value, or None).

    ``lakery/as_mapping`` decides when set. Otherwise, as Dagster's `UPathIOManager`, only
    several upstream partitions make a mapping, with two exceptions for none or one: a
    single-run asset (its body takes ranges), and an input annotated as a ``dict`` /
    ``Mapping`` whose partition mapping can give several partitions (a time window, all
    partitions, a static mapping; not the same or the previous partition, whose value may
    itself be a dict).
    """
    override = metadata.get(AS_MAPPING_METADATA)
    if override is not None:
        return bool(override)
    if len(partitions) > 1:
        return True
    assets_def = _assets_def(context)
    if assets_def is not None and _is_single_run(assets_def):
        return True
    return _is_mapping_type(annotation) and not _one_to_one(context, assets_def)


def _assets_def(context: InputContext) -> Any:
    try:
        return context.step_context.assets_def
    except Exception:
        return None


def _is_single_run(assets_def: Any) -> bool:
    policy = assets_def.backfill_policy
    return policy is not None and policy.policy_type.value == "SINGLE_RUN"


def _is_mapping_type(annotation: Any) -> bool:
    """``dict``, ``Mapping``, ``dict[str, X]``, also inside ``Optional[...]``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_mapping_type(args[0])
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _one_to_one(context: InputContext, assets_def: Any) -> bool:
    """Whether the input's partition mapping gives at most one upstream partition."""
    if assets_def is None or assets_def.partitions_def is None:
        return False  # unknown (no step), or an unpartitioned asset over every partition
    mapping = assets_def.get_partition_mapping(context.asset_key)
    same = assets_def.partitions_def == context.asset_partitions_def
    if mapping is None:
        return same  # Dagster's default between equal partitions: the same partition
    if isinstance(mapping, TimeWindowPartitionMapping):
        return same and mapping.start_offset == mapping.end_offset
    return isinstance(mapping, IdentityPartitionMapping | LastPartitionMapping)


def _has_instance(context: InputContext) -> bool:
    """False for a context built without an instance (`build_input_context` in a test)."""
    try:
        return context.instance is not None
    except DagsterInvariantViolationError:
        return False


def _label(partition: str | None, key: str) -> str:
    return "/".join(part for part in (partition, key) if part)


def _describe(context: InputContext) -> str:
    name = context.name if context.has_input_name else "?"
    if context.has_asset_key:
        return f"input {name!r} (asset {context.asset_key.to_user_string()!r})"
    return f"input {name!r}"
