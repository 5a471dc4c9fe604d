"""The save/load suite, run on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import date
from datetime import datetime

import pytest
from sqlalchemy import func
from sqlalchemy import select

from lakery import BlobRecord
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import get_class_id
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import CsvSerializer
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue


@dataclass
class Point(StorableDataclass, class_id="a0000000000000000000000000000001"):
    x: float
    y: float


@dataclass
class Inner:
    label: str
    when: datetime


@dataclass
class Outer(StorableDataclass, class_id="a0000000000000000000000000000002"):
    name: str
    inner: Inner
    point: Point | None = None
    day: date = date(2024, 1, 1)
    blob: bytes = b""
    history: list[int] = field(default_factory=list)


async def count(session, model) -> int:  # type: ignore[no-untyped-def]
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_save_one_load_one(new_session, registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(StorableValue({"a": [1, 2]}), session=session, registry=registry)
    assert isinstance(record, ManifestRecord)
    assert record.class_id == get_class_id(StorableValue)
    assert record.unpacker_name == "lakery.value@v1"
    assert record.created_at.tzinfo is not None
    [content] = record.contents
    assert content.content_key == "value"
    assert content.content_type == "application/json"
    assert content.content_hash_algorithm == "sha256"
    assert content.serializer_name == "lakery.json.value@v1"
    assert content.serializer_type == "value"
    assert content.storage_name == "lakery.database@v1"
    async with new_session() as session:
        loaded = await load_one(record, StorableValue, session=session, registry=registry)
    assert loaded == StorableValue({"a": [1, 2]})


async def test_records_from_queries_load(new_session, registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(Point(1.0, 2.0), session=session, registry=registry)
    async with new_session() as session:
        found = (
            await session.execute(select(ManifestRecord).where(ManifestRecord.id == record.id))
        ).scalar_one()
        assert found.created_at.tzinfo is not None
        assert await load_one(found, Point, session=session, registry=registry) == Point(1, 2)
        # Without a class: found by class id among imported storables.
        assert await load_one(found, session=session, registry=registry) == Point(1, 2)


async def test_bulk_save_and_load(new_session, registry: Registry) -> None:
    values = [StorableValue(i) for i in range(300)] + [Point(i, -i) for i in range(300)]
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(v, tags={"i": str(i)}) for i, v in enumerate(values)]
        records = [f.get() for f in futures]
        assert await count(session, ManifestRecord) == 600
    assert [r.tags for r in records] == [{"i": str(i)} for i in range(600)]
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            loaded = [loader.load_soon(r, type(v)) for r, v in zip(records, values, strict=True)]
    assert [f.get() for f in loaded] == values


async def test_identical_content_is_stored_once(new_session, registry: Registry) -> None:
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            for _ in range(5):
                saver.save_soon(StorableValue("same"))
        await save_one(StorableValue("same"), session=session, registry=registry)
        assert await count(session, ManifestRecord) == 6
        assert await count(session, ContentRecord) == 6
        assert await count(session, BlobRecord) == 1


async def test_tags_round_trip(new_session, registry: Registry) -> None:
    tags = {"experiment": "baseline", "model": "cnn", "ünïcode": "✓", "empty": ""}
    async with new_session() as session:
        record = await save_one(StorableValue(1), session=session, registry=registry, tags=tags)
    async with new_session() as session:
        stored = await session.get(ManifestRecord, record.id)
        assert stored is not None
        assert stored.tags == tags


async def test_dataclass_nested_and_non_json_fields(new_session, registry: Registry) -> None:
    obj = Outer(
        name="o",
        inner=Inner("in", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        point=Point(3.5, 4.5),
        day=date(2020, 2, 29),
        blob=b"\x00\x01",
        history=[1, 2, 3],
    )
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry)
    keys = {c.content_key: c.serializer_name for c in record.contents}
    assert keys == {
        "name": "lakery.json.value@v1",
        "inner.label": "lakery.json.value@v1",
        "inner.when": "lakery.datetime.iso@v1",
        "point.x": "lakery.json.value@v1",
        "point.y": "lakery.json.value@v1",
        "day": "lakery.date.iso@v1",
        "blob": "lakery.bytes@v1",
        "history": "lakery.json.value@v1",
    }
    async with new_session() as session:
        assert await load_one(record, Outer, session=session, registry=registry) == obj
    unset = Outer(name="u", inner=Inner("x", datetime(2000, 1, 1)))
    async with new_session() as session:
        record = await save_one(unset, session=session, registry=registry)
        assert await load_one(record, Outer, session=session, registry=registry) == unset


async def numbers(n: int) -> AsyncIterator[dict[str, int]]:
    for i in range(n):
        yield {"i": i}


async def test_stream_storable(new_session, registry: Registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = FileStorage(tmp_path / "blobs")
    registry = Registry(registries=[registry], storages=[files])
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            in_db = saver.save_soon(StorableStream(numbers(1000)))
            in_files = saver.save_soon(StorableStream(numbers(10), storage=FileStorage))
            empty = saver.save_soon(StorableStream(numbers(0)))
    assert in_files.get().contents[0].storage_name == "lakery.file@v1"
    assert in_db.get().contents[0].content_type == "application/x-ndjson"
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            futures = [loader.load_soon(f.get(), StorableStream) for f in (in_db, in_files, empty)]
    streams = [f.get() for f in futures]
    # Stream parts read lazily, also after the session is closed.
    assert [item async for item in streams[0]] == [{"i": i} for i in range(1000)]
    assert [item async for item in streams[1]] == [{"i": i} for i in range(10)]
    assert [item async for item in streams[2]] == []


async def test_explicit_serializer_and_storage(new_session, registry: Registry) -> None:
    memory = MemoryStorage(name="scratch")
    registry = Registry(registries=[registry], storages=[memory])
    rows = [{"a": "1", "b": "2"}]
    async with new_session() as session:
        record = await save_one(
            StorableValue(rows, serializer=CsvSerializer, storage="scratch", tags={"t": "v"}),
            session=session,
            registry=registry,
        )
    [content] = record.contents
    assert (content.serializer_name, content.content_type) == ("lakery.csv@v1", "text/csv")
    assert content.storage_name == "scratch"
    assert content.tags == {"t": "v"}
    assert len(memory.blobs) == 1
    async with new_session() as session:
        loaded = await load_one(record, StorableValue, session=session, registry=registry)
    assert loaded.value == rows


async def test_file_storage_as_default(new_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = Registry(modules=["lakery.builtin"], default_storage=FileStorage(tmp_path / "b"))
    async with new_session() as session:
        record = await save_one(Point(1, 1), session=session, registry=registry)
    assert {c.storage_name for c in record.contents} == {"lakery.file@v1"}
    assert len([p for p in (tmp_path / "b").rglob("*") if p.is_file()]) == 1  # x == y: once
    async with new_session() as session:
        assert await load_one(record, Point, session=session, registry=registry) == Point(1, 1)


async def test_records_usable_after_session_closes(new_session, registry: Registry) -> None:
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            future = saver.save_soon(Point(5, 6), tags={"k": "v"})
        await session.commit()  # expire_on_commit=True must not break returned records
    record = future.get()
    assert record.tags == {"k": "v"}
    assert isinstance(record.id, uuid.UUID)
    assert sorted(c.content_key for c in record.contents) == ["x", "y"]
    async with new_session() as session:
        assert await load_one(record, Point, session=session, registry=registry) == Point(5, 6)


async def test_empty_saver_and_loader(new_session, registry: Registry) -> None:
    async with new_session() as session:
        async with new_saver(session=session, registry=registry):
            pass
        async with new_loader(session=session, registry=registry):
            pass
        assert await count(session, ManifestRecord) == 0


async def test_mixed_preloaded_and_queried_records(new_session, registry: Registry) -> None:
    """Every future gets its own object when some records carry contents and some don't."""
    values = [StorableValue(f"value-{i}") for i in range(40)]
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(v) for v in values]
    saved = [f.get() for f in futures]
    async with new_session() as session:
        queried = {r.id: r for r in (await session.execute(select(ManifestRecord))).scalars().all()}
        mixed = [saved[i] if i % 3 else queried[saved[i].id] for i in range(len(saved))]
        mixed = mixed[::-1] + mixed[:5]  # reversed order, and some records twice
        async with new_loader(session=session, registry=registry) as loader:
            loads = [loader.load_soon(r, StorableValue) for r in mixed]
    by_id = {r.id: v for r, v in zip(saved, values, strict=True)}
    expected = [by_id[r.id] for r in mixed]
    assert len(set(map(id, mixed))) < len(mixed)
    assert [f.get() for f in loads] == expected


@pytest.mark.parametrize("max_concurrency", [1, 64])
async def test_concurrency_bounds(new_session, registry: Registry, max_concurrency: int) -> None:
    async with new_session() as session:
        async with new_saver(
            session=session, registry=registry, max_concurrency=max_concurrency
        ) as saver:
            futures = [saver.save_soon(StorableValue([i])) for i in range(100)]
        async with new_loader(
            session=session, registry=registry, max_concurrency=max_concurrency
        ) as loader:
            loads = [loader.load_soon(f.get()) for f in futures]
    assert [f.get().value for f in loads] == [[i] for i in range(100)]
