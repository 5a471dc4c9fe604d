"""Failures outside lakery reach the caller as LakeryErrors that name what failed.

The database down (SQLite and PostgreSQL), a connection lost during COMMIT (a real
PostgreSQL behind a proxy that cuts it), values nested too deeply, and NaN in JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import CommitUnknownError
from lakery import DatabaseError
from lakery import ManifestRecord
from lakery import Registry
from lakery import SerializationError
from lakery import StorageError
from lakery import find_manifests
from lakery import load_one
from lakery import save_one
from lakery.builtin import JsonSerializer
from lakery.builtin import MemoryStorage
from lakery.builtin import StorableValue
from lakery.core.serializer import Buffer
from tests.conftest import empty_postgres
from tests.core.test_failures import assert_nothing_saved
from tests.pg_proxy import commit_cutter


class CountingStorage(MemoryStorage):
    name = "test.counting@v1"

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def put_values(self, writes: Sequence[object]) -> list[dict[str, str]]:
        self.writes += 1
        return await super().put_values(writes)  # type: ignore[arg-type]


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def down_url(database_url: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database that cannot be reached: a closed port, a file in a missing folder."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'folder' / 'lakery.db'}"
    return "postgresql+asyncpg://lakery:s3cret-pw@127.0.0.1:9/test"


async def test_a_database_that_is_down_is_a_database_error(down_url: str) -> None:
    registry = Registry(modules=["lakery.builtin"], default_storage=CountingStorage())
    engine = create_async_engine(down_url)
    try:
        async with async_sessionmaker(engine)() as session:
            with pytest.raises(DatabaseError) as saving:
                await save_one(StorableValue("x"), session=session, registry=registry)
            with pytest.raises(DatabaseError) as finding:
                await find_manifests(session, tags={"a": "b"})
            record = ManifestRecord(id=uuid.uuid4(), class_id=uuid.uuid4(), unpacker_name="u")
            with pytest.raises(DatabaseError) as loading:
                await load_one(record, session=session, registry=registry)
    finally:
        await engine.dispose()
    hidden = make_url(down_url).render_as_string(hide_password=True)
    for raised, doing in [
        (saving, "saving 1 object (StorableValue)"),
        (finding, "finding manifests"),
        (loading, "loading 1 object"),
    ]:
        error = raised.value
        assert str(error).startswith(f"{doing}: the database {hidden} failed")
        assert "s3cret-pw" not in str(error) and error.database == hidden
        assert error.__cause__ is not None and not isinstance(error.__cause__, DatabaseError)
    assert registry.default_storage.writes == 1  # type: ignore[attr-defined]  # blobs first


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["before", "after"])
async def test_connection_lost_during_commit_is_commit_unknown(
    postgres_base_url: str, when: str
) -> None:
    """The rows may be committed ("after": the server committed, the answer was lost)
    or not ("before"); either way the error says so and carries the manifest ids."""
    await empty_postgres(postgres_base_url)
    registry = Registry(modules=["lakery.builtin"], default_storage=MemoryStorage())
    upstream = make_url(postgres_base_url)
    async with commit_cutter(upstream.port or 5432, when=when) as cutter:
        proxied = upstream.set(host="127.0.0.1", port=cutter.port)
        cut_engine = create_async_engine(proxied, connect_args={"ssl": False})
        try:
            async with async_sessionmaker(cut_engine)() as session:
                with pytest.raises(CommitUnknownError, match="may or may not be stored") as raised:
                    await save_one(StorableValue([1, 2]), session=session, registry=registry)
        finally:
            await cut_engine.dispose()
    assert cutter.cuts == 1
    error = raised.value
    assert len(error.manifest_ids) == 1 and str(error.manifest_ids[0]) in str(error)
    assert isinstance(error, DatabaseError) and error.__cause__ is not None
    engine = create_async_engine(postgres_base_url)
    async with async_sessionmaker(engine)() as session:
        stored = (await session.execute(select(ManifestRecord))).scalars().all()
        if when == "after":
            assert [record.id for record in stored] == list(error.manifest_ids)
            loaded = await load_one(stored[0], session=session, registry=registry)
            assert loaded.value == [1, 2]
        else:
            assert stored == []
    await engine.dispose()


async def test_values_nested_too_deeply_are_serialization_errors(new_session) -> None:  # type: ignore[no-untyped-def]
    storage = CountingStorage()
    registry = Registry(modules=["lakery.builtin"], default_storage=storage)
    async with new_session() as session:
        with pytest.raises(SerializationError, match="recursion") as raised:
            await save_one(StorableValue(nested(100_000)), session=session, registry=registry)
    assert isinstance(raised.value.__cause__, RecursionError)
    assert raised.value.serializer == "lakery.json.value@v1"
    assert storage.writes == 0
    await assert_nothing_saved(new_session)


class DeepReader(JsonSerializer):
    """Reads like a JSON parser given data nested deeper than Python's recursion limit."""

    name = "test.deep-reader@v1"

    def deserialize(self, data: Buffer) -> object:
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")


async def test_data_nested_too_deeply_to_read_is_a_serialization_error(new_session) -> None:  # type: ignore[no-untyped-def]
    registry = Registry(
        modules=["lakery.builtin"], serializers=[DeepReader()], default_storage=MemoryStorage()
    )
    async with new_session() as session:
        record = await save_one(
            StorableValue([1], serializer=DeepReader), session=session, registry=registry
        )
        with pytest.raises(SerializationError, match="recursion depth") as raised:
            await load_one(record, session=session, registry=registry)
    assert str(record.id) in str(raised.value)
    assert isinstance(raised.value.__cause__, RecursionError)


@pytest.mark.parametrize("value", [float("nan"), {"loss": float("inf")}, [-float("inf")]])
async def test_json_refuses_nan_and_infinity(new_session, value: object) -> None:  # type: ignore[no-untyped-def]
    storage = CountingStorage()
    registry = Registry(modules=["lakery.builtin"], default_storage=storage)
    async with new_session() as session:
        with pytest.raises(SerializationError, match="NaN and infinite floats are not JSON"):
            await save_one(StorableValue(value), session=session, registry=registry)
    assert storage.writes == 0


def test_json_reading_refuses_duplicate_keys_and_keeps_old_nan() -> None:
    json = JsonSerializer()
    with pytest.raises(ValueError, match=r"duplicate keys \['a'\]"):
        json.deserialize(b'{"a": 1, "b": {"a": 2}, "a": 3}')
    assert json.deserialize(b'{"a": {"a": 1}}') == {"a": {"a": 1}}
    old = json.deserialize(b"[NaN, Infinity, -Infinity]")  # written before lakery refused it
    assert old[0] != old[0] and old[1:] == [float("inf"), -float("inf")]  # type: ignore[index]


class FullDisk(MemoryStorage):
    name = "test.full@v1"

    async def put_values(self, writes: Sequence[object]) -> list[dict[str, str]]:
        raise OSError(28, "No space left on device")

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> dict[str, str]:
        raise OSError(28, "No space left on device")


async def test_a_full_disk_is_a_storage_error_naming_the_storage(new_session) -> None:  # type: ignore[no-untyped-def]
    registry = Registry(modules=["lakery.builtin"], default_storage=FullDisk())
    async with new_session() as session:
        with pytest.raises(StorageError, match="no space is left on its device") as raised:
            await save_one(StorableValue("x"), session=session, registry=registry)
    assert "storage <FullDisk 'test.full@v1'>" in str(raised.value)
    assert raised.value.__cause__.errno == 28  # type: ignore[union-attr]
    await assert_nothing_saved(new_session)
