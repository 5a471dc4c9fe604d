"""`StorableDataclass`: a dataclass saved one part per field.

```python
@dataclass
class ExperimentData(StorableDataclass):
    description: str
    parameters: dict[str, float]
```

Each field becomes a content part named after it, serialized by the serializer registered
for the field value's type (so a `dict` field is JSON and an `np.ndarray` field is `.npy`
when `lakery.extra.numpy` is registered). A field holding another dataclass is split the
same way, its parts named ``outer.inner``.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

from lakery.common.exceptions import SerializationError
from lakery.core.registry import Registry
from lakery.core.storable import Storable
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import Unpacker

__all__ = ["DataclassUnpacker", "StorableDataclass"]


class DataclassUnpacker(Unpacker["StorableDataclass"]):
    """One part per init field; nested dataclasses become ``outer.inner`` parts."""

    name = "lakery.dataclass@v1"

    def unpack(self, obj: StorableDataclass, registry: Registry) -> UnpackedContents:
        if not dataclasses.is_dataclass(obj):
            msg = (
                f"{type(obj).__qualname__} subclasses StorableDataclass but is not a "
                "dataclass; decorate it with @dataclass"
            )
            raise SerializationError(msg)
        contents: dict[str, UnpackedValue[Any]] = {}
        _unpack_fields(obj, "", contents)
        return contents

    def repack(
        self, cls: type[StorableDataclass], contents: Mapping[str, Any], registry: Registry
    ) -> StorableDataclass:
        return _build(cls, contents, "")


def _unpack_fields(obj: Any, prefix: str, contents: dict[str, UnpackedValue[Any]]) -> None:
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _unpack_fields(value, key + ".", contents)
        else:
            contents[key] = UnpackedValue(value)


def _build(cls: type[Any], contents: Mapping[str, Any], prefix: str) -> Any:
    if not dataclasses.is_dataclass(cls):
        msg = f"cannot rebuild nested fields under {prefix!r}: {cls!r} is not a dataclass"
        raise SerializationError(msg)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = prefix + f.name
        if key in contents:
            kwargs[f.name] = contents[key]
        elif any(k.startswith(key + ".") for k in contents):
            kwargs[f.name] = _build(_nested_class(cls, f), contents, key + ".")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            msg = (
                f"the record has no part {key!r} for the required field {cls.__qualname__}.{f.name}"
            )
            raise SerializationError(msg)
    return cls(**kwargs)


def _nested_class(cls: type[Any], f: dataclasses.Field[Any]) -> type[Any]:
    """The dataclass type of a field that held a dataclass when it was saved."""
    hint: Any = f.type
    if isinstance(hint, str):
        owner = next(k for k in cls.__mro__ if f.name in getattr(k, "__annotations__", {}))
        try:
            hint = eval(hint, vars(sys.modules[owner.__module__]), dict(vars(owner)))
        except Exception as exc:
            msg = (
                f"cannot resolve the annotation {f.type!r} of {cls.__qualname__}.{f.name}; "
                "define the nested dataclass at module level"
            )
            raise SerializationError(msg) from exc
    candidates = [hint] if isinstance(hint, type) else []
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(hint) if isinstance(a, type)]
    candidates = [c for c in candidates if dataclasses.is_dataclass(c)]
    if len(candidates) != 1:
        msg = (
            f"{cls.__qualname__}.{f.name} held a dataclass, but its annotation {hint!r} does "
            "not name exactly one dataclass type to rebuild it with"
        )
        raise SerializationError(msg)
    return candidates[0]


class StorableDataclass(
    Storable, class_id="0d5ea7c1a55e4b0c8f3e2d1c0b9a8f7e", unpacker=DataclassUnpacker()
):
    """Base for dataclass storables; decorate subclasses with `@dataclass`."""
