"""`StorableModel`: a pydantic v2 model that lakery can save and load.

```python
class ExperimentData(StorableModel, class_id="2f0c...", frozen=True):
    description: str
    results: dict[str, np.ndarray]
```

Class keywords `class_id` and `unpacker` go to lakery (see `Storable`); all others are
pydantic config (``frozen=True``, ``extra="forbid"``, ...). Fields may be of any type,
including types pydantic does not know (they are checked with `isinstance`), as long as the
registry has a serializer for their values when saving.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import typing
from contextvars import ContextVar
from typing import Any
from typing import ClassVar
from typing import ForwardRef

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationInfo
from pydantic import field_validator

from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.extra.pydantic.coerce import coercer_for
from lakery.extra.pydantic.coerce import field_coercer
from lakery.extra.pydantic.unpacker import ModelUnpacker

__all__ = ["StorableModel"]

_PARAMETRIZING: ContextVar[type | None] = ContextVar("lakery_parametrizing", default=None)
"""The generic model being parametrized (``Box`` while pydantic makes ``Box[int]``)."""


class StorableModel(
    BaseModel,
    Storable,
    class_id="7d3f2b1a9c8e4d6f8a0b1c2d3e4f5a6b",
    unpacker=ModelUnpacker(),
):
    """Base class of pydantic models that lakery stores.

    Each field is validated by pydantic; types that pydantic does not know (``np.ndarray``,
    your own classes) are allowed and checked with `isinstance`, and ``np.ndarray`` fields
    also accept array-likes (lists, tuples, scalars), converted with `numpy.asarray`.

    Saved, the model is one JSON document plus a content part for each value JSON cannot
    hold (see `ModelUnpacker`); use `ContentSpec` to pick a value's serializer, storage and
    content tags. Loaded, the data is validated again, so the model's validators run.

    Models compare equal when their fields are equal, with arrays compared by shape and
    value (pydantic's own ``==`` cannot compare arrays). A parametrized generic model such
    as ``Box[int]`` shares the class id of ``Box``.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(arbitrary_types_allowed=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        origin = _PARAMETRIZING.get()
        if origin is None or cls.__bases__ != (origin,):
            super().__init_subclass__(**kwargs)  # Storable takes class_id and unpacker
        else:
            # Box[int], made by pydantic from Box: the same stored class as Box.
            super(Storable, cls).__init_subclass__(**kwargs)
            cls.__lakery_class_id__ = get_class_id(origin)
        # A parametrized model (Box[np.ndarray]) may hold arrays wherever a type
        # parameter was: it checks every field.
        _coerce_arrays_in(cls, ["*"] if origin is not None else _fields_to_coerce(cls))

    def __class_getitem__(cls, params: Any) -> Any:
        origin = cls.__pydantic_generic_metadata__["origin"] or cls
        token = _PARAMETRIZING.set(origin)
        try:
            return super().__class_getitem__(params)
        finally:
            _PARAMETRIZING.reset(token)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseModel):
            return NotImplemented
        return _models_equal(self, other)


_validator_names = itertools.count()


def _coerce_array_input(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    if info.field_name is None:
        return value
    coerce = field_coercer(cls, info.field_name)
    return value if coerce is None else coerce(value)


def _coerce_arrays_in(cls: type[BaseModel], fields: list[str]) -> None:
    """Give `cls` a "before" validator that turns array-likes into arrays in `fields`.

    Called while the class is being created, before pydantic collects its validators.
    Only fields that may want arrays get it, so that validating other models (every load)
    does not call into Python once per field.
    """
    if fields:
        validator = field_validator(*fields, mode="before", check_fields=False)
        name = f"_lakery_coerce_arrays_{next(_validator_names)}"
        setattr(cls, name, validator(classmethod(_coerce_array_input)))


def _fields_to_coerce(cls: type) -> list[str]:
    """The fields annotated in `cls` (or in a base that is not a `StorableModel`, whose
    validators are its own) whose annotation asks for arrays or cannot be resolved yet."""
    names: dict[str, None] = {}
    covered = {BaseModel, Storable, object}  # and what storable bases took care of
    for base in cls.__mro__[1:]:
        if issubclass(base, StorableModel):
            covered.update(base.__mro__)
    for klass in cls.__mro__:
        if klass in covered:
            continue
        annotations = inspect.get_annotations(klass)
        if not annotations:
            continue
        module = sys.modules.get(klass.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        namespace.update(vars(klass))
        for name, annotation in annotations.items():
            if not name.startswith("_") and _may_want_arrays(annotation, namespace):
                names[name] = None
    return list(names)


def _may_want_arrays(annotation: Any, namespace: dict[str, Any]) -> bool:
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, namespace)  # as pydantic does
        except Exception:
            return True  # a forward reference: decided when validating
    return coercer_for(annotation) is not None or _unresolved(annotation)


def _unresolved(annotation: Any) -> bool:
    if isinstance(annotation, str | ForwardRef):
        return True
    return any(_unresolved(arg) for arg in typing.get_args(annotation))


def _origin(model: BaseModel) -> type:
    return model.__pydantic_generic_metadata__["origin"] or type(model)


def _models_equal(a: BaseModel, b: BaseModel) -> bool:
    if _origin(a) is not _origin(b):
        return False
    fields = type(a).model_fields
    return (
        all(_equal(getattr(a, name), getattr(b, name)) for name in fields)
        and _equal(a.__pydantic_extra__, b.__pydantic_extra__)
        and _equal(
            getattr(a, "__pydantic_private__", None), getattr(b, "__pydantic_private__", None)
        )
    )


def _equal(a: Any, b: Any) -> bool:
    """`==` that also compares arrays (by shape and value) at any depth."""
    if a is b:
        return True
    if isinstance(a, BaseModel) and isinstance(b, BaseModel):
        return _models_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            isinstance(a, list) == isinstance(b, list)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    numpy = sys.modules.get("numpy")
    if numpy is not None and (isinstance(a, numpy.ndarray) or isinstance(b, numpy.ndarray)):
        if not (isinstance(a, numpy.ndarray) and isinstance(b, numpy.ndarray)):
            return False
        return a.shape == b.shape and bool(numpy.all(a == b))
    result = a == b
    if isinstance(result, bool):
        return result
    try:
        return bool(result)
    except ValueError:  # an array-like result with many elements
        return bool(getattr(result, "all", lambda: False)())
