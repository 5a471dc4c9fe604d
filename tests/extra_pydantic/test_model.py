"""`StorableModel` as a class (keywords, ids, generics, equality, array input) and the
errors of saving and loading models."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
import warnings
from typing import Annotated
from typing import ClassVar
from typing import Generic
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import PlainSerializer
from pydantic import ValidationError
from pydantic import computed_field
from pydantic import field_validator
from pydantic import model_validator
from sqlalchemy import func
from sqlalchemy import select

from lakery import ConfigurationError
from lakery import InvalidClassIdError
from lakery import InvalidTagsError
from lakery import LakeryWarning
from lakery import ManifestRecord
from lakery import NotRegisteredError
from lakery import Registry
from lakery import SerializationError
from lakery import get_class_id
from lakery import get_unpacker
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.extra.pydantic import ContentSpec
from lakery.extra.pydantic import ModelUnpacker
from lakery.extra.pydantic import StorableModel

T = TypeVar("T")
BIG = np.arange(4096, dtype=np.float64)


class Settings(StorableModel, class_id="e1e1e1e1-0000-4000-8000-000000000001", frozen=True):
    model_config = ConfigDict(extra="forbid")
    name: str


class Box(StorableModel, Generic[T], class_id="e1e1e1e1000040008000000000000002"):
    item: T
    array: np.ndarray | None = None


class Validated(StorableModel, class_id="e1e1e1e1000040008000000000000003"):
    calls: ClassVar[list[str]] = []
    reject: ClassVar[bool] = False
    name: str
    values: np.ndarray

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        cls.calls.append(value)
        if cls.reject:
            raise ValueError("names are no longer accepted")
        return value.strip()

    @model_validator(mode="after")
    def _check(self) -> Validated:
        if self.values.ndim != 1:
            raise ValueError("values must be 1-d")
        return self


class WithComputed(StorableModel, class_id="e1e1e1e1000040008000000000000004", extra="forbid"):
    values: np.ndarray

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> float:
        return float(self.values.sum())


class Inputs(StorableModel, class_id="e1e1e1e1000040008000000000000005"):
    one: np.ndarray = np.zeros(0)
    many: list[np.ndarray] = []
    pairs: tuple[np.ndarray, ...] = ()
    fixed: tuple[int, np.ndarray] = (0, np.zeros(0))
    nested: dict[str, list[np.ndarray]] = {}
    optional: np.ndarray | None = None
    typed: npt.NDArray[np.float64] = np.zeros(0)
    either: np.ndarray | list[float] = []


class Specced(StorableModel, class_id="e1e1e1e1000040008000000000000006"):
    results: Annotated[
        dict[str, Annotated[np.ndarray, ContentSpec(tags={"inner": "1"})]],
        ContentSpec(storage=FileStorage, tags={"outer": "1", "inner": "0"}),
    ]
    doubled: Annotated[int, PlainSerializer(lambda v: v * 2, when_used="json"), ContentSpec()] = 1


def test_class_keywords_go_to_lakery_and_to_pydantic() -> None:
    assert get_class_id(Settings).hex == "e1e1e1e1000040008000000000000001"
    assert isinstance(get_unpacker(Settings), ModelUnpacker)
    assert Settings.model_config["frozen"] is True
    assert Settings.model_config["extra"] == "forbid"
    assert Settings.model_config["arbitrary_types_allowed"] is True
    with pytest.raises(ValidationError):
        Settings(name="a", other=1)  # type: ignore[call-arg]


def test_a_model_without_class_id_gets_a_derived_one_with_a_warning() -> None:
    with pytest.warns(LakeryWarning, match="has no class_id") as caught:

        class Unpinned(StorableModel):
            x: int

    path = f"{__name__}.{Unpinned.__qualname__}"
    expected = hashlib.sha256(path.encode()).hexdigest()[:32]
    assert get_class_id(Unpinned).hex == expected
    assert f"class_id={expected!r}" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the class statement


def test_the_placeholder_class_id_warns_and_a_bad_one_fails() -> None:
    with pytest.warns(LakeryWarning, match=r"placeholder class_id '\.\.\.'"):

        class Placeholder(StorableModel, class_id="..."):
            x: int

    with pytest.raises(InvalidClassIdError, match="8 to 32 hexadecimal"):

        class Bad(StorableModel, class_id="not hex"):
            x: int


def test_class_ids_are_not_inherited_but_unpackers_are() -> None:
    unpacker = ModelUnpacker(inline_limit=0)

    class Parent(StorableModel, class_id="e1e1e1e1000040008000000000000010", unpacker=unpacker):
        x: int

    with pytest.warns(LakeryWarning, match="has no class_id"):

        class Child(Parent):
            y: int = 0

    assert get_class_id(Child) != get_class_id(Parent)
    assert get_unpacker(Child) is unpacker


def test_parametrized_generic_models_share_the_class_id_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LakeryWarning)
        concrete = Box[int]
        nested = Box[list[Box[str]]]
    assert "__lakery_class_id__" in concrete.__dict__
    assert get_class_id(concrete) == get_class_id(Box) == get_class_id(nested)
    assert get_class_id(Box[str]).hex == "e1e1e1e1000040008000000000000002"


def test_an_invalid_inline_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="inline_limit"):
        ModelUnpacker(inline_limit=-1)


def test_equality_compares_arrays_by_shape_and_value() -> None:
    a = Box[int](item=1, array=np.arange(6).reshape(2, 3))
    assert a == Box[int](item=1, array=np.arange(6).reshape(2, 3))
    assert a == Box[int](item=1, array=np.arange(6.0).reshape(2, 3))  # by value
    assert a != Box[int](item=1, array=np.arange(6).reshape(3, 2))
    assert a != Box[int](item=1, array=np.arange(6))
    assert a != Box[int](item=2, array=np.arange(6).reshape(2, 3))
    assert a != Box[int](item=1)
    assert Box[dict](item={"x": [np.ones(3)]}) == Box[dict](item={"x": [np.ones(3)]})
    assert Box[dict](item={"x": [np.ones(3)]}) != Box[dict](item={"x": (np.ones(3),)})
    assert Box[list](item=[np.ones(3)]) != Box[list](item=[[1.0, 1.0, 1.0]])  # array vs list
    assert Box[int](item=1) != Settings(name="x")
    assert Box[int](item=1) != 1


def test_array_fields_accept_array_likes() -> None:
    obj = Inputs(
        one=[[1, 2], [3, 4]],
        many=[[1.5], (2, 3)],
        pairs=([1], [2]),
        fixed=(1, [True, False]),
        nested={"a": [[1, 2, 3]]},
        optional=7,
        typed=[1.0, 2.0],
        either=[1.0, 2.0],
    )
    assert obj.one.shape == (2, 2)
    assert [type(a) for a in obj.many] == [np.ndarray, np.ndarray]
    assert isinstance(obj.pairs[1], np.ndarray)
    assert obj.fixed[1].dtype == np.bool_
    assert obj.nested["a"][0].tolist() == [1, 2, 3]
    assert obj.optional.ndim == 0
    assert isinstance(obj.typed, np.ndarray)
    assert obj.either == [1.0, 2.0]  # an ambiguous union is left to pydantic
    assert Inputs(optional=None).optional is None


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([[1, 2], [3]], "cannot be converted to a numpy array"),
        ([{"a": 1}], "without Python objects"),
        ("text", "instance of ndarray"),
        ({"a": 1}, "instance of ndarray"),
    ],
)
def test_bad_array_input_is_a_validation_error(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Inputs(one=value)


def test_content_specs_are_values() -> None:
    spec = ContentSpec(storage=FileStorage, tags={"a": "b"})
    assert spec == ContentSpec(storage=FileStorage, tags={"a": "b"})
    assert hash(spec) == hash(ContentSpec(storage=FileStorage, tags={"a": "b"}))
    assert spec != ContentSpec(storage=FileStorage)
    assert spec.tags == {"a": "b"}
    assert (
        repr(spec)
        == "ContentSpec(storage=<class 'lakery.builtin.file_storage.FileStorage'>, tags={'a': 'b'})"
    )
    with pytest.raises(ConfigurationError, match="storage must be a Storage"):
        ContentSpec(storage=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="serializer must be a Serializer"):
        ContentSpec(serializer=FileStorage)  # type: ignore[arg-type]
    with pytest.raises(InvalidTagsError, match="str"):
        ContentSpec(tags={"a": 1})  # type: ignore[dict-item]


def test_ordinary_dumps_are_not_changed_by_content_specs() -> None:
    obj = Specced(results={}, doubled=3)
    assert obj.model_dump() == {"results": {}, "doubled": 3}
    assert obj.model_dump_json() == '{"results":{},"doubled":6}'


async def test_validators_run_on_load(new_session, model_registry: Registry) -> None:
    Validated.calls.clear()
    obj = Validated(name="  name ", values=BIG)
    assert obj.name == "name"
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
        loaded = await load_one(record, Validated, session=session, registry=model_registry)
    assert loaded == obj
    assert Validated.calls == ["  name ", "name"]

    Validated.reject = True
    try:
        async with new_session() as session:
            with pytest.raises(SerializationError, match="names are no longer accepted"):
                await load_one(record, Validated, session=session, registry=model_registry)
    finally:
        Validated.reject = False


async def test_computed_fields_are_not_stored(new_session, model_registry: Registry) -> None:
    obj = WithComputed(values=BIG)
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
        loaded = await load_one(record, WithComputed, session=session, registry=model_registry)
    assert loaded == obj and loaded.total == obj.total


async def test_generic_models_round_trip(new_session, model_registry: Registry) -> None:
    obj = Box[list[int]](item=[1, 2], array=BIG)
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
        as_saved = await load_one(record, Box[list[int]], session=session, registry=model_registry)
        as_origin = await load_one(record, Box, session=session, registry=model_registry)
    assert record.class_id == get_class_id(Box)
    assert as_saved == obj and type(as_saved) is Box[list[int]]
    assert as_origin.item == [1, 2] and type(as_origin) is Box


async def test_nested_specs_inherit_storage_and_tags(new_session, model_registry: Registry) -> None:
    obj = Specced(results={"a": BIG, "b": np.ones(2)}, doubled=5)
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
        loaded = await load_one(record, Specced, session=session, registry=model_registry)
    assert loaded == obj
    contents = {c.content_key: c for c in record.contents}
    assert set(contents) == {"model", "/results", "/results/a", "/results/b", "/doubled"}
    assert contents["/results"].tags == {"outer": "1", "inner": "0"}
    for key in ("/results/a", "/results/b"):  # small or not, a spec'd value is a part
        assert contents[key].storage_name == "lakery.file@v1"
        assert contents[key].tags == {"outer": "1", "inner": "1"}
    assert contents["/doubled"].serializer_name == "lakery.pydantic.json@v1"


# -- errors ---------------------------------------------------------------------------


async def count_manifests(session) -> int:  # type: ignore[no-untyped-def]
    return await session.scalar(select(func.count()).select_from(ManifestRecord))


@pytest.mark.parametrize("array", [BIG, np.ones(2)], ids=["part", "small"])
async def test_without_numpy_in_the_registry_the_error_names_it(
    new_session, array: np.ndarray
) -> None:
    registry = Registry(modules=["lakery.builtin", "lakery.extra.pydantic"])
    async with new_session() as session:
        with pytest.raises(NotRegisteredError, match=r"add 'lakery\.extra\.numpy' to Registry"):
            await save_one(Box[int](item=1, array=array), session=session, registry=registry)
        assert await count_manifests(session) == 0


async def test_without_the_pydantic_module_the_error_names_it(new_session) -> None:
    registry = Registry(modules=["lakery.builtin", "lakery.extra.numpy"])
    async with new_session() as session:
        with pytest.raises(NotRegisteredError, match=r"add 'lakery\.extra\.pydantic' to Registry"):
            await save_one(Box[int](item=1), session=session, registry=registry)


async def test_a_spec_storage_missing_from_the_registry(new_session) -> None:
    registry = Registry(modules=["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"])
    async with new_session() as session:
        with pytest.raises(NotRegisteredError, match=r"no FileStorage is in the registry"):
            await save_one(Specced(results={"a": BIG}), session=session, registry=registry)

    class Elsewhere(StorableModel, class_id="e1e1e1e1000040008000000000000020"):
        data: Annotated[np.ndarray, ContentSpec(storage=MemoryStorage(name="scratch@v1"))]

    async with new_session() as session:
        with pytest.raises(NotRegisteredError, match="not in the registry"):
            await save_one(Elsewhere(data=BIG), session=session, registry=registry)
        assert await count_manifests(session) == 0


@pytest.mark.parametrize("size", [2, 5000], ids=["small", "large"])
async def test_object_arrays_are_refused(new_session, model_registry: Registry, size: int) -> None:
    array = np.array([None] * size, dtype=object)
    async with new_session() as session:
        with pytest.raises(SerializationError, match="pickle") as error:
            await save_one(Box[int](item=1, array=array), session=session, registry=model_registry)
        assert await count_manifests(session) == 0
    assert "part '/array'" in str(error.value)


async def test_a_missing_part_fails_the_load(new_session, model_registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(
            Box[int](item=1, array=BIG), session=session, registry=model_registry
        )
    record.contents = [c for c in record.contents if c.content_key != "/array"]
    async with new_session() as session:
        with pytest.raises(SerializationError, match="no part '/array'"):
            await load_one(record, Box[int], session=session, registry=model_registry)


def test_plain_models_are_not_storables() -> None:
    class Plain(BaseModel):
        x: int

    with pytest.raises(Exception, match="not a pydantic model"):
        ModelUnpacker().unpack(object(), Registry())  # type: ignore[arg-type]
    assert not isinstance(Plain(x=1), StorableModel)


def test_a_model_defined_in_a_function_sees_the_function_s_names() -> None:
    # Annotations are strings here (`from __future__ import annotations`): pydantic resolves
    # them in the namespace of the class statement, which lakery must not hide.
    class Local(BaseModel):
        x: int

    class UsesLocal(StorableModel, class_id="e1e1e1e1000040008000000000000030"):
        local: Local
        items: list[Local] = []

    assert UsesLocal.__pydantic_complete__
    assert UsesLocal.model_validate({"local": {"x": 1}}).local == Local(x=1)


class Strict(StorableModel, class_id="e1e1e1e1000040008000000000000040", strict=True):
    when: datetime.datetime
    ident: uuid.UUID
    values: np.ndarray


async def test_strict_models_load_from_their_body(new_session, model_registry: Registry) -> None:
    obj = Strict(when=datetime.datetime(2024, 1, 2, 3, 4), ident=uuid.UUID(int=7), values=BIG)
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=model_registry)
        loaded = await load_one(record, Strict, session=session, registry=model_registry)
    assert loaded == obj


class ArrayMixin(BaseModel):
    """A plain pydantic base with an array field, mixed into a storable model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    mixed: np.ndarray | None = None


class WithMixin(StorableModel, ArrayMixin, class_id="e1e1e1e1000040008000000000000050"):
    own: list[np.ndarray] = []
    later: LaterDefined | None = None  # a forward reference, resolved below


class InheritsArrays(WithMixin, class_id="e1e1e1e1000040008000000000000051"):
    extra: dict[str, np.ndarray] = {}


class LaterDefined(BaseModel):
    n: int = 0


WithMixin.model_rebuild()
InheritsArrays.model_rebuild()


def lakery_validators(model: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    validators = model.__pydantic_decorators__.field_validators
    return {k: v.info.fields for k, v in validators.items() if k.startswith("_lakery")}


def test_array_likes_are_converted_in_inherited_mixed_in_and_parametrized_fields() -> None:
    obj = InheritsArrays(mixed=[1, 2], own=[[3]], extra={"a": (4, 5)}, later={"n": 1})
    assert [type(a) for a in (obj.mixed, obj.own[0], obj.extra["a"])] == [np.ndarray] * 3
    assert obj.later == LaterDefined(n=1)
    assert isinstance(Box[np.ndarray](item=[1, 2]).item, np.ndarray)
    assert isinstance(Box[list[np.ndarray]](item=[[1, 2]]).item[0], np.ndarray)


def test_only_fields_that_may_want_arrays_get_the_conversion() -> None:
    """Validating a model (every load) calls into Python only for such fields."""
    assert lakery_validators(Settings) == {}
    assert set(lakery_validators(Inputs).popitem()[1]) == {
        "one",
        "many",
        "pairs",
        "fixed",
        "nested",
        "optional",
        "typed",
    }  # not `either`: an ambiguous union is left to pydantic
    # own fields, the mixin's, and a forward reference that may turn out to be an array
    assert set(lakery_validators(WithMixin).popitem()[1]) == {"own", "mixed", "later"}
    assert sorted(map(sorted, lakery_validators(InheritsArrays).values())) == [
        ["extra"],
        ["later", "mixed", "own"],
    ]
    assert list(lakery_validators(Box[int]).values()) == [("array",), ("*",)]


def test_model_bodies_read_what_the_fast_parser_refuses() -> None:
    from lakery.extra.pydantic.body import BodyDocument
    from lakery.extra.pydantic.body import ModelJsonSerializer

    serializer = ModelJsonSerializer()
    deep: list[object] = []
    for _ in range(500):
        deep = [deep]
    for value in (deep, {"lone": "\ud800"}, {"nan": float("inf")}):
        data = json.dumps(value).encode()  # ASCII, so a lone surrogate is an escape
        assert serializer.deserialize(bytearray(data)) == value
        assert serializer.deserialize(memoryview(data)) == value
    assert serializer.deserialize("é".join('""').encode("utf-16")) == "é"
    body = BodyDocument(data={"x": [1.5, float("nan"), 10**30, "é"]}, refs=[])
    assert (
        serializer.serialize(body)
        == '{"data":{"x":[1.5,NaN,1000000000000000000000000000000,"é"]},"refs":[]}'.encode()
    )
    # Values that are not model bodies are checked by the standard library's encoder.
    with pytest.raises(TypeError, match="not JSON serializable"):
        serializer.serialize({"when": datetime.date(2024, 1, 1)})
