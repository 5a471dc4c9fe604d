"""Class ids and unpackers of storables."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from uuid import UUID

import pytest

from lakery import InvalidClassIdError
from lakery import LakeryWarning
from lakery import Storable
from lakery import StorableTypeError
from lakery import get_class_id
from lakery import get_unpacker
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableValue
from lakery.core.storable import storable_class_for_id


def test_hex_ids_are_normalized_to_uuids() -> None:
    class Short(Storable, class_id="abcdef12"):
        pass

    class Dashed(Storable, class_id="12345678-1234-5678-1234-567812345678"):
        pass

    assert get_class_id(Short) == UUID("00000000-0000-0000-0000-0000abcdef12")
    assert get_class_id(Dashed) == UUID("12345678123456781234567812345678")
    assert get_class_id(Short()) == get_class_id(Short)
    assert storable_class_for_id(get_class_id(Short)) is Short


@pytest.mark.parametrize("bad", ["abc", "xyz12345", "0" * 33, "", 1234, "g" * 8])
def test_invalid_ids_say_what_to_use(bad: object) -> None:
    with pytest.raises(InvalidClassIdError, match="8 to 32 hexadecimal"):

        class Bad(Storable, class_id=bad):  # type: ignore[arg-type]
            pass


def test_missing_id_warns_with_a_deterministic_id() -> None:
    with pytest.warns(LakeryWarning, match="has no class_id") as caught:

        class Unpinned(StorableDataclass):
            pass

    derived = get_class_id(Unpinned).hex
    assert f"class_id={derived!r}" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the class statement
    with pytest.warns(LakeryWarning):

        class Unpinned(StorableDataclass):  # type: ignore[no-redef]  # same path, same id
            pass

    assert get_class_id(Unpinned).hex == derived


def test_placeholder_id_warns_with_a_suggestion() -> None:
    with pytest.warns(LakeryWarning, match=r"placeholder class_id '\.\.\.'.*Pin it"):

        class Placeholder(StorableDataclass, class_id="..."):
            pass


def test_ids_are_not_inherited_but_unpackers_are() -> None:
    class Base(StorableDataclass, class_id="c0000000000000000000000000000001"):
        pass

    with pytest.warns(LakeryWarning, match="Child has no class_id"):

        @dataclass
        class Child(Base):
            pass

    assert get_class_id(Child) != get_class_id(Base)
    assert get_unpacker(Child) is get_unpacker(StorableDataclass)


def test_reused_id_warns() -> None:
    class First(Storable, class_id="c0000000000000000000000000000002"):
        pass

    with pytest.warns(LakeryWarning, match="already used by"):

        class Second(Storable, class_id="c0000000000000000000000000000002"):
            pass


def test_pinned_ids_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Pinned(StorableValue, class_id="c0000000000000000000000000000003"):
            pass


def test_not_storable() -> None:
    with pytest.raises(StorableTypeError):
        get_class_id(int)  # type: ignore[arg-type]
    with pytest.raises(StorableTypeError):
        get_class_id(Storable)
