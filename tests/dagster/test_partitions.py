"""Partitioned assets: static, daily, multi-dimensional, dynamic, single-run ranges."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from lakery import NotFoundError
from lakery.builtin import StorableValue
from lakery_dagster import LakeryResource
from tests.dagster.conftest import lakery_error

LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-08")


def _run(assets: list, resources: dict, instance: dg.DagsterInstance, **kwargs: Any) -> Any:
    return dg.materialize(assets, resources=resources, instance=instance, **kwargs)


def _range(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def test_static_partitions_all_upstream_and_missing(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=LETTERS)
    def letter(context) -> str:
        return context.partition_key.upper()

    @dg.asset
    def every_letter(letter: dict[str, str]) -> str:
        return "".join(letter[k] for k in sorted(letter))

    @dg.asset(ins={"letter": dg.AssetIn(metadata={"lakery/allow_missing": True})})
    def some_letters(letter: dict[str, str]) -> list[str]:
        return sorted(letter)

    for key in ["a", "b", "d"]:
        _run([letter], resources, instance, partition_key=key)
    [stored] = lakery.find(tags={"dagster/asset_key": "letter", "dagster/partition": "b"})
    assert lakery.load(stored).value == "B"

    with pytest.raises(Exception) as caught:
        _run([letter, every_letter], resources, instance, selection=[every_letter])
    error = lakery_error(caught.value)
    assert isinstance(error, NotFoundError)
    assert "'c'" in str(error) and "lakery/allow_missing" in str(error)
    assert not lakery.find(tags={"dagster/asset_key": "every_letter"})
    assert not lakery.find(tags={"dagster/asset_key": "pinned_letters"})

    result = _run([letter, some_letters], resources, instance, selection=[some_letters])
    assert result.output_for_node("some_letters") == ["a", "b", "d"]

    pinned_b = lakery.save(StorableValue("pinned"), tags={"lakery/wrapped": "true"})
    pins = {"b": str(pinned_b.id), "d": str(stored.id)}

    @dg.asset(
        ins={
            "letter": dg.AssetIn(
                metadata={"lakery/manifest_id": pins, "lakery/allow_missing": True}
            )
        }
    )
    def pinned_letters(letter: dict[str, str]) -> dict[str, str]:
        return letter

    result = _run([letter, pinned_letters], resources, instance, selection=[pinned_letters])
    assert result.output_for_node("pinned_letters") == {"b": "pinned", "d": "B"}
    _run([letter], resources, instance, partition_key="c")
    result = _run([letter, every_letter], resources, instance, selection=[every_letter])
    assert result.output_for_node("every_letter") == "ABCD"
    [record] = lakery.find(tags={"dagster/asset_key": "every_letter"})
    assert {k for k in record.tags if k.startswith("dagster/input/")} == {
        f"dagster/input/letter/{k}" for k in "abcd"
    }


def test_daily_partitions_and_time_window(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> int:
        return int(context.partition_key[-2:])

    @dg.asset(
        partitions_def=DAYS,
        ins={
            "daily": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2),
                metadata={"lakery/allow_missing": True},
            )
        },
    )
    def rolling(daily: dict[str, int]) -> dict[str, int]:
        return daily

    for day in ["2024-01-03", "2024-01-04", "2024-01-05"]:
        _run([daily], resources, instance, partition_key=day)
    result = _run([daily, rolling], resources, instance, partition_key="2024-01-05")
    assert result.output_for_node("rolling") == {"2024-01-03": 3, "2024-01-04": 4, "2024-01-05": 5}
    # Only one day of this window was materialized (the others are allowed to be missing).
    result = _run([daily, rolling], resources, instance, partition_key="2024-01-03")
    assert result.output_for_node("rolling") == {"2024-01-03": 3}


def test_multi_dimensional_partitions(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    grid = dg.MultiPartitionsDefinition(
        {
            "region": dg.StaticPartitionsDefinition(["eu", "us"]),
            "kind": dg.StaticPartitionsDefinition(["x", "y"]),
        }
    )

    @dg.asset(partitions_def=grid)
    def cell(context) -> dict[str, str]:
        return dict(context.partition_key.keys_by_dimension)

    @dg.asset(partitions_def=grid)
    def same_cell(cell: dict[str, str]) -> str:
        return f"{cell['region']}-{cell['kind']}"

    key = dg.MultiPartitionKey({"region": "eu", "kind": "y"})
    result = _run([cell, same_cell], resources, instance, partition_key=key)
    assert result.output_for_node("same_cell") == "eu-y"
    [record] = lakery.find(tags={"dagster/asset_key": "cell"})
    assert record.tags["dagster/partition"] == str(key)
    assert record.tags["dagster/partition/region"] == "eu"
    assert record.tags["dagster/partition/kind"] == "y"
    assert lakery.find(tags={"dagster/partition/kind": "y", "dagster/asset_key": "same_cell"})


def test_dynamic_partitions(lakery: LakeryResource, resources: dict, instance):
    files = dg.DynamicPartitionsDefinition(name="files")

    @dg.asset(partitions_def=files)
    def parsed(context) -> list[str]:
        return context.partition_key.split("_")

    @dg.asset(partitions_def=files)
    def word_count(parsed: list[str]) -> int:
        return len(parsed)

    instance.add_dynamic_partitions("files", ["one_two", "three_four_five"])
    result = _run([parsed, word_count], resources, instance, partition_key="three_four_five")
    assert result.output_for_node("word_count") == 3
    [record] = lakery.find(tags={"dagster/partition": "three_four_five", "dagster/step": "parsed"})
    assert lakery.load(record).value == ["three", "four", "five"]


def test_single_run_backfill_range(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    policy = dg.BackfillPolicy.single_run()

    @dg.asset(partitions_def=LETTERS, backfill_policy=policy)
    def ranged(context) -> dict[str, Any]:
        return {key: {"letter": key} for key in context.partition_keys}

    @dg.asset(partitions_def=LETTERS, backfill_policy=policy)
    def ranged_down(ranged: dict[str, Any]) -> dict[str, str]:
        return {key: value["letter"] * 2 for key, value in ranged.items()}

    result = _run([ranged, ranged_down], resources, instance, tags=_range("a", "c"))
    assert result.output_for_node("ranged_down") == {"a": "aa", "b": "bb", "c": "cc"}
    records = lakery.find(tags={"dagster/asset_key": "ranged"})
    assert len(records) == 3
    by_partition = {r.tags["dagster/partition"]: r for r in records}
    assert {r.tags["dagster/run_id"] for r in records} == {result.run_id}
    assert len({r.created_at for r in records}) == 1  # one bulk save
    for key, record in by_partition.items():
        [event] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("ranged"), asset_partitions=[key]),
            limit=1,
        ).records
        metadata = event.asset_materialization.metadata
        assert metadata["lakery/manifest_id"].value == str(record.id)
        assert metadata["lakery/manifest_tags"].value["dagster/partition"] == key
        assert lakery.load(record).value == {"letter": key}

    # A single partition of a single-run asset is also {partition_key: value}.
    result = _run([ranged, ranged_down], resources, instance, partition_key="d")
    assert result.output_for_node("ranged_down") == {"d": "dd"}


def test_non_contiguous_unordered_selection(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    pairs = dg.StaticPartitionsDefinition(["ends", "middle"])

    @dg.asset(partitions_def=LETTERS)
    def letter(context) -> str:
        return context.partition_key

    @dg.asset(
        partitions_def=pairs,
        ins={
            "letter": dg.AssetIn(
                partition_mapping=dg.StaticPartitionMapping(
                    {"d": "ends", "a": "ends", "b": "middle", "c": "middle"}
                )
            )
        },
    )
    def grouped(letter: dict[str, str]) -> list[str]:
        return sorted(letter.values())

    for key in "abcd":
        _run([letter], resources, instance, partition_key=key)
    result = _run([letter, grouped], resources, instance, partition_key="ends", selection=[grouped])
    assert result.output_for_node("grouped") == ["a", "d"]


def test_fallbacks_without_dagster_hooks(
    lakery: LakeryResource,
    resources: dict,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the non-public step-context hooks, ranges still save and load correctly."""
    from lakery_dagster import outputs

    monkeypatch.setattr(outputs, "step_context_hook", lambda context, name: None)
    policy = dg.BackfillPolicy.single_run()

    @dg.asset(partitions_def=LETTERS, backfill_policy=policy)
    def ranged(context) -> dict[str, int]:
        return {key: ord(key) for key in context.partition_keys}

    @dg.asset
    def summed(ranged: dict[str, int]) -> int:
        return sum(ranged.values())

    _run([ranged], resources, instance, tags=_range("a", "d"))
    event = instance.fetch_materializations(dg.AssetKey("ranged"), limit=1).records[0]
    layouts = event.asset_materialization.metadata["lakery/layouts"].value
    assert sorted(layouts) == ["a", "b", "c", "d"]
    assert "dagster/data_version_is_user_provided" not in event.asset_materialization.tags
    result = _run([ranged, summed], resources, instance, selection=[summed])
    assert result.output_for_node("summed") == sum(map(ord, "abcd"))
