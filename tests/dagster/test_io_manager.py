"""LakeryIOManager with `materialize()`: values, collections, tags, metadata, versions, pins."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakery.builtin import StorableValue
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests.dagster.storables import Reading


def _latest(instance: dg.DagsterInstance, key: str, partition: str | None = None) -> Any:
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    assert records, f"no materialization of {key}"
    return records[0].asset_materialization


def _meta(materialization: Any, key: str) -> Any:
    return materialization.metadata[key].value


def test_values_collections_tags_and_metadata(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(metadata={"lakery/tags": {"team": "sensors"}}, code_version="v7")
    def reading() -> Reading:
        return Reading("s1", [1.0, 2.5])

    @dg.asset
    def summary(reading: Reading) -> dict[str, Any]:
        return {"sensor": reading.sensor, "n": len(reading.values)}

    @dg.asset
    def count(summary: dict[str, Any]) -> int:
        return summary["n"]

    @dg.asset
    def label() -> str:
        return "hello"

    @dg.asset
    def by_name(reading: Reading) -> dict[str, Reading]:
        return {"first": reading, "second": Reading("s2", [])}

    @dg.asset
    def in_order() -> list[Any]:
        return [StorableValue(1), StorableValue({"b": [2]}), Reading("s3", [3.0])]

    @dg.asset
    async def combined(
        count: int, label: str, by_name: dict[str, Reading], in_order: list[Any]
    ) -> dict[str, Any]:
        return {
            "count": count,
            "label": label,
            "keys": sorted(by_name),
            "second": by_name["second"].sensor,
            "first_item": in_order[0].value,
            "last_item": in_order[2].sensor,
        }

    assets = [reading, summary, count, label, by_name, in_order, combined]
    result = dg.materialize(assets, resources=resources, instance=instance)
    assert result.success
    assert result.output_for_node("combined") == {
        "count": 2,
        "label": "hello",
        "keys": ["first", "second"],
        "second": "s2",
        "first_item": 1,
        "last_item": "s3",
    }
    run_id = result.run_id

    # Stored tags, found through lakery's own query API.
    [stored] = lakery.find(tags={"dagster/asset_key": "reading"})
    assert stored.tags == {
        "dagster/asset_key": "reading",
        "dagster/run_id": run_id,
        "dagster/job": "__ephemeral_asset_job__",
        "dagster/step": "reading",
        "dagster/output": "result",
        "dagster/code_version": "v7",
        "team": "sensors",
    }
    assert lakery.load(stored) == Reading("s1", [1.0, 2.5])
    [summary_record] = lakery.find(tags={"dagster/asset_key": "summary"})
    assert summary_record.tags["lakery/wrapped"] == "true"
    assert summary_record.tags["dagster/input/reading"] == str(stored.id)
    items = lakery.find(tags={"dagster/asset_key": "by_name"})
    assert sorted(r.tags["lakery/collection_key"] for r in items) == ["first", "second"]
    assert {r.tags["lakery/collection"] for r in items} == {"mapping"}
    assert len({r.tags["lakery/collection_id"] for r in items}) == 1
    assert len(lakery.find(tags={"dagster/asset_key": "in_order"})) == 3

    # Materialization metadata, read back from the instance's event log.
    materialization = _latest(instance, "reading")
    assert _meta(materialization, "lakery/manifest_id") == str(stored.id)
    assert _meta(materialization, "lakery/manifest_tags")["team"] == "sensors"
    assert "tests.dagster.storables.Reading" in _meta(materialization, "lakery/class")
    table = materialization.metadata["lakery/contents"]
    rows = {row.data["key"]: row.data for row in table.records}
    assert set(rows) == {"sensor", "values"}
    by_key = {c.content_key: c for c in stored.contents}
    assert rows["values"]["sha256"] == by_key["values"].content_hash
    assert rows["values"]["size"] == by_key["values"].content_size
    assert rows["values"]["content_type"] == "application/json"
    assert rows["values"]["storage"] == "lakery.database@v1"
    total = sum(c.content_size for c in stored.contents)
    assert _meta(materialization, "dagster/size_bytes") == total
    assert _meta(materialization, "dagster/uri") == f"lakery://manifest/{stored.id}"
    assert materialization.tags["dagster/data_version"]
    combined_meta = _latest(instance, "combined")
    inputs = _meta(combined_meta, "lakery/inputs")
    assert set(inputs) == {"count", "label", "by_name", "in_order"}
    assert set(inputs["by_name"]) == {"first", "second"}
    assert _meta(_latest(instance, "by_name"), "lakery/layout")["kind"] == "mapping"
    assert _meta(_latest(instance, "in_order"), "lakery/layout")["kind"] == "list"


def test_numpy_array_output(lakery_url: str, instance: dg.DagsterInstance) -> None:
    import numpy as np

    lakery = LakeryResource(
        database_url=lakery_url, registry_modules=["lakery.builtin", "lakery.extra.numpy"]
    )

    @dg.asset
    def array() -> Any:
        return np.arange(6, dtype="float32").reshape(2, 3)

    @dg.asset
    def total(array: Any) -> float:
        assert array.dtype == np.float32 and array.shape == (2, 3)
        return float(array.sum())

    result = dg.materialize(
        [array, total], resources={"io_manager": LakeryIOManager(lakery=lakery)}, instance=instance
    )
    assert result.output_for_node("total") == 15.0
    lakery.close()


def test_data_version_follows_content(resources: dict, instance: dg.DagsterInstance) -> None:
    content = {"value": [1, 2, 3]}

    @dg.asset
    def source() -> dict[str, Any]:
        return dict(content)

    def version() -> str:
        return _latest(instance, "source").tags["dagster/data_version"]

    dg.materialize([source], resources=resources, instance=instance)
    first = version()
    dg.materialize([source], resources=resources, instance=instance)
    assert version() == first  # a new run with equal content: same version
    content["value"] = [1, 2, 4]
    dg.materialize([source], resources=resources, instance=instance)
    assert version() != first


def test_latest_materialization_wins_and_rematerialized_upstream(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    state = {"n": 1}

    @dg.asset
    def upstream() -> int:
        return state["n"]

    @dg.asset
    def downstream(upstream: int) -> int:
        return upstream * 10

    dg.materialize([upstream], resources=resources, instance=instance)
    # A newer manifest with the same tags that no materialization recorded is not loaded.
    lakery.save(
        StorableValue(999),
        tags={"dagster/asset_key": "upstream", "lakery/wrapped": "true"},
    )
    result = dg.materialize(
        [upstream, downstream], resources=resources, instance=instance, selection=[downstream]
    )
    assert result.output_for_node("downstream") == 10
    state["n"] = 2
    dg.materialize([upstream], resources=resources, instance=instance)
    result = dg.materialize(
        [upstream, downstream], resources=resources, instance=instance, selection=[downstream]
    )
    assert result.output_for_node("downstream") == 20


def test_fallback_to_lakery_records_without_materialization(resources: dict) -> None:
    @dg.asset
    def upstream() -> list[Reading]:
        return [Reading("a", [1.0]), Reading("b", [2.0])]

    @dg.asset
    def downstream(upstream: list[Reading]) -> list[str]:
        return [r.sensor for r in upstream]

    dg.materialize([upstream], resources=resources)  # its own throwaway instance
    result = dg.materialize([upstream, downstream], resources=resources, selection=[downstream])
    assert result.output_for_node("downstream") == ["a", "b"]


def test_pinned_inputs(lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance):
    state = {"n": 1}

    @dg.asset
    def upstream() -> int:
        return state["n"]

    first = dg.materialize([upstream], resources=resources, instance=instance)
    [first_record] = lakery.find(tags={"dagster/run_id": first.run_id})
    state["n"] = 2
    dg.materialize([upstream], resources=resources, instance=instance)
    lakery.save(StorableValue(3), tags={"dagster/asset_key": "upstream", "lakery/wrapped": "true"})
    labelled = lakery.save(
        StorableValue(4),
        tags={"dagster/asset_key": "upstream", "lakery/wrapped": "true", "quality": "gold"},
    )

    @dg.asset(ins={"upstream": dg.AssetIn(metadata={"lakery/manifest_id": str(first_record.id)})})
    def by_id(upstream: int) -> int:
        return upstream

    @dg.asset(ins={"upstream": dg.AssetIn(metadata={"lakery/run_id": first.run_id})})
    def by_run(upstream: int) -> int:
        return upstream

    @dg.asset(ins={"upstream": dg.AssetIn(metadata={"lakery/match_tags": {"quality": "gold"}})})
    def by_tags(upstream: int) -> int:
        return upstream

    @dg.asset
    def by_default(upstream: int) -> int:
        return upstream

    result = dg.materialize(
        [upstream, by_id, by_run, by_tags, by_default],
        resources=resources,
        instance=instance,
        selection=[by_id, by_run, by_tags, by_default],
    )
    outputs = {name: result.output_for_node(name) for name in ["by_id", "by_run", "by_tags"]}
    assert outputs == {"by_id": 1, "by_run": 1, "by_tags": 4}
    assert result.output_for_node("by_default") == 2
    [record] = lakery.find(tags={"dagster/asset_key": "by_tags"})
    assert record.tags["dagster/input/upstream"] == str(labelled.id)


def test_resource_in_async_asset(resources: dict, instance: dg.DagsterInstance) -> None:
    @dg.asset
    async def direct(lakery: LakeryResource) -> str:
        record = await lakery.save_async(Reading("x", [0.5]), tags={"kind": "direct"})
        loaded = await lakery.load_async(record.id)
        assert loaded == Reading("x", [0.5])
        sync_record = lakery.save(StorableValue("sync"), tags={"kind": "direct"})
        found = lakery.find(tags={"kind": "direct"})
        assert {r.id for r in found} == {record.id, sync_record.id}
        assert lakery.load_many([sync_record.id, record]) == [StorableValue("sync"), loaded]
        return loaded.sensor

    result = dg.materialize([direct], resources=resources, instance=instance)
    assert result.output_for_node("direct") == "x"


def test_op_job_outputs_and_inputs(lakery: LakeryResource, instance: dg.DagsterInstance):
    @dg.op
    def make() -> dict[str, int]:
        return {"a": 1}

    @dg.op
    def use(value: dict[str, int]) -> int:
        return value["a"] + 1

    @dg.job(resource_defs={"io_manager": LakeryIOManager(lakery=lakery)})
    def pipeline() -> None:
        use(make())

    result = pipeline.execute_in_process(instance=instance)
    assert result.output_for_node("use") == 2
    [record] = lakery.find(tags={"dagster/step": "use", "dagster/run_id": result.run_id})
    assert lakery.load(record).value == 2
