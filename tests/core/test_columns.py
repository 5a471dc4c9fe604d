"""Column subsets and lazy stream tails in the core, with test-only components (no
pyarrow): a JSON "table" of named columns, and a stream whose tail is a generator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import Registry
from lakery import SerializationError
from lakery import StorageError
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableStream
from lakery.core.serializer import Buffer
from lakery.core.serializer import ColumnarSerializer
from lakery.core.serializer import StreamDecoder
from lakery.core.serializer import StreamEncoder
from lakery.core.serializer import StreamSerializer


class Columns(dict[str, list[Any]]):
    """A table as {column: values}."""


class ColumnsJson(ColumnarSerializer[Columns]):
    name = "test.columns.json@v1"
    types = (Columns,)
    content_type = "application/json"

    def serialize(self, value: Columns) -> bytes:
        return json.dumps(value).encode()

    def deserialize(self, data: Buffer) -> Columns:
        return Columns(json.loads(bytes(data)))

    def deserialize_columns(self, data: Buffer, columns: Sequence[str]) -> Columns:
        table = self.deserialize(data)
        missing = [c for c in columns if c not in table]
        if missing:
            raise KeyError(f"no column {missing[0]!r} (it has: {list(table)})")
        return Columns({c: table[c] for c in columns})


@dataclass
class Measured(StorableDataclass, class_id="1b2c3d4e5f6a47b8c9d0e1f2a3b4c5d6"):
    label: str
    table: Columns


TABLE = Columns({"a": [1, 2], "b": ["x", "y"], "c": [True, False]})


@pytest.mark.parametrize("where", ["database", "memory", "files"])
async def test_only_columnar_parts_are_cut_to_the_columns(
    where: str, new_session: async_sessionmaker, tmp_path: Path
) -> None:
    storage = {"memory": MemoryStorage(), "files": FileStorage(tmp_path / "blobs")}.get(where)
    registry = Registry(
        modules=["lakery.builtin"], serializers=[ColumnsJson()], default_storage=storage
    )
    async with new_session() as session:
        record = await save_one(Measured("m", TABLE), session=session, registry=registry)
    async with new_session() as session:
        loaded = await load_one(
            record, Measured, session=session, registry=registry, columns=["c", "a"]
        )
        whole = await load_one(record, Measured, session=session, registry=registry)
        with pytest.raises(SerializationError, match=r"part 'table' of record .*no column 'z'"):
            await load_one(record, Measured, session=session, registry=registry, columns=["z"])
    assert loaded.label == "m"  # the JSON part is not a table: loaded whole
    assert list(loaded.table) == ["c", "a"] and loaded.table["a"] == [1, 2]
    assert whole.table == TABLE


def test_file_storage_local_paths_stay_under_a_content_key(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "blobs")
    key = "ab/" + "ab" * 32
    assert storage.local_path({"root": storage.root.as_posix(), "key": key}) == (
        f"{storage.root.as_posix()}/{key}"
    )
    for bad in ("../outside", "ab/../../etc/passwd", "ab/" + "z" * 64):
        with pytest.raises(StorageError):
            storage.local_path({"root": storage.root.as_posix(), "key": bad})
    assert MemoryStorage().local_path({"key": key}) is None


class _LazyTail(StreamSerializer[int]):
    """Ints as lines; the decoder returns every item from `finish`, as a generator."""

    name = "test.lazy-tail@v1"
    types = (int,)
    content_type = "text/plain"

    def __init__(self) -> None:
        self.closed: list[bool] = []

    def encoder(self) -> StreamEncoder[int]:
        class Encoder(StreamEncoder[int]):
            def encode(self, item: int) -> bytes:
                return f"{item}\n".encode()

        return Encoder()

    def decoder(self) -> StreamDecoder[int]:
        serializer = self

        class Decoder(StreamDecoder[int]):
            def __init__(self) -> None:
                self.data = b""

            def decode(self, chunk: Buffer) -> list[int]:
                self.data += bytes(chunk)
                return []

            def finish(self) -> Iterator[int]:
                def items() -> Iterator[int]:
                    try:
                        for line in self.data.splitlines():
                            yield int(line)
                    finally:
                        serializer.closed.append(True)

                return items()

        return Decoder()


async def test_a_lazy_tail_is_read_item_by_item_and_closed_when_left(
    new_session: async_sessionmaker,
) -> None:
    serializer = _LazyTail()
    registry = Registry(modules=["lakery.builtin"], serializers=[serializer])

    async def numbers() -> AsyncIterator[int]:
        for n in range(100):
            yield n

    async with new_session() as session:
        record = await save_one(
            StorableStream(numbers(), serializer=serializer), session=session, registry=registry
        )
    async with new_session() as session:
        stream = await load_one(record, StorableStream, session=session, registry=registry)
        assert [n async for n in stream] == list(range(100))
        assert serializer.closed == [True]
        stream = await load_one(record, StorableStream, session=session, registry=registry)
        async for n in stream:
            if n == 3:
                break
        await stream.stream.aclose()
    assert serializer.closed == [True, True]
