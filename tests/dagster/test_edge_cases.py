"""Edge cases where `LakeryIOManager` follows Dagster's own IO managers.

- an input mapped to 0 or 1 upstream partitions gets ``None`` / the value (as
  ``UPathIOManager``), unless its annotation (``dict[...]``) or ``lakery/as_mapping``
  asks for ``{partition_key: value}``; the self-dependency pattern works;
- ``build_input_context`` without an instance (unit tests of the IO manager) loads
  lakery's newest manifest of the asset;
- tuple outputs are stored (as a JSON list) and load back as tuples.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import dagster as dg

from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-08")
LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c"])
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
TWO_DAYS_BEFORE = dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=-1)


def _run(assets: list, resources: dict, instance: dg.DagsterInstance, **kwargs: Any) -> Any:
    return dg.materialize(assets, resources=resources, instance=instance, **kwargs)


def test_self_dependency_on_the_previous_partition(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    """Dagster's documented pattern: the first partition gets None, the next the value."""

    @dg.asset(
        partitions_def=DAYS,
        ins={"prev": dg.AssetIn(key="running_total", partition_mapping=PREVIOUS_DAY)},
    )
    def running_total(context, prev: Optional[int]) -> int:  # noqa: UP045 (as Dagster's docs)
        return (prev or 0) + int(context.partition_key[-2:])

    totals = {}
    for day in ["2024-01-01", "2024-01-02", "2024-01-03"]:
        result = _run([running_total], resources, instance, partition_key=day)
        totals[day] = result.output_for_node("running_total")
    assert totals == {"2024-01-01": 1, "2024-01-02": 3, "2024-01-03": 6}


def test_self_dependency_with_dict_values(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    """A dict annotation over the previous partition describes the value, not a mapping."""

    @dg.asset(
        partitions_def=DAYS,
        ins={"prev": dg.AssetIn(key="state", partition_mapping=PREVIOUS_DAY)},
    )
    def state(context, prev: Optional[dict[str, int]]) -> dict[str, int]:  # noqa: UP045
        day = int(context.partition_key[-2:])
        return {"days": (prev or {}).get("days", 0) + 1, "last": day}

    for day in ["2024-01-01", "2024-01-02", "2024-01-03"]:
        result = _run([state], resources, instance, partition_key=day)
    assert result.output_for_node("state") == {"days": 3, "last": 3}


def test_one_mapped_partition_is_the_value_unless_annotated_as_a_mapping(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> int:
        return int(context.partition_key[-2:])

    @dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=PREVIOUS_DAY)})
    def yesterday(daily: int) -> int:
        return daily

    @dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=TWO_DAYS_BEFORE)})
    def window_by_day(daily: dict[str, int]) -> dict[str, int]:
        return daily  # a window of two days, of which only one exists yet

    @dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=TWO_DAYS_BEFORE)})
    def window_unannotated(daily) -> int:
        return daily

    mapped = dg.AssetIn(partition_mapping=PREVIOUS_DAY, metadata={"lakery/as_mapping": True})

    @dg.asset(partitions_def=DAYS, ins={"daily": mapped})
    def yesterday_forced(daily) -> dict[str, int]:
        return daily

    downstream = [yesterday, window_by_day, window_unannotated, yesterday_forced]
    _run([daily], resources, instance, partition_key="2024-01-01")
    result = _run(
        [daily, *downstream], resources, instance, partition_key="2024-01-02", selection=downstream
    )
    assert result.output_for_node("yesterday") == 1
    assert result.output_for_node("window_by_day") == {"2024-01-01": 1}
    assert result.output_for_node("window_unannotated") == 1  # as UPathIOManager
    assert result.output_for_node("yesterday_forced") == {"2024-01-01": 1}


def test_no_mapped_partition_is_none_or_an_empty_mapping(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> int:
        return 1

    @dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=PREVIOUS_DAY)})
    def before_start(daily: Optional[int]) -> str:  # noqa: UP045
        return repr(daily)

    @dg.asset(partitions_def=DAYS, ins={"daily": dg.AssetIn(partition_mapping=TWO_DAYS_BEFORE)})
    def before_start_by_day(daily: dict[str, int]) -> str:
        return repr(daily)

    downstream = [before_start, before_start_by_day]
    result = _run(
        [daily, *downstream], resources, instance, partition_key="2024-01-01", selection=downstream
    )
    assert result.output_for_node("before_start") == "None"
    assert result.output_for_node("before_start_by_day") == "{}"


def test_unpartitioned_over_one_partition_is_the_value(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    only = dg.StaticPartitionsDefinition(["only"])

    @dg.asset(partitions_def=only)
    def single(context) -> str:
        return "value"

    @dg.asset
    def reader(single: str) -> str:
        return single

    @dg.asset
    def reader_by_key(single: dict[str, str]) -> dict[str, str]:
        return single

    _run([single], resources, instance, partition_key="only")
    result = _run(
        [single, reader, reader_by_key], resources, instance, selection=[reader, reader_by_key]
    )
    assert result.output_for_node("reader") == "value"
    assert result.output_for_node("reader_by_key") == {"only": "value"}


def test_unit_test_contexts_without_an_instance(lakery: LakeryResource) -> None:
    """`build_output_context` / `build_input_context` with no instance, as Dagster's docs."""
    manager = LakeryIOManager(lakery=lakery)
    key = dg.AssetKey(["unit", "numbers"])
    manager.handle_output(dg.build_output_context(asset_key=key), [1, 2, 3])
    upstream = dg.build_output_context(asset_key=key)
    context = dg.build_input_context(asset_key=key, upstream_output=upstream)
    assert manager.load_input(context) == [1, 2, 3]
    manager.handle_output(dg.build_output_context(asset_key=key), [4])
    assert manager.load_input(context) == [4]  # the newest save of the asset

    day = dg.build_output_context(asset_key=key, partition_key="2024-01-02")
    manager.handle_output(day, {"day": 2})
    context = dg.build_input_context(
        asset_key=key,
        upstream_output=day,
        partition_key="2024-01-02",
        asset_partitions_def=DAYS,
        asset_partition_key_range=dg.PartitionKeyRange("2024-01-02", "2024-01-02"),
    )
    assert manager.load_input(context) == {"day": 2}


def test_tuple_outputs_load_back_as_tuples(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset
    def triple() -> tuple[int, str, list[float]]:
        return (1, "a", [2.5])

    @dg.asset
    def received(triple: tuple[int, str, list[float]]) -> str:
        assert type(triple) is tuple
        return repr(triple)

    @dg.asset
    def received_unannotated(triple) -> str:
        assert type(triple) is tuple
        return repr(triple)

    @dg.asset
    def empty() -> tuple:
        return ()

    @dg.asset
    def received_empty(empty) -> str:
        return repr(empty)

    assets = [triple, received, received_unannotated, empty, received_empty]
    result = _run(assets, resources, instance)  # in the same run
    assert result.output_for_node("received") == "(1, 'a', [2.5])"
    assert result.output_for_node("received_empty") == "()"
    downstream = [received, received_unannotated]
    result = _run(assets, resources, instance, selection=downstream)  # from a later run
    assert result.output_for_node("received") == "(1, 'a', [2.5])"
    assert result.output_for_node("received_unannotated") == "(1, 'a', [2.5])"
    [record] = lakery.find(tags={"dagster/asset_key": "triple"})
    assert lakery.load(record).value == [1, "a", [2.5]]  # stored as a JSON list
    assert record.tags["lakery/value_type"] == "tuple"


def test_tuple_of_storables_loads_back_as_a_tuple(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    from lakery.builtin import StorableValue

    @dg.asset
    def pair() -> tuple:
        return (StorableValue(1), StorableValue("b"))

    @dg.asset
    def unpacked(pair) -> str:
        assert type(pair) is tuple
        return repr(tuple(item.value for item in pair))

    _run([pair], resources, instance)
    result = _run([pair, unpacked], resources, instance, selection=[unpacked])
    assert result.output_for_node("unpacked") == "(1, 'b')"
