"""Tables on S3: plain values, column subsets (the whole blob read and verified, then only
those columns decoded) and streams of record batches, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import IntegrityError
from lakery import Registry
from lakery import load_one
from lakery import save_one
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue
from lakery.extra.arrow import ParquetStreamSerializer
from lakery.extra.arrow import collect_table
from lakery.extra.aws import S3Storage
from tests.extra_tables.tables import MODULES
from tests.extra_tables.tables import assert_tables_equal
from tests.extra_tables.tables import pandas_frame
from tests.extra_tables.tables import polars_frame


@pytest.fixture
def registry_s3(make_storage: Callable[..., S3Storage]) -> tuple[Registry, S3Storage]:
    s3 = make_storage(prefix="tables")
    return Registry(modules=MODULES, storages=[s3], default_storage=s3), s3


async def test_tables_and_column_subsets_on_s3(
    registry_s3: tuple[Registry, S3Storage], new_session: async_sessionmaker, raw_s3, bucket
) -> None:
    registry, s3 = registry_s3
    frame = pandas_frame()
    async with new_session() as session:
        record = await save_one(StorableValue(frame), session=session, registry=registry)
        polars_record = await save_one(
            StorableValue(polars_frame()), session=session, registry=registry
        )
    assert s3.local_path(record.contents[0].storage_data) is None
    async with new_session() as session:
        loaded = await load_one(record, StorableValue, session=session, registry=registry)
        subset = await load_one(
            record, StorableValue, session=session, registry=registry, columns=["flag"]
        )
        polars_loaded = await load_one(
            polars_record, StorableValue, session=session, registry=registry
        )
    pd.testing.assert_frame_equal(loaded.value, frame)
    pd.testing.assert_frame_equal(subset.value, frame[["flag"]])
    assert_tables_equal(polars_loaded.value, polars_frame())

    # Without a local file, a column load still checks the whole blob's sha256.
    key = record.contents[0].storage_data["key"]
    body = await (await raw_s3.get_object(Bucket=bucket, Key=key))["Body"].read()
    await raw_s3.put_object(Bucket=bucket, Key=key, Body=body[:-1] + b"X")
    async with new_session() as session:
        with pytest.raises(IntegrityError, match="sha256"):
            await load_one(
                record, StorableValue, session=session, registry=registry, columns=["flag"]
            )


async def test_a_parquet_stream_on_s3(
    registry_s3: tuple[Registry, S3Storage], new_session: async_sessionmaker
) -> None:
    registry, _ = registry_s3

    async def batches() -> AsyncIterator[pa.RecordBatch]:
        for start in range(0, 40_000, 4_000):
            yield pa.record_batch({"n": pa.array(range(start, start + 4_000))})

    stream = StorableStream(batches(), serializer=ParquetStreamSerializer(row_group_size=10_000))
    async with new_session() as session:
        record = await save_one(stream, session=session, registry=registry)
    async with new_session() as session:
        loaded = await load_one(record, StorableStream, session=session, registry=registry)
        table = await collect_table(loaded)
    assert table.column("n").to_pylist() == list(range(40_000))
