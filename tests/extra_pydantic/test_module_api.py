"""What `lakery.extra.pydantic` and `lakery.extra.numpy` export, and what a registry gets."""

from __future__ import annotations

import importlib

import pytest

from lakery import Registry
from lakery.extra.pydantic import ModelJsonSerializer
from lakery.extra.pydantic import ModelUnpacker
from lakery.extra.pydantic import StorableModel


@pytest.mark.parametrize("name", ["lakery.extra.pydantic", "lakery.extra.numpy"])
def test_all_is_accurate_and_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    assert len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        assert (getattr(module, attr).__doc__ or "").strip(), attr


def test_a_registry_from_the_module_has_what_models_need() -> None:
    registry = Registry(modules=["lakery.extra.pydantic"])
    assert isinstance(registry.get_unpacker("lakery.pydantic.model@v1"), ModelUnpacker)
    assert isinstance(registry.get_serializer("lakery.pydantic.json@v1"), ModelJsonSerializer)
    assert registry.find_serializer(dict) is None  # the body serializer is never picked by type
    assert StorableModel in registry.storables.values()


def test_component_names_are_permanent() -> None:
    from lakery.extra.numpy import NpySerializer

    assert ModelUnpacker.name == "lakery.pydantic.model@v1"
    assert ModelJsonSerializer.name == "lakery.pydantic.json@v1"
    assert NpySerializer.name == "lakery.numpy.npy@v1"
