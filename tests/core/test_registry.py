"""Building registries and looking components up."""

from __future__ import annotations

import sys
import types
from datetime import datetime

import pytest

from lakery import ConfigurationError
from lakery import NotRegisteredError
from lakery import Registry
from lakery import Serializer
from lakery import get_class_id
from lakery.builtin import DatabaseStorage
from lakery.builtin import FileStorage
from lakery.builtin import JsonSerializer
from lakery.builtin import MemoryStorage
from lakery.builtin import StorableValue


class Upper(Serializer[str]):
    name = "test.upper@v1"
    types = (str,)
    content_type = "text/plain; charset=utf-8"

    def serialize(self, value: str) -> bytes:
        return value.upper().encode()

    def deserialize(self, data) -> str:  # type: ignore[no-untyped-def]
        return bytes(data).decode()


class Bool(Serializer[bool]):
    name = "test.bool@v1"
    types = (bool,)

    def serialize(self, value: bool) -> bytes:
        return b"1" if value else b"0"

    def deserialize(self, data) -> bool:  # type: ignore[no-untyped-def]
        return bytes(data) == b"1"


def test_builtin_module() -> None:
    registry = Registry(modules=["lakery.builtin"])
    assert isinstance(registry.default_storage, DatabaseStorage)
    assert "lakery.json.value@v1" in registry.serializers
    assert "lakery.json.stream@v1" in registry.stream_serializers
    assert {"lakery.database@v1", "lakery.memory@v1"} <= set(registry.storages)
    assert "lakery.file@v1" not in registry.storages  # needs a root: registered explicitly
    assert {"lakery.value@v1", "lakery.stream@v1", "lakery.dataclass@v1"} <= set(registry.unpackers)
    assert registry.storables[get_class_id(StorableValue)] is StorableValue


def test_lookup_by_type_walks_the_mro() -> None:
    registry = Registry(modules=["lakery.builtin"])
    assert registry.find_serializer(dict).name == "lakery.json.value@v1"  # type: ignore[union-attr]
    assert registry.find_serializer(datetime).name == "lakery.datetime.iso@v1"  # type: ignore[union-attr]

    class MyDict(dict):  # type: ignore[type-arg]
        pass

    assert registry.find_serializer(MyDict).name == "lakery.json.value@v1"  # type: ignore[union-attr]
    assert registry.find_serializer(object) is None
    with_bool = Registry(registries=[registry], serializers=[Bool()])
    assert with_bool.find_serializer(bool).name == "test.bool@v1"  # type: ignore[union-attr]
    assert with_bool.find_serializer(int).name == "lakery.json.value@v1"  # type: ignore[union-attr]


def test_precedence_modules_then_registries_then_arguments() -> None:
    module = types.ModuleType("lakery_test_components")
    module.Upper = Upper  # type: ignore[attr-defined]
    module.__all__ = ["Upper"]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        from_module = Registry(modules=["lakery.builtin", module.__name__])
    finally:
        del sys.modules[module.__name__]
    assert from_module.find_serializer(str).name == "test.upper@v1"  # later module wins

    class Lower(Upper):
        name = "test.upper@v1"  # same name: replaces

    merged = Registry(modules=["lakery.builtin"], registries=[from_module])
    assert isinstance(merged.get_serializer("test.upper@v1"), Upper)
    explicit = Registry(registries=[merged], serializers=[Lower()])
    assert isinstance(explicit.get_serializer("test.upper@v1"), Lower)


def test_default_storage_inherited_and_overridden(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = FileStorage(tmp_path)
    base = Registry(modules=["lakery.builtin"], default_storage=files)
    assert Registry(registries=[base]).default_storage is files
    memory = MemoryStorage()
    assert Registry(registries=[base], default_storage=memory).default_storage is memory
    assert Registry().default_storage is None


def test_content_type_lookup_ignores_parameters() -> None:
    registry = Registry(modules=["lakery.builtin"], serializers=[Upper()])
    assert registry.find_serializer_for_content_type("Text/Plain").name == "test.upper@v1"  # type: ignore[union-attr]
    found = registry.find_serializer_for_content_type("application/json; charset=utf-8")
    assert isinstance(found, JsonSerializer)
    assert registry.find_serializer_for_content_type("image/png") is None


def test_find_component_by_class(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = FileStorage(tmp_path)
    registry = Registry(modules=["lakery.builtin"], storages=[files])
    assert registry.find_component(FileStorage) is files
    archive = FileStorage(tmp_path / "archive", name="archive@v1")
    both = Registry(registries=[registry], storages=[archive])
    assert both.find_component(FileStorage) is files  # the one under the class's own name
    assert Registry(storages=[archive]).find_component(FileStorage) is archive
    with pytest.raises(NotRegisteredError, match=r"no FileStorage is in the registry"):
        Registry(modules=["lakery.builtin"]).find_component(FileStorage)


def test_unknown_names_explain_the_fix() -> None:
    registry = Registry(modules=["lakery.builtin"])
    with pytest.raises(NotRegisteredError, match=r"no serializer named 'x@v1'.*Registry\(modules"):
        registry.get_serializer("x@v1")
    with pytest.raises(NotRegisteredError, match=r"Registry\(storages="):
        registry.get_storage("x@v1")


def test_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="cannot import registry module"):
        Registry(modules=["lakery.no_such_module"])
    with pytest.raises(ConfigurationError, match="has no __all__"):
        Registry(modules=["lakery.common"])
    with pytest.raises(ConfigurationError, match="two serializers are named"):
        Registry(serializers=[Upper(), Upper()])
    with pytest.raises(ConfigurationError, match="not a serializer"):
        Registry(serializers=["lakery.json.value@v1"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="Registry instances"):
        Registry(registries=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="default_storage"):
        Registry(default_storage=FileStorage)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="invalid component name"):
        FileStorage("/tmp", name="has spaces")
    with pytest.raises(ConfigurationError, match="invalid component name"):

        class Nameless(Upper):
            name = ""
