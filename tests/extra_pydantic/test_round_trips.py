"""`StorableModel` saved and loaded on SQLite and PostgreSQL: shapes of data, specs, streams."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated
from typing import Any
from typing import TypeVar

import numpy as np
import pytest
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from sqlalchemy import select

from lakery import ContentRecord
from lakery import Locator
from lakery import ManifestRecord
from lakery import Registry
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import JsonStreamSerializer
from lakery.builtin import StorableDataclass
from lakery.core.session import use_session
from lakery.core.storage import ValueWrite
from lakery.extra.numpy import NpySerializer
from lakery.extra.pydantic import ContentSpec
from lakery.extra.pydantic import ModelUnpacker
from lakery.extra.pydantic import StorableModel

T = TypeVar("T")
SaveInFiles = Annotated[T, ContentSpec(storage=FileStorage)]
Tagged = Annotated[T, ContentSpec(storage=FileStorage, tags={"kind": "big"})]

BIG = np.random.default_rng(0).random((64, 64))  # 32 KiB: a part of its own
SMALL = np.arange(4, dtype=np.int16)  # 8 bytes: inlined in the body


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Plain(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    label: str
    values: np.ndarray


@dataclass
class Point(StorableDataclass, class_id="f0000000000000000000000000000001"):
    x: float
    y: float


class Layer(StorableModel, class_id="f0000000000000000000000000000002"):
    name: str
    weights: np.ndarray
    bias: np.ndarray | None = None


class Containers(StorableModel, class_id="f0000000000000000000000000000003"):
    by_name: dict[str, np.ndarray]
    series: list[np.ndarray]
    pair: tuple[np.ndarray, np.ndarray]
    nested: dict[str, list[dict[str, np.ndarray]]]
    sequence: Sequence[np.ndarray] = ()
    mapping: Mapping[str, np.ndarray] = Field(default_factory=dict)


class Network(StorableModel, class_id="f0000000000000000000000000000004"):
    layers: list[Layer]
    head: Layer | None = None
    plain: Plain | None = None
    point: Point | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class Optionals(StorableModel, class_id="f0000000000000000000000000000005"):
    array: np.ndarray | None = None
    layer: Layer | None = None
    spec_array: Annotated[np.ndarray | None, ContentSpec(storage=FileStorage)] = None
    choice: int | np.ndarray = 0
    blob: bytes | None = None


class Streams(StorableModel, class_id="f0000000000000000000000000000006"):
    name: str
    rows: AsyncIterable[dict[str, int]]
    to_files: Annotated[
        AsyncIterable[int], ContentSpec(serializer=JsonStreamSerializer, storage=FileStorage)
    ]


class Frozen(StorableModel, class_id="f0000000000000000000000000000007", frozen=True):
    name: str
    values: tuple[int, ...]
    array: np.ndarray


class Aliased(StorableModel, class_id="f0000000000000000000000000000008"):
    one: SaveInFiles[np.ndarray]
    many: list[SaveInFiles[np.ndarray]]
    mapping: SaveInFiles[dict[str, float]]
    tagged: Tagged[np.ndarray]
    layer: SaveInFiles[Layer] | None = None


class InFiles(StorableModel, class_id="f0000000000000000000000000000009"):
    description: str
    results: Annotated[np.ndarray, ContentSpec(storage=FileStorage, tags={"type": "results"})]
    frames: list[Annotated[np.ndarray, ContentSpec(serializer=NpySerializer, tags={"f": "1"})]]


class Scalars(StorableModel, class_id="f000000000000000000000000000000a"):
    when: datetime
    day: date
    span: timedelta
    ident: uuid.UUID
    amount: Decimal
    color: Color
    names: set[str]
    frozen_names: frozenset[int]
    pair: tuple[int, str]
    by_number: dict[int, str]
    ratio: float
    small_blob: bytes
    big_blob: bytes
    complex_number: complex


class Everything(StorableModel, class_id="f000000000000000000000000000000b"):
    anything: Any
    union: np.ndarray | str
    aliased_field: np.ndarray = Field(alias="aliasedField")


async def round_trip(new_session, registry: Registry, obj: Any) -> tuple[Any, ManifestRecord]:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry)
    async with new_session() as session:
        loaded = await load_one(record, type(obj), session=session, registry=registry)
    return loaded, record


def parts(record: ManifestRecord) -> dict[str, ContentRecord]:
    return {content.content_key: content for content in record.contents}


async def test_nested_containers_of_arrays(new_session, model_registry: Registry) -> None:
    obj = Containers(
        by_name={"big": BIG, "small": SMALL, "with/slash": BIG[:3]},
        series=[BIG, SMALL.astype(np.float32), np.array([], dtype=np.int8)],
        pair=(np.array(1.5), np.ones((2, 2), dtype=bool)),
        nested={"a": [{"x": BIG.T, "y": SMALL}], "b": []},
        sequence=[BIG[::2]],
        mapping={"m": np.asfortranarray(BIG)},
    )
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    assert loaded.series[1].dtype == np.float32
    assert loaded.nested["a"][0]["x"].flags.f_contiguous  # a transposed view is Fortran order
    assert isinstance(loaded.pair, tuple)
    keys = set(parts(record))
    assert keys == {
        "model",
        "/by_name/big",
        "/by_name/with~1slash",
        "/series/0",
        "/nested/a/0/x",
        "/sequence/0",
        "/mapping/m",
    }
    assert all(parts(record)[k].serializer_name == "lakery.numpy.npy@v1" for k in keys - {"model"})


async def test_large_arrays_are_parts_and_never_base64_in_the_body(
    new_session, model_registry: Registry
) -> None:
    big = np.zeros(1 << 20, dtype=np.uint8)  # 1 MiB
    obj = Layer(name="big", weights=big, bias=SMALL)
    _, record = await round_trip(new_session, model_registry, obj)
    body = parts(record)["model"]
    assert body.content_size < 1000
    assert parts(record)["/weights"].content_size == big.nbytes + 128
    async with new_session() as session:
        storage = model_registry.get_storage(body.storage_name)
        with use_session(session):
            document = json.loads(bytes(await storage.get_value(body.storage_data)))
    assert document["data"] == {"name": "big", "weights": None, "bias": None}
    assert document["refs"][0] == {"path": ["weights"], "key": "/weights"}
    assert document["refs"][1]["path"] == ["bias"]
    assert document["refs"][1]["serializer"] == "lakery.numpy.npy@v1"


async def test_inline_limit_zero_gives_every_array_a_part(
    new_session, model_registry: Registry
) -> None:
    class AllParts(
        StorableModel,
        class_id="f00000000000000000000000000000a1",
        unpacker=ModelUnpacker(inline_limit=0),
    ):
        tiny: np.ndarray
        blob: bytes

    obj = AllParts(tiny=SMALL, blob=b"\x00")
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    assert set(parts(record)) == {"model", "/tiny", "/blob"}
    assert parts(record)["/blob"].serializer_name == "lakery.bytes@v1"


async def test_nested_models_and_storables(new_session, model_registry: Registry) -> None:
    obj = Network(
        layers=[Layer(name="l1", weights=BIG, bias=SMALL), Layer(name="l2", weights=SMALL)],
        head=Layer(name="head", weights=BIG[:3]),
        plain=Plain(label="p", values=BIG[:3]),
        point=Point(1.0, 2.5),
        meta={"epochs": 3, "lr": 0.1, "nested": {"ok": True}},
    )
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    assert isinstance(loaded.layers[0], Layer)
    assert isinstance(loaded.plain, Plain)
    assert loaded.point == Point(1.0, 2.5)
    assert {"/layers/0/weights", "/head/weights", "/plain/values"} <= set(parts(record))


@pytest.mark.parametrize("filled", [True, False], ids=["set", "unset"])
async def test_optional_fields(new_session, model_registry: Registry, filled: bool) -> None:
    if filled:
        obj = Optionals(
            array=BIG,
            layer=Layer(name="x", weights=SMALL),
            spec_array=BIG[:1],
            choice=BIG[:3],
            blob=b"\xff" * 2000,
        )
    else:
        obj = Optionals()
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    if filled:
        assert set(parts(record)) == {"model", "/array", "/spec_array", "/choice", "/blob"}
        assert parts(record)["/spec_array"].storage_name == "lakery.file@v1"
        assert isinstance(loaded.choice, np.ndarray)
    else:
        assert set(parts(record)) == {"model"}
        assert loaded.array is None and loaded.spec_array is None and loaded.choice == 0


async def test_streams(new_session, model_registry: Registry) -> None:
    async def rows() -> AsyncIterator[dict[str, int]]:
        for i in range(100):
            yield {"i": i, "square": i * i}

    async def numbers() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    obj = Streams(name="s", rows=rows(), to_files=numbers())
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
    contents = parts(record)
    assert contents["/rows"].serializer_type == "stream"
    assert contents["/rows"].serializer_name == "lakery.json.stream@v1"
    assert contents["/to_files"].storage_name == "lakery.file@v1"
    async with new_session() as session:
        loaded = await load_one(record, Streams, session=session, registry=model_registry)
        assert loaded.name == "s"
        assert [row async for row in loaded.rows] == [{"i": i, "square": i * i} for i in range(100)]
        assert [n async for n in loaded.to_files] == list(range(10))


async def test_frozen_models(new_session, model_registry: Registry) -> None:
    obj = Frozen(name="f", values=(1, 2, 3), array=BIG)
    loaded, _ = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    assert loaded.values == (1, 2, 3)
    with pytest.raises(ValidationError, match="frozen"):
        loaded.name = "changed"


async def test_generic_annotated_aliases(new_session, model_registry: Registry) -> None:
    obj = Aliased(
        one=BIG,
        many=[SMALL, BIG[:1]],
        mapping={"a": 1.0, "b": float("inf")},
        tagged=SMALL,
        layer=Layer(name="in files", weights=SMALL, bias=BIG),
    )
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    contents = parts(record)
    assert set(contents) == {
        "model",
        "/one",
        "/many/0",
        "/many/1",
        "/mapping",
        "/tagged",
        "/layer",
        "/layer/weights",
        "/layer/bias",
    }
    for key in contents.keys() - {"model"}:
        assert contents[key].storage_name == "lakery.file@v1"
    assert contents["/mapping"].serializer_name == "lakery.pydantic.json@v1"
    assert contents["/layer"].serializer_name == "lakery.pydantic.json@v1"
    assert isinstance(loaded.layer, Layer)
    assert contents["/tagged"].tags == {"kind": "big"}
    assert contents["/one"].tags == {}


async def test_a_field_moved_to_file_storage_with_content_tags(
    new_session, files: FileStorage, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, dict[str, str]]] = []

    class WatchedFiles(FileStorage):
        async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
            seen.extend((write.sha256, dict(write.tags)) for write in writes)
            return await super().put_values(writes)

    watched = WatchedFiles(tmp_path / "watched")
    registry = Registry(
        modules=["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"],
        storages=[watched],
    )
    obj = InFiles(description="d", results=BIG, frames=[SMALL, BIG[:2]])
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry, tags={"run": "7"})
    async with new_session() as session:
        query = select(ContentRecord).where(ContentRecord.manifest_id == record.id)
        rows = {row.content_key: row for row in (await session.execute(query)).scalars()}
        loaded = await load_one(record, InFiles, session=session, registry=registry)
    assert loaded == obj
    assert rows["/results"].storage_name == "lakery.file@v1"
    assert rows["/results"].tags == {"type": "results"}
    assert rows["/results"].storage_data["root"] == watched.root.as_posix()
    assert rows["/frames/0"].tags == {"f": "1"}
    assert rows["/frames/0"].storage_name == "lakery.database@v1"  # no storage in that spec
    assert rows["model"].tags == {}
    # The storage is given the manifest's tags together with the content's.
    assert seen == [(rows["/results"].content_hash, {"run": "7", "type": "results"})]


async def test_json_values_stay_in_the_body(new_session, model_registry: Registry) -> None:
    obj = Scalars(
        when=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        day=date(2024, 2, 29),
        span=timedelta(days=1, seconds=3.5),
        ident=uuid.UUID(int=42),
        amount=Decimal("12.3400"),
        color=Color.BLUE,
        names={"b", "a", "c"},
        frozen_names=frozenset({3, 1}),
        pair=(1, "one"),
        by_number={1: "one", 20: "twenty"},
        ratio=float("-inf"),
        small_blob=b"\x00\xff",
        big_blob=bytes(range(256)) * 16,
        complex_number=1 - 2j,
    )
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    assert set(parts(record)) == {"model", "/big_blob"}


async def test_any_union_and_aliases(new_session, model_registry: Registry) -> None:
    obj = Everything(anything={"a": [1, BIG]}, union="text", aliasedField=SMALL)
    loaded, _ = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    obj = Everything(anything=BIG, union=BIG, aliasedField=BIG)
    loaded, _ = await round_trip(new_session, model_registry, obj)
    assert loaded == obj
    # numpy scalars are kept by value (as Python numbers)
    obj = Everything(
        anything=[np.int64(3), np.float32(0.5), np.bool_(True)], union="", aliasedField=SMALL
    )
    loaded, record = await round_trip(new_session, model_registry, obj)
    assert loaded.anything == [3, 0.5, True]
    assert set(parts(record)) == {"model"}


async def test_many_models_in_bulk_and_loading_without_the_class(
    new_session, model_registry: Registry
) -> None:
    objs = [Layer(name=str(i), weights=np.full((i + 1, 100), i)) for i in range(20)]
    async with new_session() as session:
        async with new_saver(session=session, registry=model_registry) as saver:
            futures = [saver.save_soon(obj, tags={"i": str(i)}) for i, obj in enumerate(objs)]
    records = [future.get() for future in futures]
    async with new_session() as session:
        async with new_loader(session=session, registry=model_registry) as loader:
            loaded = [loader.load_soon(record) for record in records]
    assert [future.get() for future in loaded] == objs
