"""Arrays saved and loaded through lakery, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func
from sqlalchemy import select

from lakery import ManifestRecord
from lakery import NotRegisteredError
from lakery import Registry
from lakery import SerializationError
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableValue
from lakery.extra.numpy import NpySerializer

from .test_npy_serializer import ARRAYS
from .test_npy_serializer import assert_same_array


@dataclass
class Measurement(StorableDataclass, class_id="c0ffee00000000000000000000000001"):
    label: str
    samples: np.ndarray


@pytest.fixture
def files(tmp_path: Path) -> FileStorage:
    return FileStorage(tmp_path / "files")


@pytest.fixture
def numpy_registry(files: FileStorage) -> Registry:
    return Registry(modules=["lakery.builtin", "lakery.extra.numpy"], storages=[files])


def test_the_module_registers_the_serializer() -> None:
    registry = Registry(modules=["lakery.extra.numpy"])
    assert isinstance(registry.serializers["lakery.numpy.npy@v1"], NpySerializer)
    assert isinstance(registry.find_serializer(np.ndarray), NpySerializer)


@pytest.mark.parametrize("storage", ["file", "database"])
async def test_arrays_round_trip(new_session, numpy_registry: Registry, storage: str) -> None:
    names = ["float64 with nan and inf", "datetime64[ns]", "structured", "0-d", "empty 2-d"]
    names += ["fortran", "strided view", "complex128", "bool", "unicode"]
    chosen = FileStorage if storage == "file" else "lakery.database@v1"
    async with new_session() as session:
        async with new_saver(session=session, registry=numpy_registry) as saver:
            futures = [saver.save_soon(StorableValue(ARRAYS[n], storage=chosen)) for n in names]
    records = [future.get() for future in futures]
    for record in records:
        (content,) = record.contents
        assert content.serializer_name == "lakery.numpy.npy@v1"
        assert content.content_type == "application/x-npy"
        assert content.storage_name == (
            "lakery.file@v1" if storage == "file" else "lakery.database@v1"
        )
    async with new_session() as session:
        async with new_loader(session=session, registry=numpy_registry) as loader:
            loaded = [loader.load_soon(record, StorableValue) for record in records]
    for name, future in zip(names, loaded, strict=True):
        array = future.get().value
        assert_same_array(array, ARRAYS[name])
        assert array.flags.writeable
    assert loaded[names.index("fortran")].get().value.flags.f_contiguous


async def test_a_large_array_from_file_storage_is_a_view_of_the_bytes_read(
    new_session, numpy_registry: Registry
) -> None:
    array = np.random.default_rng(7).random((256, 1024))  # 2 MiB
    async with new_session() as session:
        record = await save_one(
            StorableValue(array, storage=FileStorage), session=session, registry=numpy_registry
        )
    assert record.contents[0].content_size == array.nbytes + 128
    async with new_session() as session:
        loaded = (
            await load_one(record, StorableValue, session=session, registry=numpy_registry)
        ).value
    np.testing.assert_array_equal(loaded, array)
    assert not loaded.flags.owndata  # a view of the bytearray FileStorage read, not a copy
    assert loaded.flags.writeable and loaded.flags.c_contiguous


async def test_an_array_field_of_a_dataclass(new_session, numpy_registry: Registry) -> None:
    obj = Measurement("run", np.linspace(0, 1, 11))
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=numpy_registry)
    assert {c.content_key: c.serializer_name for c in record.contents}["samples"] == (
        "lakery.numpy.npy@v1"
    )
    async with new_session() as session:
        loaded = await load_one(record, Measurement, session=session, registry=numpy_registry)
    assert loaded.label == "run"
    np.testing.assert_array_equal(loaded.samples, obj.samples)


async def test_without_the_numpy_module_saving_names_it(new_session, registry: Registry) -> None:
    async with new_session() as session:
        with pytest.raises(NotRegisteredError) as error:
            await save_one(StorableValue(np.arange(3)), session=session, registry=registry)
        count = await session.scalar(select(func.count()).select_from(ManifestRecord))
    assert "'lakery.extra.numpy'" in str(error.value)
    assert "Registry(modules=[...])" in str(error.value)
    assert count == 0


async def test_an_object_array_is_refused_and_nothing_is_saved(
    new_session, numpy_registry: Registry
) -> None:
    async with new_session() as session:
        with pytest.raises(SerializationError, match="pickle") as error:
            await save_one(
                StorableValue(np.array([{"a": 1}], dtype=object)),
                session=session,
                registry=numpy_registry,
            )
        count = await session.scalar(select(func.count()).select_from(ManifestRecord))
    assert error.value.serializer == "lakery.numpy.npy@v1"
    assert count == 0
