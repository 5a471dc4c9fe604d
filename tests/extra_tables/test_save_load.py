"""Tables saved and loaded through lakery on SQLite and PostgreSQL: as plain values, as
fields of dataclasses and models, in the database and in files; column subsets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import IntegrityError
from lakery import ManifestRecord
from lakery import Registry
from lakery import SerializationError
from lakery import StorableTypeError
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableValue
from lakery.extra.arrow import IpcTableSerializer
from lakery.extra.pydantic import StorableModel
from tests.extra_tables.tables import MODULES
from tests.extra_tables.tables import arrow_table
from tests.extra_tables.tables import assert_tables_equal
from tests.extra_tables.tables import pandas_frame
from tests.extra_tables.tables import polars_frame


@dataclass
class Experiment(StorableDataclass, class_id="3f1e2d4c5b6a47988a7b6c5d4e3f2a1b"):
    label: str
    readings: pd.DataFrame
    summary: pl.DataFrame


class Report(StorableModel, class_id="7a6b5c4d3e2f41808f7e6d5c4b3a2918"):
    model_config = {"arbitrary_types_allowed": True}

    title: str
    table: pa.Table
    frames: dict[str, pd.DataFrame]


@pytest.fixture(params=["database", "files"])
def tables_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "database":
        return Registry(modules=[*MODULES, "lakery.extra.pydantic"])
    files = FileStorage(tmp_path / "blobs")
    return Registry(modules=[*MODULES, "lakery.extra.pydantic"], default_storage=files)


async def _round_trip(obj: Any, new_session: async_sessionmaker, registry: Registry) -> Any:
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry)
    async with new_session() as session:
        return record, await load_one(record, type(obj), session=session, registry=registry)


@pytest.mark.parametrize(
    "value",
    [
        arrow_table(),
        arrow_table().to_batches()[0],
        pandas_frame(),
        polars_frame(),
        polars_frame().lazy(),
    ],
    ids=["arrow", "batch", "pandas", "polars", "lazy"],
)
async def test_plain_tables_round_trip(
    value: Any, new_session: async_sessionmaker, tables_registry: Registry
) -> None:
    record, loaded = await _round_trip(StorableValue(value), new_session, tables_registry)
    assert_tables_equal(loaded.value, value)
    [content] = record.contents
    assert content.content_type == "application/vnd.apache.parquet"


async def test_tables_as_dataclass_and_model_fields_are_parts_of_their_own(
    new_session: async_sessionmaker, tables_registry: Registry
) -> None:
    experiment = Experiment("one", pandas_frame(), polars_frame())
    record, loaded = await _round_trip(experiment, new_session, tables_registry)
    assert loaded.label == "one"
    assert_tables_equal(loaded.readings, experiment.readings)
    assert_tables_equal(loaded.summary, experiment.summary)
    serializers = {c.content_key: c.serializer_name for c in record.contents}
    assert serializers["readings"] == "lakery.pandas.parquet@v1"
    assert serializers["summary"] == "lakery.polars.parquet@v1"

    report = Report(title="r", table=arrow_table(), frames={"a": pandas_frame()})
    record, loaded = await _round_trip(report, new_session, tables_registry)
    assert loaded.title == "r"
    assert_tables_equal(loaded.table, report.table)
    assert_tables_equal(loaded.frames["a"], report.frames["a"])
    types = sorted(c.content_type for c in record.contents)
    assert types.count("application/vnd.apache.parquet") == 2  # never inside the JSON body


async def test_the_same_table_is_stored_once(
    new_session: async_sessionmaker, tables_registry: Registry
) -> None:
    first, _ = await _round_trip(StorableValue(pandas_frame()), new_session, tables_registry)
    second, _ = await _round_trip(StorableValue(pandas_frame()), new_session, tables_registry)
    assert first.contents[0].content_hash == second.contents[0].content_hash
    assert first.contents[0].storage_data == second.contents[0].storage_data


async def test_column_subsets(new_session: async_sessionmaker, tables_registry: Registry) -> None:
    frame = pandas_frame()
    values = [StorableValue(frame), StorableValue(arrow_table(), serializer=IpcTableSerializer)]
    async with new_session() as session:
        async with new_saver(session=session, registry=tables_registry) as saver:
            futures = [saver.save_soon(v) for v in values]
    pandas_record, ipc_record = [f.get() for f in futures]
    async with new_session() as session:
        subset = await load_one(
            pandas_record,
            StorableValue,
            session=session,
            registry=tables_registry,
            columns=["n", "cat"],
        )
        async with new_loader(session=session, registry=tables_registry) as loader:
            # The same record twice, with and without columns: each gets its own.
            whole = loader.load_soon(pandas_record, StorableValue)
            one = loader.load_soon(pandas_record, StorableValue, columns=["when"])
            arrow = loader.load_soon(ipc_record, StorableValue, columns=["s", "i"])
    pd.testing.assert_frame_equal(subset.value, frame[["n", "cat"]])
    pd.testing.assert_frame_equal(whole.get().value, frame)
    pd.testing.assert_frame_equal(one.get().value, frame[["when"]])
    assert arrow.get().value.equals(arrow_table().select(["s", "i"]))


async def test_column_subset_errors(
    new_session: async_sessionmaker, tables_registry: Registry
) -> None:
    record, _ = await _round_trip(StorableValue(polars_frame()), new_session, tables_registry)
    async with new_session() as session:
        with pytest.raises(SerializationError, match=r"no column 'zzz'.*it has") as caught:
            await load_one(
                record, StorableValue, session=session, registry=tables_registry, columns=["zzz"]
            )
        assert str(record.id) in str(caught.value)
        for bad in ([], ["i", "i"], "i", [""], [1]):
            with pytest.raises(StorableTypeError, match="column"):
                await load_one(
                    record, StorableValue, session=session, registry=tables_registry, columns=bad
                )


async def test_a_local_file_of_the_wrong_size_is_an_integrity_error(
    new_session: async_sessionmaker, tmp_path: Path
) -> None:
    files = FileStorage(tmp_path / "blobs")
    registry = Registry(modules=MODULES, default_storage=files)
    record, _ = await _round_trip(StorableValue(arrow_table()), new_session, registry)
    path = files.local_path(record.contents[0].storage_data)
    assert path is not None and os.path.getsize(path) == record.contents[0].content_size
    os.chmod(path, 0o644)
    with open(path, "ab") as file:
        file.write(b"extra")
    async with new_session() as session:
        with pytest.raises(IntegrityError, match="bytes on disk"):
            await load_one(record, StorableValue, session=session, registry=registry, columns=["i"])
        with pytest.raises(IntegrityError):
            await load_one(record, StorableValue, session=session, registry=registry)


async def test_an_unwritable_frame_saves_nothing(
    new_session: async_sessionmaker, tables_registry: Registry
) -> None:
    good = StorableValue(pandas_frame())
    bad = StorableValue(pd.DataFrame({"mixed": [{"a": 1}, 2]}))
    async with new_session() as session:
        with pytest.raises(SerializationError, match="single type"):
            async with new_saver(session=session, registry=tables_registry) as saver:
                saver.save_soon(good)
                saver.save_soon(bad)
    async with new_session() as session:
        count = await session.scalar(select(func.count()).select_from(ManifestRecord))
    assert count == 0


def test_registry_hint_names_the_table_module() -> None:
    from lakery.core.parts import _provider_hint

    assert "lakery.extra.pandas" in _provider_hint(pd.DataFrame)
    assert "lakery.extra.polars" in _provider_hint(pl.DataFrame)
    assert "lakery.extra.arrow" in _provider_hint(pa.Table)


@pytest.mark.parametrize("value", [pandas_frame(), polars_frame(), arrow_table()], ids=type)
async def test_large_tables_are_decoded_from_their_verified_file(
    value: Any, new_session: async_sessionmaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lakery.core.load

    monkeypatch.setattr(lakery.core.load, "LOCAL_FILE_THRESHOLD", 0)  # every table is "large"
    files = FileStorage(tmp_path / "blobs")
    registry = Registry(modules=MODULES, default_storage=files)
    record, loaded = await _round_trip(StorableValue(value), new_session, registry)
    assert_tables_equal(loaded.value, value)
    reads: list[str] = []
    monkeypatch.setattr(FileStorage, "get_value", lambda *a: reads.append("get") or b"")
    async with new_session() as session:
        again = await load_one(record, StorableValue, session=session, registry=registry)
    assert_tables_equal(again.value, value)
    assert reads == []  # decoded from the file, not from a copy in memory

    path = Path(files.local_path(record.contents[0].storage_data) or "")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, other bytes
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    async with new_session() as session:
        with pytest.raises(IntegrityError, match="sha256"):
            await load_one(record, StorableValue, session=session, registry=registry)
