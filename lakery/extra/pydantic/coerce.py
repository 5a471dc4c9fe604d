"""Array-like input for `np.ndarray` fields of a `StorableModel`.

Pydantic checks a field of a type it does not know (such as ``np.ndarray``) with
`isinstance` only. `StorableModel` runs the input of such fields through
`numpy.asarray` first when the field's annotation asks for an array, also inside
containers (``dict[str, np.ndarray]``, ``list[np.ndarray]``, ``tuple[np.ndarray, ...]``)
and optional fields, so that ``ExperimentData(results={"loss": [0.5, 0.4]})`` holds an
array. Ambiguous unions (``np.ndarray | list[float]``) are left to pydantic.
"""

from __future__ import annotations

import sys
import types
import typing
import weakref
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import MutableMapping
from collections.abc import MutableSequence
from collections.abc import Sequence
from typing import Any

__all__ = ["field_coercer"]

Coercer = Callable[[Any], Any]

_PLANS: weakref.WeakKeyDictionary[type, dict[str, Coercer | None]] = weakref.WeakKeyDictionary()
_SEQUENCES = (list, Sequence, MutableSequence)
_MAPPINGS = (dict, Mapping, MutableMapping)
_ARRAY_LIKE = (list, tuple, int, float, complex, bool)


def field_coercer(model: type[Any], field_name: str) -> Coercer | None:
    """The coercion for a field of `model`, or None when its annotation needs none."""
    plan = _PLANS.get(model)
    if plan is None:
        plan = _PLANS[model] = {}
    if field_name not in plan:
        field = model.model_fields.get(field_name)
        plan[field_name] = None if field is None else coercer_for(field.annotation)
    return plan[field_name]


def coercer_for(annotation: Any) -> Coercer | None:
    """A function that turns array-likes into arrays where `annotation` wants arrays."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None  # nobody can have annotated a field with numpy.ndarray
    return _coercer(annotation, numpy)


def _coercer(annotation: Any, numpy: Any) -> Coercer | None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _coercer(args[0], numpy)
    if annotation is numpy.ndarray or origin is numpy.ndarray:
        return _to_array
    if origin in (typing.Union, types.UnionType):
        return _union(args, numpy)
    if origin in _SEQUENCES and len(args) == 1:
        return _each(_coercer(args[0], numpy))
    if origin is tuple:
        return _tuple(args, numpy)
    if origin in _MAPPINGS and len(args) == 2:
        return _values(_coercer(args[1], numpy))
    return None


def _to_array(value: Any) -> Any:
    numpy = sys.modules["numpy"]
    if isinstance(value, numpy.ndarray) or not isinstance(value, (*_ARRAY_LIKE, numpy.generic)):
        return value  # arrays pass; anything else is for pydantic's isinstance check to refuse
    try:
        array = numpy.asarray(value)
    except (TypeError, ValueError) as exc:
        msg = f"cannot be converted to a numpy array: {exc}"
        raise ValueError(msg) from exc
    if array.dtype.hasobject:
        msg = "cannot be converted to a numpy array without Python objects (dtype object)"
        raise ValueError(msg)
    return array


def _union(args: tuple[Any, ...], numpy: Any) -> Coercer | None:
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1:
        return None
    inner = _coercer(others[0], numpy)
    if inner is None:
        return None
    return lambda value: value if value is None else inner(value)


def _each(inner: Coercer | None) -> Coercer | None:
    if inner is None:
        return None

    def coerce(value: Any) -> Any:
        if isinstance(value, list):
            return [inner(item) for item in value]
        if isinstance(value, tuple):
            return tuple(inner(item) for item in value)
        return value

    return coerce


def _tuple(args: tuple[Any, ...], numpy: Any) -> Coercer | None:
    if len(args) == 2 and args[1] is Ellipsis:
        return _each(_coercer(args[0], numpy))
    inners = [_coercer(arg, numpy) for arg in args]
    if all(inner is None for inner in inners):
        return None

    def coerce(value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(inners):
            return value
        items = [item if f is None else f(item) for f, item in zip(inners, value, strict=True)]
        return type(value)(items)

    return coerce


def _values(inner: Coercer | None) -> Coercer | None:
    if inner is None:
        return None

    def coerce(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: inner(item) for key, item in value.items()}
        return value

    return coerce
