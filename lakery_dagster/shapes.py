"""Output values and their shapes: one storable, or a collection of storables.

An output is saved as one of three *layouts*, recorded in the materialization metadata
(``lakery/layout``) and in manifest tags so it loads back in the same shape:

- ``single``: one storable (a plain value is wrapped in `StorableValue`);
- ``mapping``: a non-empty mapping of str keys to storables, one manifest per item;
- ``list``: a non-empty list or tuple of storables, one manifest per item.

A tuple is saved as a list (plain values: one JSON list; storables: a ``list``
collection) whose manifests are tagged ``lakery/value_type: tuple``, so that it loads back
as a tuple whatever the input's annotation. Only the outermost tuple is restored: tuples
nested in a plain value (in a list or dict) come back as lists, as JSON has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from lakery.builtin import StorableValue
from lakery.common.exceptions import StorableTypeError
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.serializer import describe
from lakery.core.storable import Storable

__all__ = [
    "TUPLE",
    "VALUE_TYPE",
    "Entry",
    "Layout",
    "Shape",
    "Stored",
    "plan_value",
    "restore_type",
]

Kind = Literal["single", "mapping", "list"]

VALUE_TYPE = "lakery/value_type"
"""Manifest tag: the Python type an output had when it was saved as another (``tuple``)."""
TUPLE = "tuple"


@dataclass
class Entry:
    """One storable of a shape: its collection key ("" for a single value)."""

    key: str
    obj: Storable
    wrapped: bool = False


@dataclass
class Shape:
    """A value split into storables to save."""

    kind: Kind
    entries: list[Entry] = field(default_factory=list)
    value_type: str | None = None
    """``"tuple"`` for a tuple saved as a list (the `VALUE_TYPE` tag of its manifests)."""

    @property
    def plain_value(self) -> Any:
        """The value of a single wrapped (plain) value, else None."""
        if self.kind == "single" and self.entries and self.entries[0].wrapped:
            return getattr(self.entries[0].obj, "value", None)
        return None


@dataclass
class Layout:
    """A saved shape: collection keys to manifest ids, in order."""

    kind: Kind
    items: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": [list(item) for item in self.items]}

    @classmethod
    def from_json(cls, data: Any) -> Layout | None:
        """The layout in materialization metadata, or None when it is not lakery's."""
        data = getattr(data, "value", data)
        if not isinstance(data, Mapping) or data.get("kind") not in {"single", "mapping", "list"}:
            return None
        items = data.get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, list | tuple) and len(i) == 2 for i in items
        ):
            return None
        return cls(data["kind"], [(str(k), str(v)) for k, v in items])

    @property
    def manifest_ids(self) -> list[str]:
        return [manifest_id for _, manifest_id in self.items]


@dataclass(frozen=True)
class Stored:
    """A saved output of one partition: its layout and its records, in layout order."""

    layout: Layout
    records: tuple[ManifestRecord, ...]

    @property
    def items(self) -> list[tuple[str, ManifestRecord]]:
        """``(item key, record)`` pairs, as `content_digest` takes them."""
        pairs = zip(self.layout.items, self.records, strict=True)
        return [(key, record) for (key, _), record in pairs]


def plan_value(value: Any, registry: Registry, *, where: str) -> Shape:
    """Split an output value into storables, or explain how to make it storable.

    Raises:
        StorableTypeError: for a value that is neither a storable, a collection of
            storables, nor a plain value with a registered serializer.
    """
    if isinstance(value, Storable):
        return Shape("single", [Entry("", value)])
    if type(value) is tuple:  # not a NamedTuple: its field names would be lost
        shape = plan_value(list(value), registry, where=where)
        shape.value_type = TUPLE
        return shape
    if isinstance(value, Mapping) and value and _all_storable(value.values(), where):
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            msg = (
                f"{where} is a mapping of storables with keys {bad[:3]!r}; keys must be "
                "non-empty str (they become tags and come back as str)"
            )
            raise StorableTypeError(msg)
        return Shape("mapping", [Entry(k, v) for k, v in value.items()])
    if isinstance(value, list | tuple) and value and _all_storable(value, where):
        return Shape("list", [Entry(str(i), v) for i, v in enumerate(value)])
    return Shape("single", [Entry("", _wrap(value, registry, where), wrapped=True)])


def restore_type(value: Any, tags: Mapping[str, str]) -> Any:
    """`value` loaded from manifests with `tags`, as the type it was saved from."""
    if tags.get(VALUE_TYPE) == TUPLE and isinstance(value, list):
        return tuple(value)
    return value


def _all_storable(values: Any, where: str) -> bool:
    flags = [isinstance(v, Storable) for v in values]
    if all(flags):
        return True
    if any(flags):
        msg = (
            f"{where} mixes storables with plain values; return only storables (saved one "
            "manifest each) or only plain values (saved together as one JSON value)"
        )
        raise StorableTypeError(msg)
    return False


_HINTS = {
    library: f" (for {what} add {module!r}: pip install -e '/path/to/lakery[{extra}]')"
    for library, what, module, extra in [
        ("numpy", "numpy arrays", "lakery.extra.numpy", "numpy"),
        ("pyarrow", "pyarrow Tables and RecordBatches", "lakery.extra.arrow", "arrow"),
        ("pandas", "pandas DataFrames", "lakery.extra.pandas", "pandas"),
        ("polars", "polars DataFrames and LazyFrames", "lakery.extra.polars", "polars"),
    ]
}
"""What to add to `LakeryResource.registry_modules` for values of these libraries."""


def _wrap(value: Any, registry: Registry, where: str) -> StorableValue[Any]:
    if registry.find_serializer(type(value)) is not None:
        return StorableValue(value)
    hint = _HINTS.get(type(value).__module__.partition(".")[0], "")
    msg = (
        f"{where} is {describe(value)}, which lakery cannot store: no serializer in the "
        f"registry handles {type(value).__qualname__}. Return a storable instead (a "
        "StorableDataclass or StorableModel subclass, or StorableValue(value, serializer=...)),"
        " or add a module with a serializer for this type to "
        f"LakeryResource.registry_modules{hint}. lakery never pickles."
    )
    raise StorableTypeError(msg)
