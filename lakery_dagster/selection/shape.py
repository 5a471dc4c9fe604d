"""The loaded values as the input gets them: one value, ``{partition_key: value}``, a table.

As Dagster's `UPathIOManager`: no upstream partition gives None, one its value, several
``{partition_key: value}`` (see `as_mapping` for when one or none is a mapping).

Tables (`lakery_dagster.tables`): ``"columns"`` loads only those columns (when loading),
``"lakery/concat"`` concatenates the partitions' tables, and a table annotation converts
what was loaded to the annotated library.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from dagster import IdentityPartitionMapping
from dagster import InputContext
from dagster import LastPartitionMapping
from dagster import TimeWindowPartitionMapping

from lakery_dagster.context import assets_def_of
from lakery_dagster.context import is_single_run
from lakery_dagster.selection.request import InputRequest
from lakery_dagster.tables import concat_partitions
from lakery_dagster.tables import convert_input
from lakery_dagster.tables import partition_order
from lakery_dagster.tags import AS_MAPPING_METADATA

__all__ = ["as_mapping", "input_value"]


def input_value(
    context: InputContext, request: InputRequest, values: Mapping[str | None, Any]
) -> Any:
    """What the input gets from `values` (``{partition: loaded value}``)."""
    partitions, annotation, where = request.partitions, request.annotation, request.where
    if partitions is not None and request.concat and partitions:
        found = {p: values[p] for p in partitions if p in values}
        table = concat_partitions(found, partition_order(context, partitions), where)
        return convert_input(table, annotation, where)
    if partitions is not None and as_mapping(context, request):
        found = {p: values[p] for p in partitions if p in values}
        return convert_input(found, annotation, where)
    if not values:
        return None  # no upstream partition, or the only one is missing and allowed to be
    return convert_input(next(iter(values.values())), annotation, where)


def as_mapping(context: InputContext, request: InputRequest) -> bool:
    """Whether partitions load as ``{partition_key: value}`` (else the one value, or None).

    ``lakery/as_mapping`` decides when set. Otherwise, as Dagster's `UPathIOManager`, only
    several upstream partitions make a mapping, with two exceptions for none or one: a
    single-run asset (its body takes ranges), and an input annotated as a ``dict`` /
    ``Mapping`` whose partition mapping can give several partitions (a time window, all
    partitions, a static mapping; not the same or the previous partition, whose value may
    itself be a dict).
    """
    override = request.metadata.get(AS_MAPPING_METADATA)
    if override is not None:
        return bool(override)
    if request.partitions is not None and len(request.partitions) > 1:
        return True
    assets_def = assets_def_of(context)
    if assets_def is not None and is_single_run(assets_def):
        return True
    return _is_mapping_type(request.annotation) and not _one_to_one(context, assets_def)


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
