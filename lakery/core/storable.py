"""Storables: classes whose instances lakery can save, identified by a permanent class id.

```python
class Measurement(Storable, class_id="6c1f0b8e2d4a4f7e9b3c5d7e9f1a2b3c", unpacker=...):
    ...
```

The class id, not the import path, identifies the class in stored data, so a class can be
renamed or moved without losing what was saved. A class defined without a class id gets
one derived from its import path, with a warning that shows the id to pin. Class ids are
not inherited (each subclass is its own class); unpackers are.
"""

from __future__ import annotations

import hashlib
import re
import sys
import warnings
import weakref
from types import FrameType
from typing import Any
from typing import ClassVar
from uuid import UUID

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import InvalidClassIdError
from lakery.common.exceptions import LakeryWarning
from lakery.common.exceptions import StorableTypeError
from lakery.core.unpacker import Unpacker

__all__ = [
    "Storable",
    "get_class_id",
    "get_unpacker",
    "normalize_class_id",
    "storable_class_for_id",
]

_HEX_ID = re.compile(r"^[0-9a-fA-F]{8,32}$")
_PLACEHOLDER = "..."
_CLASSES_BY_ID: weakref.WeakValueDictionary[UUID, type[Storable]] = weakref.WeakValueDictionary()


def normalize_class_id(class_id: object, *, owner: str = "storable") -> UUID:
    """Turn 8-32 hex characters (dashes allowed, as in a UUID) into a UUID."""
    if isinstance(class_id, UUID):
        return class_id
    text = class_id.replace("-", "") if isinstance(class_id, str) else None
    if text is None or not _HEX_ID.match(text):
        msg = (
            f"{owner} has an invalid class_id {class_id!r}: use 8 to 32 hexadecimal "
            f"characters, e.g. class_id={_suggest_id(owner)!r}"
        )
        raise InvalidClassIdError(msg)
    return UUID(text.lower().zfill(32))


def _suggest_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:32]


class Storable:
    """Base class of every storable.

    Class keywords:
        class_id: 8-32 hex characters, permanent. Missing or ``"..."``: derived from the
            import path, with a `LakeryWarning` that shows the id to pin.
        unpacker: the `Unpacker` that splits instances into content parts; inherited.
    """

    __lakery_class_id__: ClassVar[UUID]
    __lakery_unpacker__: ClassVar[Unpacker[Any] | None] = None

    def __init_subclass__(
        cls,
        *,
        class_id: str | UUID | None = None,
        unpacker: Unpacker[Any] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init_subclass__(**kwargs)
        _register_class(cls, class_id)
        if unpacker is not None:
            if not isinstance(unpacker, Unpacker):
                msg = f"{cls.__qualname__}: unpacker must be an Unpacker instance, got {unpacker!r}"
                raise ConfigurationError(msg)
            cls.__lakery_unpacker__ = unpacker


def _register_class(cls: type[Storable], class_id: str | UUID | None) -> None:
    path = f"{cls.__module__}.{cls.__qualname__}"
    if class_id is None or class_id == _PLACEHOLDER:
        suggestion = _suggest_id(path)
        reason = "has no class_id" if class_id is None else "uses the placeholder class_id '...'"
        warnings.warn(
            f"Storable {path} {reason}; using {suggestion!r}, derived from its import path, "
            f"which changes if the class is renamed or moved. Pin it: "
            f"class {cls.__name__}(..., class_id={suggestion!r})",
            LakeryWarning,
            stacklevel=_caller_stacklevel(),
        )
        uuid = UUID(suggestion)
    else:
        uuid = normalize_class_id(class_id, owner=path)
    previous = _CLASSES_BY_ID.get(uuid)
    if previous is not None and _path(previous) != path:
        warnings.warn(
            f"class_id {uuid.hex!r} of {path} is already used by {_path(previous)}; "
            "give each storable class its own class_id",
            LakeryWarning,
            stacklevel=_caller_stacklevel(),
        )
    cls.__lakery_class_id__ = uuid
    _CLASSES_BY_ID[uuid] = cls


_FRAMEWORK_MODULES = ("lakery.", "pydantic.", "pydantic_core.", "abc", "typing", "dataclasses")


def _caller_stacklevel() -> int:
    """The stack level of the class statement, past lakery's and pydantic's own frames."""
    frame: FrameType | None = sys._getframe(1)  # the caller of warnings.warn is level 1
    level = 1
    while frame is not None and (frame.f_globals.get("__name__", "") + ".").startswith(
        _FRAMEWORK_MODULES
    ):
        frame = frame.f_back
        level += 1
    return level


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def get_class_id(cls: type[Storable] | Storable) -> UUID:
    """The class id of a storable class or instance."""
    klass = cls if isinstance(cls, type) else type(cls)
    if not (issubclass(klass, Storable) and "__lakery_class_id__" in klass.__dict__):
        msg = f"{klass.__qualname__} is not a storable class"
        raise StorableTypeError(msg)
    return klass.__lakery_class_id__


def get_unpacker(cls: type[Storable]) -> Unpacker[Any]:
    """The unpacker of a storable class (inherited from its bases)."""
    unpacker = cls.__lakery_unpacker__
    if unpacker is None:
        msg = (
            f"{cls.__qualname__} has no unpacker: subclass a concrete storable base "
            "(StorableValue, StorableDataclass, StorableModel, ...) or pass "
            "unpacker=... in the class statement"
        )
        raise ConfigurationError(msg)
    return unpacker


def storable_class_for_id(class_id: UUID) -> type[Storable] | None:
    """The most recently defined live storable class with this id, if any is imported."""
    return _CLASSES_BY_ID.get(class_id)
