"""Streams of record batches: Arrow IPC stream and Parquet, saved and loaded a batch at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import IntegrityError
from lakery import ManifestRecord
from lakery import Registry
from lakery import SerializationError
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableStream
from lakery.extra.arrow import ArrowStreamSerializer
from lakery.extra.arrow import ParquetStreamSerializer
from lakery.extra.arrow import collect_table
from lakery.testing.serializer import StreamSerializerConformance
from tests.extra_tables.tables import MODULES
from tests.extra_tables.tables import arrow_table

CATEGORIES = pa.RecordBatch.from_pandas(
    pd.DataFrame({"c": pd.Categorical(["a", "b", "a"]), "x": [1.0, None, 3.0]})
)
OTHER_CATEGORIES = pa.RecordBatch.from_pandas(
    pd.DataFrame({"c": pd.Categorical(["z", "y", None]), "x": [None, 5.0, 6.0]})
)
STREAMS = [
    arrow_table(30).to_batches(max_chunksize=7),
    [CATEGORIES, CATEGORIES.slice(1), CATEGORIES.slice(0, 0)],
    [CATEGORIES, OTHER_CATEGORIES, CATEGORIES],  # replacement dictionaries
    [arrow_table(5).to_batches()[0].slice(0, 0)],
]


def _table(items: list[Any]) -> pa.Table:
    return pa.Table.from_batches(items)


class _TableStreams(StreamSerializerConformance):
    def assert_items(self, loaded: list[Any], original: Any) -> None:
        # Parquet regroups rows into row groups: compare the rows, not the batches.
        rows = [row for batch in original for row in batch.to_pylist()]
        assert [row for batch in loaded for row in batch.to_pylist()] == rows


class TestArrowStream(_TableStreams):
    serializer = ArrowStreamSerializer()
    streams = STREAMS

    def assert_items(self, loaded: list[Any], original: Any) -> None:
        assert [b.to_pylist() for b in loaded] == [b.to_pylist() for b in original]


class TestParquetStream(_TableStreams):
    serializer = ParquetStreamSerializer(row_group_size=8)
    streams = STREAMS


def test_arrow_stream_yields_each_batch_as_soon_as_its_bytes_arrive() -> None:
    batches = arrow_table(100).to_batches(max_chunksize=10)
    encoder = ArrowStreamSerializer().encoder()
    pieces = [bytes(encoder.encode(b)) for b in batches]
    assert all(pieces)  # bytes for every batch when it is written, not at the end
    pieces.append(bytes(encoder.finish()))
    decoder = ArrowStreamSerializer().decoder()
    assert len(decoder.decode(pieces[0])) == 1  # the first batch, before the rest arrives
    for piece in pieces[1:-1]:
        assert len(decoder.decode(piece)) == 1
    assert decoder.decode(pieces[-1]) == [] and list(decoder.finish()) == []


def test_parquet_stream_writes_full_row_groups_as_they_fill() -> None:
    encoder = ParquetStreamSerializer(row_group_size=25).encoder()
    sizes = [len(encoder.encode(b)) for b in arrow_table(100).to_batches(max_chunksize=10)]
    assert sizes[0] > 0 and sizes[1] == 0 and sizes[2] > 0  # a row group after 30 rows
    tail = bytes(encoder.finish())
    assert tail.endswith(b"PAR1")


def test_the_same_rows_give_the_same_parquet_however_they_are_split() -> None:
    table = arrow_table(100)

    def encode(batches: list[pa.RecordBatch]) -> bytes:
        encoder = ParquetStreamSerializer(row_group_size=16).encoder()
        return b"".join([bytes(encoder.encode(b)) for b in batches]) + bytes(encoder.finish())

    assert encode(table.to_batches(max_chunksize=7)) == encode(table.to_batches(max_chunksize=33))


@pytest.mark.parametrize("serializer", [ArrowStreamSerializer(), ParquetStreamSerializer()])
@pytest.mark.parametrize(
    ("columns", "says"),
    [
        ({"y": [1]}, "field 0 is 'y', expected 'x'"),
        ({"x": ["a"]}, "field 'x' has type string, expected int64"),
        ({"x": [1], "z": [2]}, "field 'z' is extra"),
        ({}, "field 'x' \\(int64\\) is missing"),
    ],
)
def test_a_schema_change_mid_stream_says_which_field(
    serializer: Any, columns: dict[str, list[Any]], says: str
) -> None:
    encoder = serializer.encoder()
    encoder.encode(pa.record_batch({"x": [1]}))
    item = pa.record_batch(columns) if columns else pa.record_batch([], schema=pa.schema([]))
    with pytest.raises(ValueError, match=says):
        encoder.encode(item)


def test_a_parquet_stream_is_read_lazily_and_closes_its_spool_file() -> None:
    encoder = ParquetStreamSerializer(row_group_size=10).encoder()
    data = b"".join(bytes(encoder.encode(b)) for b in arrow_table(50).to_batches(max_chunksize=10))
    data += bytes(encoder.finish())
    decoder = ParquetStreamSerializer().decoder()
    assert decoder.decode(data[:-1]) == [] and decoder.decode(data[-1:]) == []
    spool = decoder._file  # the anonymous temporary file
    assert spool is not None and spool.fileno() >= 0  # a real file, not memory
    items = decoder.finish()
    assert isinstance(items, Iterator)
    assert next(items).num_rows == 10  # one row group read, the file still open
    assert not spool.closed
    items.close()  # type: ignore[attr-defined]
    assert spool.closed


def test_a_truncated_parquet_stream_is_a_value_error() -> None:
    encoder = ParquetStreamSerializer().encoder()
    data = bytes(encoder.encode(arrow_table(20).to_batches()[0])) + bytes(encoder.finish())
    decoder = ParquetStreamSerializer().decoder()
    decoder.decode(data[:-10])
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        decoder.finish()


def test_bytes_after_the_end_of_an_arrow_stream_are_an_error() -> None:
    encoder = ArrowStreamSerializer().encoder()
    data = bytes(encoder.encode(pa.record_batch({"x": [1]}))) + bytes(encoder.finish())
    with pytest.raises(ValueError, match="after the end"):
        ArrowStreamSerializer().decoder().decode(data + b"\xff")
    with pytest.raises(ValueError, match="not an Arrow IPC stream"):
        ArrowStreamSerializer().decoder().decode(b"PAR1" * 4)


async def _batches(count: int, rows: int = 50) -> AsyncIterator[pa.RecordBatch]:
    for index in range(count):
        yield pa.record_batch({"n": pa.array(range(index * rows, (index + 1) * rows))})


@pytest.mark.parametrize("serializer", [ArrowStreamSerializer, ParquetStreamSerializer])
async def test_many_batches_saved_and_loaded_as_a_stream(
    serializer: Any, new_session: async_sessionmaker, tmp_path: Path
) -> None:
    registry = Registry(modules=MODULES, default_storage=FileStorage(tmp_path / "blobs"))
    async with new_session() as session:
        record = await save_one(
            StorableStream(_batches(200), serializer=serializer), session=session, registry=registry
        )
    assert record.contents[0].serializer_name == serializer.name
    async with new_session() as session:
        loaded = await load_one(record, StorableStream, session=session, registry=registry)
        table = await collect_table(loaded)
    assert table.num_rows == 200 * 50
    assert table.column("n").to_pylist() == list(range(200 * 50))


async def test_a_stream_serializer_is_chosen_for_record_batches(
    new_session: async_sessionmaker,
) -> None:
    registry = Registry(modules=MODULES)
    async with new_session() as session:
        record = await save_one(StorableStream(_batches(3)), session=session, registry=registry)
    assert record.contents[0].serializer_name == ArrowStreamSerializer.name


@pytest.mark.parametrize("serializer", [ArrowStreamSerializer, ParquetStreamSerializer])
async def test_a_corrupted_stream_fails_by_the_end(
    serializer: Any, new_session: async_sessionmaker, tmp_path: Path
) -> None:
    files = FileStorage(tmp_path / "blobs")
    registry = Registry(modules=MODULES, default_storage=files)
    async with new_session() as session:
        record = await save_one(
            StorableStream(_batches(20), serializer=serializer), session=session, registry=registry
        )
    path = files.local_path(record.contents[0].storage_data)
    assert path is not None
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).chmod(0o644)
    Path(path).write_bytes(bytes(data))
    async with new_session() as session:
        loaded = await load_one(record, StorableStream, session=session, registry=registry)
        with pytest.raises((IntegrityError, SerializationError)):
            await collect_table(loaded)


async def test_a_stream_with_a_schema_change_commits_nothing(
    new_session: async_sessionmaker,
) -> None:
    async def changing() -> AsyncIterator[pa.RecordBatch]:
        yield pa.record_batch({"x": [1]})
        yield pa.record_batch({"x": ["one"]})

    registry = Registry(modules=MODULES)
    async with new_session() as session:
        with pytest.raises(SerializationError, match="schema"):
            await save_one(StorableStream(changing()), session=session, registry=registry)
    async with new_session() as session:
        assert await session.scalar(select(func.count()).select_from(ManifestRecord)) == 0


async def test_collect_table_of_an_empty_stream_needs_a_schema() -> None:
    async def nothing() -> AsyncIterator[pa.RecordBatch]:
        return
        yield

    with pytest.raises(ValueError, match="schema="):
        await collect_table(nothing())
    schema = pa.schema([("x", pa.int64())])
    assert (await collect_table(nothing(), schema=schema)).schema == schema
