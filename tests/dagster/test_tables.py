"""Tables (pyarrow, pandas, polars) through `LakeryIOManager`: metadata, partitions,
column subsets, conversion between libraries, and failures that save nothing."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import SerializationError
from lakery.common.exceptions import StorableTypeError
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests.dagster.conftest import lakery_error

TABLE_MODULES = [
    "lakery.builtin",
    "lakery.extra.arrow",
    "lakery.extra.pandas",
    "lakery.extra.polars",
]
DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")
DAY_KEYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


@pytest.fixture
def lakery(lakery_url: str, tmp_path: Path):
    resource = LakeryResource(
        database_url=lakery_url,
        registry_modules=TABLE_MODULES,
        storage_url=str(tmp_path / "files"),
    )
    yield resource
    resource.close()


@pytest.fixture
def resources(lakery: LakeryResource) -> dict[str, Any]:
    return {"io_manager": LakeryIOManager(lakery=lakery), "lakery": lakery}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return event.materialization.metadata


def _schema(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    schema = metadata["dagster/column_schema"].value
    return [(column.name, column.type) for column in schema.columns]


def _day_table(day: str) -> pd.DataFrame:
    n = int(day[-1])
    return pd.DataFrame({"day": [day] * n, "value": list(range(n))})


def test_table_outputs_metadata_and_round_trip(resources, instance):
    @dg.asset
    def arrow_table() -> pa.Table:
        return pa.table({"a": pa.array([1, 2, 3], pa.int64()), "b": ["x", "y", None]})

    @dg.asset
    def pandas_frame() -> pd.DataFrame:
        return pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": ["p", "q"]})

    @dg.asset
    def polars_frame() -> pl.DataFrame:
        return pl.DataFrame({"f": [1.5, 2.5, 3.5, 4.5], "g": [True, False, True, None]})

    @dg.asset
    def arrow_batch() -> pa.RecordBatch:
        return pa.record_batch({"c": pa.array([0.25, 0.5], pa.float32())})

    seen: dict[str, Any] = {}

    @dg.asset
    def check(
        arrow_table: pa.Table,
        pandas_frame: pd.DataFrame,
        polars_frame: pl.DataFrame,
        arrow_batch: pa.RecordBatch,
    ):
        seen.update(arrow=arrow_table, pandas=pandas_frame, polars=polars_frame, batch=arrow_batch)

    assets = [arrow_table, pandas_frame, polars_frame, arrow_batch, check]
    result = dg.materialize(assets, resources=resources, instance=instance)
    assert result.success
    batch_meta = _metadata(result, "arrow_batch")
    assert _schema(batch_meta) == [("c", "float")]
    assert batch_meta["dagster/row_count"].value == 2
    assert batch_meta["lakery/table"].value["type"] == "pyarrow.RecordBatch"
    assert isinstance(seen["batch"], pa.RecordBatch)
    assert seen["batch"].column("c").to_pylist() == [0.25, 0.5]
    arrow_meta = _metadata(result, "arrow_table")
    assert _schema(arrow_meta) == [("a", "int64"), ("b", "string")]
    assert arrow_meta["dagster/row_count"].value == 3
    assert arrow_meta["lakery/table"].value["library"] == "pyarrow"
    pandas_meta = _metadata(result, "pandas_frame")
    assert [name for name, _ in _schema(pandas_meta)] == ["n", "s"]
    assert _schema(pandas_meta)[0][1] == "int64"
    assert pandas_meta["dagster/row_count"].value == 2
    assert pandas_meta["lakery/table"].value["type"] == "pandas.DataFrame"
    polars_meta = _metadata(result, "polars_frame")
    assert _schema(polars_meta) == [("f", "double"), ("g", "bool")]
    assert polars_meta["dagster/row_count"].value == 4
    assert seen["arrow"].equals(
        pa.table({"a": pa.array([1, 2, 3], pa.int64()), "b": ["x", "y", None]})
    )
    pd.testing.assert_frame_equal(
        seen["pandas"], pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": ["p", "q"]})
    )
    assert seen["polars"].equals(
        pl.DataFrame({"f": [1.5, 2.5, 3.5, 4.5], "g": [True, False, True, None]})
    )


def test_column_subset_from_asset_in_metadata(resources, instance):
    @dg.asset
    def wide() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0], "c": ["x", "y"]})

    seen: dict[str, Any] = {}

    @dg.asset(ins={"wide": dg.AssetIn(metadata={"columns": ["c", "a"]})})
    def narrow(wide: pd.DataFrame) -> None:
        seen["frame"] = wide

    assert dg.materialize([wide, narrow], resources=resources, instance=instance).success
    assert list(seen["frame"].columns) == ["c", "a"]
    assert seen["frame"]["a"].tolist() == [1, 2]


@pytest.mark.parametrize("columns", ["a", [], ["a", 3]])
def test_bad_columns_metadata_names_the_input(resources, instance, columns):
    @dg.asset
    def wide() -> pa.Table:
        return pa.table({"a": [1]})

    @dg.asset(ins={"wide": dg.AssetIn(metadata={"columns": columns})})
    def narrow(wide: pa.Table) -> None:
        pass

    assert dg.materialize([wide], resources=resources, instance=instance).success
    with pytest.raises(Exception) as info:
        dg.materialize([wide, narrow], resources=resources, instance=instance, selection=[narrow])
    error = lakery_error(info.value)
    assert isinstance(error, ConfigurationError)
    assert "'wide'" in str(error) and "list of column names" in str(error)


def test_bad_concat_metadata_names_the_input(resources, instance):
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> pa.Table:
        return pa.table({"a": [1]})

    @dg.asset(ins={"daily": dg.AssetIn(metadata={"lakery/concat": "yes"})})
    def combined(daily: pa.Table) -> None:
        pass

    dg.materialize([daily], resources=resources, instance=instance, partition_key=DAY_KEYS[0])
    with pytest.raises(Exception) as info:
        _materialize([daily, combined], resources, instance, "combined")
    error = lakery_error(info.value)
    assert isinstance(error, ConfigurationError)
    assert "'daily'" in str(error) and "True or False" in str(error)


def test_pandas_polars_handoff_both_ways(resources, instance):
    @dg.asset
    def from_polars() -> pl.DataFrame:
        return pl.DataFrame({"i": [1, 2, 3], "s": ["a", "b", None], "f": [0.5, None, 1.5]})

    @dg.asset
    def from_pandas() -> pd.DataFrame:
        return pd.DataFrame({"i": [4, 5], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})

    seen: dict[str, Any] = {}

    @dg.asset
    def swap(from_polars: pd.DataFrame, from_pandas: pl.DataFrame) -> None:
        seen.update(pandas=from_polars, polars=from_pandas)

    result = dg.materialize(
        [from_polars, from_pandas, swap], resources=resources, instance=instance
    )
    assert result.success
    frame = seen["pandas"]
    assert isinstance(frame, pd.DataFrame)
    assert frame["i"].tolist() == [1, 2, 3]
    assert pd.api.types.is_integer_dtype(frame["i"].dtype)
    assert pd.api.types.is_float_dtype(frame["f"].dtype) and frame["f"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert frame["s"].tolist()[:2] == ["a", "b"] and pd.isna(frame["s"].iloc[2])
    polars_frame = seen["polars"]
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.schema["i"] == pl.Int64
    assert polars_frame.schema["t"].is_temporal()
    assert polars_frame["i"].to_list() == [4, 5]


def test_lazy_frame_output_and_lazy_input(resources, instance):
    @dg.asset
    def lazy() -> pl.LazyFrame:
        return pl.LazyFrame({"x": [1, 2, 3, 4]}).with_columns((pl.col("x") * 10).alias("y"))

    @dg.asset
    def eager() -> pa.Table:
        return pa.table({"z": [7, 8]})

    seen: dict[str, Any] = {}

    @dg.asset
    def use(lazy: pl.LazyFrame, eager: pl.LazyFrame) -> None:
        seen.update(lazy=lazy, eager=eager)

    result = dg.materialize([lazy, eager, use], resources=resources, instance=instance)
    assert result.success
    metadata = _metadata(result, "lazy")
    assert _schema(metadata) == [("x", "int64"), ("y", "int64")]
    assert metadata["dagster/row_count"].value == 4  # the saved Parquet file's footer
    assert metadata["lakery/table"].value["type"] == "polars.LazyFrame"
    assert isinstance(seen["lazy"], pl.LazyFrame) and isinstance(seen["eager"], pl.LazyFrame)
    assert seen["lazy"].collect()["y"].to_list() == [10, 20, 30, 40]
    assert seen["eager"].collect()["z"].to_list() == [7, 8]


def _daily_assets(concat_metadata: dict[str, Any], seen: dict[str, Any]) -> list[Any]:
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> pd.DataFrame:
        return _day_table(context.partition_key)

    @dg.asset(ins={"daily": dg.AssetIn(metadata=concat_metadata)})
    def combined(daily: Any) -> None:
        seen["value"] = daily

    return [daily, combined]


def _materialize_days(assets: list[Any], resources, instance, days: list[str]) -> None:
    for day in days:
        result = dg.materialize(
            assets, resources=resources, instance=instance, partition_key=day, selection="daily"
        )
        assert result.success
        assert _metadata(result, "daily")["dagster/row_count"].value == int(day[-1])


def _materialize(assets: list[Any], resources, instance, selection: str) -> None:
    result = dg.materialize(assets, resources=resources, instance=instance, selection=selection)
    assert result.success


def test_partition_fan_in_as_mapping(resources, instance):
    seen: dict[str, Any] = {}
    assets = _daily_assets({}, seen)
    _materialize_days(assets, resources, instance, DAY_KEYS)
    _materialize(assets, resources, instance, "combined")
    assert sorted(seen["value"]) == DAY_KEYS
    for day, frame in seen["value"].items():
        pd.testing.assert_frame_equal(frame, _day_table(day))


def test_partition_fan_in_concatenated_in_partition_order(resources, instance):
    seen: dict[str, Any] = {}
    assets = _daily_assets({"lakery/concat": True}, seen)
    _materialize_days(assets, resources, instance, ["2024-01-03", "2024-01-01", "2024-01-02"])
    _materialize(assets, resources, instance, "combined")
    frame = seen["value"]
    assert isinstance(frame, pd.DataFrame)
    assert frame["day"].tolist() == ["2024-01-01"] + ["2024-01-02"] * 2 + ["2024-01-03"] * 3
    assert frame["value"].tolist() == [0, 0, 1, 0, 1, 2]


def test_concat_with_missing_partitions_allowed(resources, instance):
    seen: dict[str, Any] = {}
    assets = _daily_assets({"lakery/concat": True, "lakery/allow_missing": True}, seen)
    _materialize_days(assets, resources, instance, ["2024-01-01", "2024-01-03"])
    _materialize(assets, resources, instance, "combined")
    assert seen["value"]["day"].tolist() == ["2024-01-01"] + ["2024-01-03"] * 3


def test_concat_schema_mismatch_names_the_partitions(resources, instance):
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> pa.Table:
        if context.partition_key == "2024-01-02":
            return pa.table({"other": ["x"]})
        return pa.table({"value": [1]})

    @dg.asset(ins={"daily": dg.AssetIn(metadata={"lakery/concat": True})})
    def combined(daily: pa.Table) -> None:
        pass

    for day in DAY_KEYS:
        dg.materialize([daily], resources=resources, instance=instance, partition_key=day)
    with pytest.raises(Exception) as info:
        _materialize([daily, combined], resources, instance, "combined")
    error = lakery_error(info.value)
    assert isinstance(error, ConfigurationError)
    assert "'2024-01-01'" in str(error) and "'2024-01-02'" in str(error)


def test_concat_refuses_a_partition_that_is_no_table(resources, instance):
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> Any:
        if context.partition_key == "2024-01-02":
            return {"not": "a table"}
        return pa.table({"value": [1]})

    @dg.asset(ins={"daily": dg.AssetIn(metadata={"lakery/concat": True})})
    def combined(daily: Any) -> None:
        pass

    for day in DAY_KEYS:
        dg.materialize([daily], resources=resources, instance=instance, partition_key=day)
    with pytest.raises(Exception) as info:
        _materialize([daily, combined], resources, instance, "combined")
    error = lakery_error(info.value)
    assert isinstance(error, StorableTypeError)
    assert "['2024-01-02']" in str(error) and "not tables" in str(error)


def test_single_run_backfill_row_counts_per_partition(resources, instance):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
        def daily(context) -> dict[str, pl.DataFrame]:
            return {k: pl.from_pandas(_day_table(k)) for k in context.partition_keys}

    seen: dict[str, Any] = {}

    @dg.asset(ins={"daily": dg.AssetIn(metadata={"lakery/concat": True})})
    def combined(daily: pd.DataFrame) -> None:
        seen["frame"] = daily

    tags = {
        "dagster/asset_partition_range_start": DAY_KEYS[0],
        "dagster/asset_partition_range_end": DAY_KEYS[-1],
    }
    result = dg.materialize([daily], resources=resources, instance=instance, tags=tags)
    assert result.success
    counts = {
        e.partition: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
    }
    assert counts == {"2024-01-01": 1, "2024-01-02": 2, "2024-01-03": 3}
    _materialize([daily, combined], resources, instance, "combined")
    assert isinstance(seen["frame"], pd.DataFrame) and len(seen["frame"]) == 6


def test_fan_in_annotated_as_dict_of_frames_converts_values(resources, instance):
    @dg.asset(partitions_def=DAYS)
    def daily(context) -> pl.DataFrame:
        return pl.from_pandas(_day_table(context.partition_key))

    seen: dict[str, Any] = {}

    @dg.asset
    def combined(daily: dict[str, pd.DataFrame]) -> None:
        seen.update(daily)

    for day in DAY_KEYS:
        dg.materialize([daily], resources=resources, instance=instance, partition_key=day)
    result = dg.materialize(
        [daily, combined], resources=resources, instance=instance, selection="combined"
    )
    assert result.success
    assert sorted(seen) == DAY_KEYS
    for day, frame in seen.items():
        assert isinstance(frame, pd.DataFrame)
        assert frame["value"].tolist() == list(range(int(day[-1])))


def test_unsupported_object_column_fails_and_saves_nothing(resources, instance, lakery):
    @dg.asset
    def objects() -> pd.DataFrame:
        return pd.DataFrame({"o": [object(), object()]})

    with pytest.raises(Exception) as info:
        dg.materialize([objects], resources=resources, instance=instance)
    error = lakery_error(info.value)
    assert isinstance(error, SerializationError)
    assert "nothing of the output of asset 'objects' was saved" in "\n".join(
        getattr(error, "__notes__", [])
    )
    assert lakery.find(tags={"dagster/asset_key": "objects"}) == []


def test_table_without_the_extra_names_the_module(lakery_url, instance):
    lakery = LakeryResource(database_url=lakery_url, registry_modules=["lakery.builtin"])
    try:

        @dg.asset
        def frame() -> pl.DataFrame:
            return pl.DataFrame({"a": [1]})

        with pytest.raises(Exception) as info:
            dg.materialize(
                [frame], resources={"io_manager": LakeryIOManager(lakery=lakery)}, instance=instance
            )
        error = lakery_error(info.value)
        assert isinstance(error, StorableTypeError)
        assert "'lakery.extra.polars'" in str(error) and "lakery[polars]" in str(error)
    finally:
        lakery.close()


@dg.asset
def mp_source() -> pl.DataFrame:
    return pl.DataFrame({"k": ["a", "b", "c"], "v": [1.0, 2.0, 3.0], "w": [9, 9, 9]})


@dg.asset(ins={"mp_source": dg.AssetIn(metadata={"columns": ["k", "v"]})})
def mp_sink(mp_source: pd.DataFrame) -> pa.Table:
    assert list(mp_source.columns) == ["k", "v"]
    return pa.Table.from_pandas(mp_source.assign(v=mp_source["v"] * 2), preserve_index=False)


def mp_tables_job() -> dg.JobDefinition:
    lakery = LakeryResource(
        database_url=dg.EnvVar("LAKERY_TEST_MP_DATABASE_URL"), registry_modules=TABLE_MODULES
    )
    defs = dg.Definitions(
        assets=[mp_source, mp_sink],
        jobs=[
            dg.define_asset_job(
                "tables_mp",
                executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
            )
        ],
        resources={"io_manager": LakeryIOManager(lakery=lakery)},
    )
    return defs.resolve_job_def("tables_mp")


@pytest.mark.slow
def test_tables_on_the_multiprocess_executor(lakery_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKERY_TEST_MP_DATABASE_URL", lakery_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        with dg.execute_job(dg.reconstructable(mp_tables_job), instance=instance) as result:
            assert result.success, [
                e.event_specific_data for e in result.all_events if e.is_failure
            ]
        [record] = instance.fetch_materializations(dg.AssetKey("mp_sink"), limit=1).records
        metadata = record.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 3
    assert [name for name, _ in _schema(metadata)] == ["k", "v"]
    assert _schema(metadata)[1] == ("v", "double")
    lakery = LakeryResource(database_url=lakery_url, registry_modules=TABLE_MODULES)
    try:
        table = lakery.load(lakery.get(metadata["lakery/manifest_id"].value)).value
        assert table.column("v").to_pylist() == [2.0, 4.0, 6.0]
    finally:
        lakery.close()
