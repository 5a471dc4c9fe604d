"""Bad input: each a clear error, and nothing half-written."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import ConfigurationError
from lakery import DatabaseError
from lakery import NotRegisteredError
from lakery import SerializationError
from lakery import StorableTypeError
from lakery.builtin import StorableValue
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests.dagster.conftest import lakery_error
from tests.dagster.storables import Reading


class Opaque:
    """Not storable, and no serializer handles it."""


def _fails(assets: list, resources: dict, instance: Any = None, **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        dg.materialize(assets, resources=resources, instance=instance, **kwargs)
    return lakery_error(caught.value)


def _count(lakery: LakeryResource) -> int:
    return len(lakery.find(limit=None))


def test_non_storable_output(lakery: LakeryResource, resources: dict) -> None:
    @dg.asset
    def opaque() -> Any:
        return Opaque()

    error = _fails([opaque], resources)
    assert isinstance(error, StorableTypeError)
    message = str(error)
    assert "asset 'opaque'" in message and "Opaque" in message
    assert "StorableValue" in message and "registry_modules" in message
    assert "never pickles" in message
    assert _count(lakery) == 0


def test_output_nested_too_deeply_is_a_serialization_error(
    lakery: LakeryResource, resources: dict
) -> None:
    @dg.asset
    def deep() -> list:
        value: list = []
        for _ in range(100_000):
            value = [value]
        return value

    error = _fails([deep], resources)
    assert isinstance(error, SerializationError)
    assert isinstance(error.__cause__, RecursionError)
    assert any("nothing of" in note for note in getattr(error, "__notes__", []))
    assert _count(lakery) == 0


def test_collection_with_one_bad_item_saves_nothing(lakery: LakeryResource, resources: dict):
    @dg.asset
    def mixed() -> dict[str, Any]:
        return {"good": Reading("a", [1.0]), "bad": StorableValue(Opaque())}

    @dg.asset
    def half() -> dict[str, Any]:
        return {"good": Reading("a", [1.0]), "plain": 1}

    error = _fails([mixed], resources)
    assert isinstance(error, NotRegisteredError)
    assert "no serializer" in str(error) and "Opaque" in str(error)
    error = _fails([half], resources)
    assert isinstance(error, StorableTypeError) and "mixes storables" in str(error)
    assert _count(lakery) == 0


def test_range_output_must_be_keyed_by_partition(lakery: LakeryResource, resources: dict):
    @dg.asset(
        partitions_def=dg.StaticPartitionsDefinition(["a", "b"]),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def ranged(context) -> dict[str, int]:
        return {"a": 1}

    tags = {"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "b"}
    error = _fails([ranged], resources, tags=tags)
    assert isinstance(error, StorableTypeError) and "missing: ['b']" in str(error)
    assert _count(lakery) == 0


def test_unregistered_class(lakery: LakeryResource, lakery_url: str, resources: dict) -> None:
    record = lakery.save(StorableValue({"x": 1}), tags={"dagster/asset_key": "old"})
    unknown = uuid.UUID("0badc1a5" * 4)

    async def forget_class() -> None:
        engine = create_async_engine(lakery_url)
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE lakery_manifests SET class_id = :c WHERE id = :i"),
                {"c": unknown.hex if "sqlite" in lakery_url else unknown, "i": _id(record.id)},
            )
        await engine.dispose()

    def _id(value: uuid.UUID) -> Any:
        return value.hex if "sqlite" in lakery_url else value

    asyncio.run(forget_class())

    @dg.asset
    def old() -> Any:
        return {"x": 1}

    @dg.asset(ins={"old": dg.AssetIn(metadata={"lakery/manifest_id": str(record.id)})})
    def reader(old: Any) -> Any:
        return old

    error = _fails([old, reader], resources, selection=[reader])
    assert isinstance(error, NotRegisteredError)
    assert unknown.hex in str(error) and "import the module that defines it" in str(error)
    assert _count(lakery) == 1


def test_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://someone:hunter2@127.0.0.1:9/nowhere"
    lakery = LakeryResource(database_url=url, connect_timeout=3)

    @dg.asset
    def value() -> int:
        return 1

    error = _fails([value], {"io_manager": LakeryIOManager(lakery=lakery)})
    assert isinstance(error, DatabaseError) and error.__cause__ is not None
    assert error.database == "postgresql+asyncpg://someone:***@127.0.0.1:9/nowhere"
    assert "cannot connect" in str(error) and "127.0.0.1:9" in str(error)
    assert "hunter2" not in str(error) and "***" in str(error)
    assert "hunter2" not in repr(lakery)


@pytest.mark.parametrize(
    ("storage_url", "expected"),
    [
        ("ftp://host/path", "unsupported scheme 'ftp'"),
        ("s3:///no-bucket", "has no bucket"),
        ("file://server/share", "names the host 'server'"),
        ("FILE", "is a file, not a directory"),
    ],
)
def test_wrong_storage_url(lakery_url: str, tmp_path: Path, storage_url: str, expected: str):
    if storage_url == "FILE":
        storage_url = str(tmp_path / "not-a-dir")
        Path(storage_url).write_text("x")
    lakery = LakeryResource(database_url=lakery_url, storage_url=storage_url)

    @dg.asset
    def value() -> int:
        return 1

    error = _fails([value], {"io_manager": LakeryIOManager(lakery=lakery)})
    assert isinstance(error, ConfigurationError)
    assert expected in str(error)
    checker = LakeryResource(database_url=lakery_url)
    assert _count(checker) == 0
    checker.close()


def test_malformed_database_url_and_bad_registry_module() -> None:
    with pytest.raises(ConfigurationError, match="malformed database_url"):
        LakeryResource(database_url="not a url").open()
    with pytest.raises(ConfigurationError, match="supports 'postgresql"):
        LakeryResource(database_url="mysql://u:pw@h/db").open()
    with pytest.raises(ConfigurationError, match="cannot import registry module 'nope'"):
        LakeryResource(database_url="sqlite://", registry_modules=["nope"]).open()
    with pytest.raises(ConfigurationError, match="registry_modules must be a list"):
        LakeryResource.model_construct(registry_modules="lakery.builtin").build_registry()


def test_bad_user_tags(lakery: LakeryResource, resources: dict) -> None:
    @dg.asset(metadata={"lakery/tags": {"n": 1}})
    def tagged() -> int:
        return 1

    error = _fails([tagged], resources)
    assert "convert these entries" in str(error)
    assert _count(lakery) == 0
