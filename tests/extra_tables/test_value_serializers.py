"""Every table serializer: conformance, dtype fidelity, determinism, columns, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from lakery.core.serializer import ColumnarSerializer
from lakery.extra.arrow import IpcBatchSerializer
from lakery.extra.arrow import IpcTableSerializer
from lakery.extra.arrow import ParquetBatchSerializer
from lakery.extra.arrow import ParquetTableSerializer
from lakery.extra.pandas import PandasIpcSerializer
from lakery.extra.pandas import PandasParquetSerializer
from lakery.extra.polars import PolarsIpcSerializer
from lakery.extra.polars import PolarsLazyParquetSerializer
from lakery.extra.polars import PolarsParquetSerializer
from lakery.testing.serializer import ColumnarSerializerConformance
from tests.extra_tables.tables import arrow_table
from tests.extra_tables.tables import assert_tables_equal
from tests.extra_tables.tables import pandas_frames
from tests.extra_tables.tables import polars_frame

ZERO_COLUMNS = pa.table({"x": [1, 2, 3]}).drop(["x"])
ARROW_TABLES = [arrow_table(), arrow_table(0), ZERO_COLUMNS, pa.table({})]
ARROW_BATCHES = [arrow_table().to_batches()[0], pa.record_batch({"x": pa.array([], pa.int8())})]
POLARS_FRAMES = [polars_frame(), polars_frame(0), pl.DataFrame()]


class _TableConformance(ColumnarSerializerConformance):
    def assert_equal(self, loaded: Any, original: Any) -> None:
        assert_tables_equal(loaded, original)

    def column_names(self, value: Any) -> list[str]:
        if isinstance(value, pl.LazyFrame):
            return value.collect_schema().names()
        if isinstance(value, pa.Table | pa.RecordBatch):
            return value.schema.names
        return list(value.columns)

    def select_columns(self, value: Any, columns: Any) -> Any:
        if isinstance(value, pd.DataFrame):
            return value[list(columns)]
        return value.select(list(columns))


class TestParquetTable(_TableConformance):
    serializer = ParquetTableSerializer()
    values = [t for t in ARROW_TABLES if t is not ZERO_COLUMNS]


def test_zero_column_tables_keep_their_rows_in_ipc_not_in_parquet() -> None:
    ipc = IpcTableSerializer()
    assert ipc.deserialize(_bytes(ipc, ZERO_COLUMNS)).num_rows == 3
    parquet = ParquetTableSerializer()
    loaded = parquet.deserialize(_bytes(parquet, ZERO_COLUMNS))
    assert (loaded.num_columns, loaded.num_rows) == (0, 0)


class TestParquetBatch(_TableConformance):
    serializer = ParquetBatchSerializer()
    values = ARROW_BATCHES


class TestIpcTable(_TableConformance):
    serializer = IpcTableSerializer()
    values = ARROW_TABLES


class TestIpcBatch(_TableConformance):
    serializer = IpcBatchSerializer()
    values = ARROW_BATCHES


class TestPandasParquet(_TableConformance):
    serializer = PandasParquetSerializer()
    values = pandas_frames()


class TestPandasIpc(_TableConformance):
    serializer = PandasIpcSerializer()
    values = pandas_frames()


class TestPolarsParquet(_TableConformance):
    serializer = PolarsParquetSerializer()
    values = POLARS_FRAMES


class TestPolarsLazy(_TableConformance):
    serializer = PolarsLazyParquetSerializer()
    values = [frame.lazy() for frame in POLARS_FRAMES]


class TestPolarsIpc(_TableConformance):
    serializer = PolarsIpcSerializer()
    values = POLARS_FRAMES


SERIALIZERS = [
    (ParquetTableSerializer(), arrow_table()),
    (IpcTableSerializer(), arrow_table()),
    (PandasParquetSerializer(), pandas_frames()[0]),
    (PandasIpcSerializer(), pandas_frames()[0]),
    (PolarsParquetSerializer(), polars_frame()),
    (PolarsIpcSerializer(), polars_frame()),
]
NAMES = {
    ParquetTableSerializer: ("lakery.arrow.parquet@v1", "application/vnd.apache.parquet"),
    ParquetBatchSerializer: ("lakery.arrow.parquet.batch@v1", "application/vnd.apache.parquet"),
    IpcTableSerializer: ("lakery.arrow.ipc@v1", "application/vnd.apache.arrow.file"),
    IpcBatchSerializer: ("lakery.arrow.ipc.batch@v1", "application/vnd.apache.arrow.file"),
    PandasParquetSerializer: ("lakery.pandas.parquet@v1", "application/vnd.apache.parquet"),
    PandasIpcSerializer: ("lakery.pandas.ipc@v1", "application/vnd.apache.arrow.file"),
    PolarsParquetSerializer: ("lakery.polars.parquet@v1", "application/vnd.apache.parquet"),
    PolarsLazyParquetSerializer: (
        "lakery.polars.lazy.parquet@v1",
        "application/vnd.apache.parquet",
    ),
    PolarsIpcSerializer: ("lakery.polars.ipc@v1", "application/vnd.apache.arrow.file"),
}


@pytest.mark.parametrize("cls", list(NAMES), ids=lambda c: c.__name__)
def test_stable_names_and_content_types(cls: type[ColumnarSerializer[Any]]) -> None:
    assert (cls.name, cls.content_type) == NAMES[cls]
    assert issubclass(cls, ColumnarSerializer)


def _bytes(serializer: Any, value: Any) -> bytes:
    data = serializer.serialize(value)
    return b"".join(map(bytes, data)) if isinstance(data, list) else bytes(data)


@pytest.mark.parametrize("serializer", [ParquetTableSerializer(), IpcTableSerializer()])
def test_same_table_differently_chunked_gives_the_same_bytes(serializer: Any) -> None:
    table = arrow_table(5_000)
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=333))
    assert rechunked.column(0).num_chunks > 1
    assert _bytes(serializer, table) == _bytes(serializer, rechunked)


def test_a_chunked_polars_frame_gives_the_bytes_of_the_contiguous_one() -> None:
    frame = pl.concat([polars_frame(2000)] * 20, rechunk=True)
    chunked = pl.concat([frame.slice(i, 3333) for i in range(0, frame.height, 3333)])
    assert chunked.n_chunks() > 1
    for serializer in (PolarsParquetSerializer(), PolarsIpcSerializer()):
        assert _bytes(serializer, chunked) == _bytes(serializer, frame)


def test_equal_frames_built_independently_give_the_same_bytes() -> None:
    for serializer, build in [
        (PandasParquetSerializer(), lambda: pandas_frames()[0]),
        (PolarsParquetSerializer(), polars_frame),
    ]:
        assert _bytes(serializer, build()) == _bytes(serializer, build())


def test_pandas_dtypes_and_index_round_trip_exactly() -> None:
    frame = pandas_frames()[0]
    loaded = PandasParquetSerializer().deserialize(_bytes(PandasParquetSerializer(), frame))
    assert loaded.index.name == "reading" and list(loaded.index) == [10, 20, 30, 40]
    assert loaded["cat"].dtype == frame["cat"].dtype
    assert loaded["ordered"].cat.ordered
    assert str(loaded["when"].dt.tz) == "Europe/Paris"
    assert loaded["n"].dtype == "Int64"
    assert loaded["n"].isna().tolist() == [False, True, False, False]
    assert loaded["flag"].dtype == "boolean"
    assert loaded["text"].dtype == frame["text"].dtype


def test_parquet_options_keep_the_name_and_change_the_bytes() -> None:
    table = arrow_table(2_000)
    snappy = ParquetTableSerializer(compression="snappy", row_group_size=100)
    assert snappy.name == ParquetTableSerializer.name
    data = _bytes(snappy, table)
    assert data != _bytes(ParquetTableSerializer(), table)
    assert ParquetTableSerializer().deserialize(data).equals(table)  # read by the default
    with pytest.raises(ValueError, match="row_group_size"):
        ParquetTableSerializer(row_group_size=0)
    with pytest.raises(ValueError, match="Parquet only"):
        IpcTableSerializer(compression_level=3)


@pytest.mark.parametrize("serializer_class", [ParquetTableSerializer, PolarsParquetSerializer])
def test_parquet_without_compression(serializer_class: Any) -> None:
    import pyarrow.parquet as pq

    value = arrow_table() if serializer_class is ParquetTableSerializer else polars_frame()
    serializer = serializer_class(compression="none")  # polars calls it "uncompressed"
    data = _bytes(serializer, value)
    column = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0)
    assert column.compression == "UNCOMPRESSED"
    assert_tables_equal(serializer.deserialize(data), value)


def test_parquet_pages_carry_checksums() -> None:
    import pyarrow.parquet as pq

    data = _bytes(ParquetTableSerializer(), arrow_table())
    column = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    # A flipped byte inside a data page is caught by its CRC (or by zstd), never ignored.
    middle = bytearray(data)
    middle[len(data) // 3] ^= 0xFF
    with pytest.raises(ValueError, match="Parquet"):
        ParquetTableSerializer().deserialize(bytes(middle))


@pytest.mark.parametrize("serializer,value", SERIALIZERS, ids=lambda x: type(x).__name__)
def test_columns_subset_from_bytes_and_from_a_file(
    serializer: Any, value: Any, tmp_path: Path
) -> None:
    data = _bytes(serializer, value)
    names = list(value.columns) if not isinstance(value, pa.Table) else value.column_names
    wanted = [names[2], names[0]]
    subset = serializer.deserialize_columns(data, wanted)
    path = tmp_path / "blob"
    path.write_bytes(data)
    from_file = serializer.read_columns(str(path), wanted)
    for got in (subset, from_file):
        got_names = got.column_names if isinstance(got, pa.Table) else list(got.columns)
        assert got_names == wanted
    expected = serializer.deserialize(data)
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(subset, expected[wanted])
        pd.testing.assert_frame_equal(from_file, expected[wanted])
    elif isinstance(expected, pl.DataFrame):
        assert subset.equals(expected.select(wanted)) and from_file.equals(subset)
    else:
        assert subset.equals(expected.select(wanted)) and from_file.equals(subset)
    with pytest.raises(KeyError, match=r"'nope'.*it has"):
        serializer.deserialize_columns(data, ["nope"])
    with pytest.raises(KeyError, match="'nope'"):
        serializer.read_columns(str(path), [names[0], "nope"])


@pytest.mark.parametrize("serializer,value", SERIALIZERS, ids=lambda x: type(x).__name__)
def test_corrupt_and_truncated_blobs_are_value_errors(serializer: Any, value: Any) -> None:
    data = _bytes(serializer, value)
    for bad in (data[: len(data) // 2], b"PAR1 not really", data[:-1]):
        with pytest.raises(ValueError):
            serializer.deserialize(bad)


def test_unwritable_columns_are_refused_with_what_to_change() -> None:
    mixed = pd.DataFrame({"x": [{"a": 1}, 2]})
    with pytest.raises(TypeError, match=r"column.*single type"):
        PandasParquetSerializer().serialize(mixed)
    with pytest.raises(TypeError, match="column names must be str"):
        PandasParquetSerializer().serialize(pd.DataFrame({0: [1]}))
    with pytest.raises(TypeError, match=r"pyarrow.Table"):
        ParquetTableSerializer().serialize(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match=r"polars.DataFrame"):
        PolarsParquetSerializer().serialize(pa.table({"x": [1]}))


@pytest.mark.parametrize("serializer,value", SERIALIZERS, ids=lambda x: type(x).__name__)
def test_bytes_are_the_standard_file_formats(serializer: Any, value: Any) -> None:
    """Plain Parquet or Arrow IPC files (no pickle anywhere): other tools read them."""
    data = _bytes(serializer, value)
    magic = b"PAR1" if serializer.content_type.endswith("parquet") else b"ARROW1"
    assert data.startswith(magic) and data.endswith(magic)
    if magic == b"PAR1":
        import pyarrow.parquet as pq

        assert pq.read_table(pa.BufferReader(data)).num_rows == len(value)


_COLUMN = st.sampled_from(
    [
        (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
        (pa.float64(), st.floats(allow_nan=False)),
        (pa.string(), st.text(max_size=8)),
        (pa.bool_(), st.booleans()),
        (pa.timestamp("us", "UTC"), st.integers(0, 2**50)),
        (pa.list_(pa.int32()), st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3)),
    ]
)


@st.composite
def _tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 12))
    columns = draw(st.lists(_COLUMN, min_size=1, max_size=4))
    data = {}
    for index, (arrow_type, values) in enumerate(columns):
        cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        data[f"c{index}"] = pa.array(cells, arrow_type)
    return pa.table(data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables())
def test_random_schemas_with_nulls_round_trip(table: pa.Table) -> None:
    for serializer in (ParquetTableSerializer(), IpcTableSerializer()):
        assert_tables_equal(serializer.deserialize(_bytes(serializer, table)), table)
    frame = pl.from_arrow(table)
    for polars_serializer in (PolarsParquetSerializer(), PolarsIpcSerializer()):
        loaded = polars_serializer.deserialize(_bytes(polars_serializer, frame))
        assert_tables_equal(loaded, frame)
