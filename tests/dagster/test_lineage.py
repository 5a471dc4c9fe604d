"""The IO manager records lineage: each output is derived from the manifests its step
loaded (labelled by input name), and with a `viewer_url` the materialization links to the
viewer's pages."""

from __future__ import annotations

import dagster as dg
import pytest

from lakery import ConfigurationError
from lakery.builtin import StorableValue
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests.dagster.conftest import lakery_error

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")


def _materialization(instance: dg.DagsterInstance, key: str) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(dg.AssetKey(key), limit=1).records
    assert records, f"no materialization of {key}"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return materialization


def _manifest_id(instance: dg.DagsterInstance, key: str) -> str:
    return str(_materialization(instance, key).metadata["lakery/manifest_id"].value)


def test_outputs_are_derived_from_the_inputs_the_step_loaded(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset
    def raw() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def scale() -> int:
        return 10

    @dg.asset
    def scaled(raw: list[int], scale: int) -> list[int]:
        return [v * scale for v in raw]

    @dg.asset
    def total(scaled: list[int]) -> int:
        return sum(scaled)

    assert dg.materialize([raw, scale], resources=resources, instance=instance).success
    sources = [raw.to_source_asset(), scale.to_source_asset()]
    assert dg.materialize([*sources, scaled, total], resources=resources, instance=instance).success
    ids = {key: _manifest_id(instance, key) for key in ("raw", "scale", "scaled", "total")}

    lineage = lakery.lineage(ids["total"], down=False, depth=None)
    edges = {(str(e.parent_id), str(e.child_id), e.label) for e in lineage.edges}
    assert edges == {
        (ids["raw"], ids["scaled"], "raw"),
        (ids["scale"], ids["scaled"], "scale"),
        (ids["scaled"], ids["total"], "scaled"),
    }
    assert {str(i) for i in lineage.manifests} == set(ids.values())
    below = lakery.lineage(ids["raw"], up=False, depth=None)
    assert {str(i) for i in below.manifests} == {ids["raw"], ids["scaled"], ids["total"]}


def test_a_fan_in_is_derived_from_every_partition(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> str:  # type: ignore[no-untyped-def]
        return context.partition_key

    @dg.asset
    def week(daily: dict[str, str]) -> list[str]:
        return sorted(daily.values())

    for day in DAYS.get_partition_keys():
        assert dg.materialize(
            [daily], resources=resources, instance=instance, partition_key=day
        ).success
    assert dg.materialize(
        [daily.to_source_asset(), week], resources=resources, instance=instance
    ).success
    week_id = _manifest_id(instance, "week")
    lineage = lakery.lineage(week_id, down=False, depth=1)
    assert len(lineage.edges) == len(DAYS.get_partition_keys())
    assert {e.label for e in lineage.edges} == {"daily"}
    tags = {
        record.tags["dagster/partition"]
        for i, record in lineage.manifests.items()
        if str(i) != week_id
    }
    assert tags == set(DAYS.get_partition_keys())


def test_a_viewer_url_links_the_materialization_and_its_inputs(
    lakery_url: str, instance: dg.DagsterInstance
) -> None:
    lakery = LakeryResource(database_url=lakery_url, viewer_url="http://127.0.0.1:8321/")
    resources = {"io_manager": LakeryIOManager(lakery=lakery), "lakery": lakery}

    @dg.asset
    def raw() -> list[int]:
        return [1, 2]

    @dg.asset
    def doubled(raw: list[int]) -> dict[str, StorableValue]:
        return {"a": StorableValue(raw), "b": StorableValue([v * 2 for v in raw])}

    try:
        assert dg.materialize([raw, doubled], resources=resources, instance=instance).success
    finally:
        lakery.close()
    raw_id = _manifest_id(instance, "raw")
    raw_meta = _materialization(instance, "raw").metadata
    assert isinstance(raw_meta["lakery/url"], dg.UrlMetadataValue)
    assert raw_meta["lakery/url"].value == f"http://127.0.0.1:8321/manifests/{raw_id}"
    meta = _materialization(instance, "doubled").metadata
    collection_id = meta["lakery/manifest_tags"].value["lakery/collection_id"]
    assert meta["lakery/url"].value == (
        f"http://127.0.0.1:8321/?tag=lakery%2Fcollection_id%3D{collection_id}"
    )
    inputs = meta["lakery/inputs"]
    assert isinstance(inputs, dg.MarkdownMetadataValue)
    assert f"| raw | — | [{raw_id}](http://127.0.0.1:8321/manifests/{raw_id}) |" in inputs.value


def test_without_a_viewer_url_inputs_stay_json(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    @dg.asset
    def raw() -> int:
        return 1

    @dg.asset
    def plus(raw: int) -> int:
        return raw + 1

    assert dg.materialize([raw, plus], resources=resources, instance=instance).success
    meta = _materialization(instance, "plus").metadata
    assert "lakery/url" not in meta
    assert meta["lakery/inputs"].value == {"raw": {"": _manifest_id(instance, "raw")}}


@pytest.mark.parametrize("url", ["127.0.0.1:8321", "ftp://host/x", "http://", "http://h/?q=1"])
def test_a_bad_viewer_url_is_refused_before_anything_runs(
    lakery_url: str, instance: dg.DagsterInstance, url: str
) -> None:
    lakery = LakeryResource(database_url=lakery_url, viewer_url=url)

    @dg.asset
    def raw() -> int:
        return 1

    resources = {"io_manager": LakeryIOManager(lakery=lakery), "lakery": lakery}
    with pytest.raises(Exception) as caught:
        dg.materialize([raw], resources=resources, instance=instance)
    error = lakery_error(caught.value)
    assert isinstance(error, ConfigurationError)
    assert "viewer_url" in str(error) and "lakery serve" in str(error)
    assert instance.fetch_materializations(dg.AssetKey("raw"), limit=1).records == []
