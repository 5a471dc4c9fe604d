"""`handle_output` of `LakeryIOManager`: tag, save in one transaction, describe to Dagster."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from dagster import DataVersion
from dagster import MultiPartitionsDefinition
from dagster import OutputContext

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import StorableTypeError
from lakery.common.sync import run_sync
from lakery.core.records import ManifestRecord
from lakery.core.storable import Storable
from lakery_dagster.context import assets_def_of
from lakery_dagster.context import context_attribute
from lakery_dagster.context import is_single_run
from lakery_dagster.context import step_context_hook
from lakery_dagster.metadata import LAYOUTS
from lakery_dagster.metadata import data_version_of
from lakery_dagster.metadata import materialization_metadata
from lakery_dagster.run_outputs import output_key
from lakery_dagster.run_outputs import remember
from lakery_dagster.shapes import VALUE_TYPE
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Shape
from lakery_dagster.shapes import Stored
from lakery_dagster.shapes import plan_value
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import CODE_VERSION
from lakery_dagster.tags import COLLECTION
from lakery_dagster.tags import COLLECTION_ID
from lakery_dagster.tags import COLLECTION_KEY
from lakery_dagster.tags import JOB
from lakery_dagster.tags import MAPPING_KEY
from lakery_dagster.tags import OUTPUT
from lakery_dagster.tags import RUN_ID
from lakery_dagster.tags import STEP
from lakery_dagster.tags import WRAPPED
from lakery_dagster.tags import input_tags
from lakery_dagster.tags import partition_tags
from lakery_dagster.tags import user_tags
from lakery_dagster.viewer_links import check_viewer_url

if TYPE_CHECKING:
    from lakery_dagster.resource import LakeryResource

__all__ = ["save_output"]


def save_output(
    context: OutputContext,
    obj: Any,
    resource: LakeryResource,
    inputs: Mapping[str, Mapping[str, str]],
) -> None:
    """Save an output (one manifest per storable, all in one transaction) and report it."""
    where = _describe(context)
    viewer_url = check_viewer_url(resource.viewer_url)
    registry = resource.registry
    plans = _plan(context, obj, where, registry)
    base = {
        **_context_tags(context),
        **user_tags(context.definition_metadata, where=where),
        **input_tags(inputs),
    }
    items: list[tuple[Storable, dict[str, str]]] = []
    slots: list[tuple[str | None, str]] = []
    for partition, dimensions, shape in plans:
        shape_tags = dict(base)
        if partition is not None:
            shape_tags.update(partition_tags(partition, dimensions))
        if shape.kind != "single":
            shape_tags.update({COLLECTION: shape.kind, COLLECTION_ID: uuid.uuid4().hex})
        if shape.value_type:
            shape_tags[VALUE_TYPE] = shape.value_type
        for entry in shape.entries:
            tags = dict(shape_tags)
            if shape.kind != "single":
                tags[COLLECTION_KEY] = entry.key
            if entry.wrapped:
                tags[WRAPPED] = "true"
            items.append((entry.obj, tags))
            slots.append((partition, entry.key))
    lineage = _derived_from(inputs)
    try:
        records = run_sync(resource.client.save_many(items, [lineage] * len(items)))
    except LakeryError as exc:
        exc.add_note(f"lakery: nothing of {where} was saved")
        raise
    grouped: dict[str | None, list[tuple[str, ManifestRecord]]] = {}
    for (partition, key), record in zip(slots, records, strict=True):
        grouped.setdefault(partition, []).append((key, record))
    kinds = {partition: shape.kind for partition, _, shape in plans}
    layouts = {
        partition: Layout(kinds[partition], [(key, str(r.id)) for key, r in items])
        for partition, items in grouped.items()
    }
    _remember(context, resource, grouped, layouts)
    shapes = {partition: shape for partition, _, shape in plans}
    _report(context, grouped, layouts, resource, inputs, shapes, viewer_url)
    _set_data_version(context, grouped)


def _derived_from(inputs: Mapping[str, Mapping[str, str]]) -> dict[str, list[uuid.UUID]]:
    """Lineage edges to every manifest the step loaded, labelled by input name."""
    try:
        return {name: [uuid.UUID(i) for i in ids.values()] for name, ids in inputs.items() if ids}
    except ValueError:
        msg = f"lakery: the loaded inputs {dict(inputs)!r} hold a value that is not a manifest id"
        raise ConfigurationError(msg) from None


def _plan(
    context: OutputContext, obj: Any, where: str, registry: Any
) -> list[tuple[str | None, dict[str, str] | None, Shape]]:
    if not context.has_asset_partitions:
        return [(None, None, plan_value(obj, registry, where=where))]
    keys = list(context.asset_partition_keys)
    partitions_def = _partitions_def(context)
    by_key = {str(k): k for k in keys}
    per_partition = _per_partition_values(context, obj, list(by_key), where)
    if per_partition is None:
        key = keys[0]
        shape = plan_value(obj, registry, where=where)
        return [(str(key), _dimensions(key, partitions_def), shape)]
    return [
        (
            name,
            _dimensions(by_key[name], partitions_def),
            plan_value(value, registry, where=f"{where}, partition {name!r}"),
        )
        for name, value in per_partition.items()
    ]


def _per_partition_values(
    context: OutputContext, obj: Any, keys: list[str], where: str
) -> dict[str, Any] | None:
    """``{partition_key: value}`` for a run over several partitions, else None."""
    if len(keys) == 1:
        single = keys[0]
        if (
            isinstance(obj, Mapping)
            and len(obj) == 1
            and str(next(iter(obj))) == single
            and is_single_run(assets_def_of(context))
        ):
            return {single: next(iter(obj.values()))}
        return None
    if not isinstance(obj, Mapping):
        msg = (
            f"{where} ran for {len(keys)} partitions at once (a single-run backfill) and "
            f"returned {type(obj).__qualname__}; return a dict {{partition_key: value}} with "
            "one entry per partition in context.partition_keys"
        )
        raise StorableTypeError(msg)
    given = {str(k): v for k, v in obj.items()}
    missing = [k for k in keys if k not in given]
    extra = [k for k in given if k not in set(keys)]
    if missing or extra:
        msg = (
            f"{where} ran for {len(keys)} partitions and must return one value per partition "
            f"key; missing: {missing[:5]!r}, not targeted: {extra[:5]!r}"
        )
        raise StorableTypeError(msg)
    return {k: given[k] for k in keys}


def _remember(
    context: OutputContext,
    resource: LakeryResource,
    grouped: Mapping[str | None, list[tuple[str, ManifestRecord]]],
    layouts: Mapping[str | None, Layout],
) -> None:
    """Let inputs of this run in this process load these records directly."""
    run_id = context_attribute(context, "run_id")
    if not run_id:
        return
    asset_key = context.asset_key.to_user_string() if context.has_asset_key else None
    database = resource.client.settings.url
    for partition, items in grouped.items():
        key = output_key(
            asset_key=asset_key,
            partition=partition,
            step_key=context_attribute(context, "step_key"),
            output_name=context_attribute(context, "name"),
            mapping_key=context.mapping_key,
        )
        stored = Stored(layouts[partition], tuple(record for _, record in items))
        remember(str(run_id), key, database, stored)


def _report(
    context: OutputContext,
    grouped: dict[str | None, list[tuple[str, ManifestRecord]]],
    layouts: Mapping[str | None, Layout],
    resource: LakeryResource,
    inputs: Mapping[str, Mapping[str, str]],
    shapes: Mapping[str | None, Shape],
    viewer_url: str,
) -> None:
    registry = resource.registry
    if len(grouped) == 1:
        partition, records = next(iter(grouped.items()))
        metadata = materialization_metadata(
            layouts[partition],
            records,
            registry,
            inputs,
            shape=shapes.get(partition),
            viewer_url=viewer_url,
        )
        context.add_output_metadata(metadata)
        return
    # A single-run backfill: one materialization per partition, each with its own metadata.
    add = step_context_hook(context, "add_asset_metadata")
    try:
        if add is None:
            raise AttributeError("StepExecutionContext.add_asset_metadata")
        for partition, records in grouped.items():
            metadata = materialization_metadata(
                layouts[partition],
                records,
                registry,
                inputs,
                shape=shapes.get(partition),
                viewer_url=viewer_url,
            )
            add(metadata, asset_key=context.asset_key, partition_key=partition)
    except Exception as exc:
        context.log.warning(
            "lakery: per-partition metadata is unavailable (%s); recording all partitions' "
            "manifests on every partition's materialization instead",
            exc,
        )
        context.add_output_metadata(
            {LAYOUTS: {str(p): layout.to_json() for p, layout in layouts.items()}}
        )


def _set_data_version(
    context: OutputContext, grouped: Mapping[str | None, list[tuple[str, ManifestRecord]]]
) -> None:
    """Make the data version follow the stored content (not the run), where Dagster allows."""
    if not context.has_asset_key or not grouped:
        return
    version = DataVersion(data_version_of(grouped))
    set_version = step_context_hook(context, "set_data_version")
    if set_version is None:
        context.log.debug("lakery: this Dagster cannot take a data version from an IO manager")
        return
    try:
        set_version(context.asset_key, version)
    except Exception as exc:
        context.log.debug("lakery: cannot set the data version (%s)", exc)


def _context_tags(context: OutputContext) -> dict[str, str]:
    tags: dict[str, str] = {}
    if context.has_asset_key:
        tags[ASSET_KEY] = context.asset_key.to_user_string()
    for tag, attribute in ((RUN_ID, "run_id"), (JOB, "job_name"), (STEP, "step_key")):
        value = context_attribute(context, attribute)
        if value:
            tags[tag] = str(value)
    name = context_attribute(context, "name")  # unset in build_output_context(asset_key=...)
    if name:
        tags[OUTPUT] = str(name)
    if context.mapping_key:
        tags[MAPPING_KEY] = context.mapping_key
    code_version = _code_version(context)
    if code_version:
        tags[CODE_VERSION] = code_version
    return tags


def _code_version(context: OutputContext) -> str | None:
    if not context.has_asset_key:
        return None
    try:
        return context.asset_spec.code_version
    except Exception:
        return None


def _partitions_def(context: OutputContext) -> Any:
    try:
        return context.asset_partitions_def
    except Exception:
        return None


def _dimensions(key: Any, partitions_def: Any) -> dict[str, str] | None:
    by_dimension = getattr(key, "keys_by_dimension", None)
    if by_dimension:
        return dict(by_dimension)
    if isinstance(partitions_def, MultiPartitionsDefinition):
        try:
            return dict(partitions_def.get_partition_key_from_str(str(key)).keys_by_dimension)
        except Exception:
            return None
    return None


def _describe(context: OutputContext) -> str:
    if context.has_asset_key:
        return f"the output of asset {context.asset_key.to_user_string()!r}"
    step = context_attribute(context, "step_key") or "?"
    return f"output {context.name!r} of step {step!r}"
