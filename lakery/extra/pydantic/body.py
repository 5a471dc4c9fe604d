"""The JSON body of a `StorableModel` and the parts split off from it.

A model is dumped by pydantic (python mode, so values keep their types) and walked here:
what JSON can hold stays in the body; everything else (arrays, bytes, async streams,
values under a `ContentSpec`) is replaced by ``null`` and listed in the body's ``refs``
with where it went:

```json
{"data": {"name": "run 1", "weights": null, "bias": null},
 "refs": [{"path": ["weights"], "key": "/weights"},
          {"path": ["bias"], "serializer": "lakery.numpy.npy@v1", "base64": "k05VTVBZ..."}]}
```

A ref names the content part that holds the value (its key is the JSON pointer of the
value in the model), or, for a small value, carries the serialized bytes inline. A ref with
``"body": true`` names a part that is itself such a document (the JSON of a container under
a `ContentSpec`, kept in that spec's storage). Refs name their place by path, so no value
in the data can be mistaken for one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import AsyncIterable
from collections.abc import Mapping
from typing import Any

import pydantic_core

from lakery.common.exceptions import SerializationError
from lakery.core.registry import Registry
from lakery.core.serializer import Buffer
from lakery.core.serializer import Serializer
from lakery.core.serializer import describe
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import UnpackedValueStream
from lakery.extra.pydantic.spec import ContentSpec
from lakery.extra.pydantic.spec import SpecValue

__all__ = [
    "BODY_KEY",
    "BodyBuilder",
    "BodyDocument",
    "ModelJsonSerializer",
    "json_pointer",
    "restore",
]

BODY_KEY = "model"
"""Content key of a model's JSON body."""

Path = list[str | int]
Part = UnpackedValue[Any] | UnpackedValueStream[Any]

_MAX_KEY = 1000
_JSON_SCALARS = (str, int, float, bool)
_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types whose values are JSON as they are (exactly these types, not subclasses)."""
_CONTAINERS = (dict, list, tuple, set, frozenset)


class ModelJsonSerializer(Serializer[Any]):
    """The JSON documents of `StorableModel` bodies (UTF-8; NaN and infinities allowed).

    Not chosen by type: `ModelUnpacker` names it for the parts it writes. The bodies it
    builds hold JSON values only and are encoded by pydantic-core; any other value is
    encoded by the standard library, which refuses what JSON cannot hold.
    """

    name = "lakery.pydantic.json@v1"
    content_type = "application/json"
    content_encoding = "utf-8"

    def serialize(self, value: Any) -> bytes:
        if type(value) is BodyDocument:  # its errors are ValueErrors too
            return pydantic_core.to_json(value, inf_nan_mode="constants")
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def deserialize(self, data: Buffer) -> Any:
        if type(data) is not bytes and type(data) is not bytearray:
            data = bytes(data)
        try:
            return pydantic_core.from_json(data)
        except ValueError:
            # What the fast parser refuses (very deep nesting, lone surrogates, other
            # encodings) the standard library may still read, or explain.
            return json.loads(data)


class BodyDocument(dict[str, Any]):
    """A model body built by `BodyBuilder`: ``{"data": ..., "refs": [...]}`` made of JSON
    values only (str keys; str, int, float, bool, None, lists and dicts)."""


class BodyBuilder:
    """Walks a model dump into a JSON document plus the parts split off from it.

    Args:
        registry: used to pick serializers for values small enough to inline.
        owner: the model class, for error messages.
        inline_limit: values with a known size up to this many bytes that are not under a
            `ContentSpec` are serialized into the body instead of becoming parts.
    """

    def __init__(self, registry: Registry, owner: type, *, inline_limit: int) -> None:
        self.registry = registry
        self.owner = owner
        self.inline_limit = inline_limit
        self.parts: dict[str, Part] = {}

    def document(self, value: Any, *, at: Path, spec: ContentSpec | None) -> BodyDocument:
        """The ``{"data": ..., "refs": [...]}`` document of `value`, found at path `at`."""
        refs: list[dict[str, Any]] = []
        data = self._walk(value, at, [], refs, spec)
        return BodyDocument(data=data, refs=refs)

    def _walk(
        self, value: Any, at: Path, path: Path, refs: list[dict[str, Any]], spec: ContentSpec | None
    ) -> Any:
        """The JSON of `value`, found at `at + path`.

        `path` is a stack that the walk pushes to and pops from: whatever keeps a path
        takes a copy (`_walk_other` is given one).
        """
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is dict:
            return self._walk_dict(value, at, path, refs, spec)
        if kind is list or kind is tuple:
            return self._walk_items(value, at, path, refs, spec)
        return self._walk_other(value, at, list(path), refs, spec)

    def _walk_dict(
        self,
        value: dict[Any, Any],
        at: Path,
        path: Path,
        refs: list[dict[str, Any]],
        spec: ContentSpec | None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        converted = False  # str keys of one dict cannot clash until a key is converted
        for key, item in value.items():
            if type(key) is str:
                name = key
            else:
                name = _json_key(key, self.owner, at + path)
                converted = True
            if converted and name in result:
                msg = (
                    f"{self.owner.__qualname__} at {json_pointer(at + path)!r}: the dict "
                    f"keys {key!r} and {name!r} are the same JSON key"
                )
                raise SerializationError(msg)
            if type(item) in _PLAIN:
                result[name] = item
            else:
                path.append(name)
                result[name] = self._walk(item, at, path, refs, spec)
                path.pop()
        return result

    def _walk_items(
        self, value: Any, at: Path, path: Path, refs: list[dict[str, Any]], spec: ContentSpec | None
    ) -> list[Any]:
        result = []
        for index, item in enumerate(value):
            if type(item) in _PLAIN:
                result.append(item)
            else:
                path.append(index)
                result.append(self._walk(item, at, path, refs, spec))
                path.pop()
        return result

    def _walk_other(
        self, value: Any, at: Path, path: Path, refs: list[dict[str, Any]], spec: ContentSpec | None
    ) -> Any:
        if isinstance(value, SpecValue):
            self._spec_part(value.value, value.spec.merged_into(spec), at, path, refs)
            return None
        if value is None or isinstance(value, _JSON_SCALARS):
            return value
        if isinstance(value, dict):
            return self._walk_dict(value, at, path, refs, spec)
        if isinstance(value, list | tuple):
            return self._walk_items(value, at, path, refs, spec)
        if isinstance(value, set | frozenset):
            return self._walk_items(_ordered(value), at, path, refs, spec)
        if isinstance(value, AsyncIterable):
            self._add(at + path, _stream_part(value, spec), refs, path)
            return None
        if _is_numpy_scalar(value):
            return self._walk(value.item(), at, path, refs, spec)  # kept by value
        if not isinstance(value, bytes | bytearray | memoryview):
            try:
                return pydantic_core.to_jsonable_python(value)
            except pydantic_core.PydanticSerializationError:
                pass  # not JSON: a part of its own
        if spec is None and self._inline(value, path, refs, at):
            return None
        self._add(at + path, _value_part(value, spec), refs, path)
        return None

    def _spec_part(
        self, value: Any, spec: ContentSpec, at: Path, path: Path, refs: list[dict[str, Any]]
    ) -> None:
        where = at + path
        if spec.serializer is not None or isinstance(value, AsyncIterable):
            if spec.is_stream_serializer() or isinstance(value, AsyncIterable):
                self._add(where, _stream_part(value, spec), refs, path)
            else:
                self._add(where, _value_part(value, spec), refs, path)
            return
        if _is_numpy_scalar(value):
            value = value.item()
        if not isinstance(value, _CONTAINERS + _JSON_SCALARS):
            if self.registry.find_serializer(type(value)) is not None:
                self._add(where, _value_part(value, spec), refs, path)
                return
            try:
                value = pydantic_core.to_jsonable_python(value)
            except pydantic_core.PydanticSerializationError:
                self._add(where, _value_part(value, spec), refs, path)  # the saver says why
                return
        document = self.document(value, at=where, spec=spec)
        part = UnpackedValue(
            document, serializer=ModelJsonSerializer.name, storage=spec.storage, tags=spec.tags
        )
        self._add(where, part, refs, path, body=True)

    def _inline(self, value: Any, path: Path, refs: list[dict[str, Any]], at: Path) -> bool:
        size = _known_size(value)
        if size is None or size > self.inline_limit:
            return False
        serializer = self.registry.find_serializer(type(value))
        if serializer is None:
            return False  # the saver explains which module to add
        data = _serialize(serializer, value, self.owner, at + path)
        text = base64.b64encode(data).decode("ascii")
        refs.append({"path": path, "serializer": serializer.name, "base64": text})
        return True

    def _add(
        self,
        where: Path,
        part: Part,
        refs: list[dict[str, Any]],
        path: Path,
        *,
        body: bool = False,
    ) -> None:
        key = self._key(where)
        self.parts[key] = part
        ref: dict[str, Any] = {"path": path, "key": key}
        if body:
            ref["body"] = True
        refs.append(ref)

    def _key(self, where: Path) -> str:
        """The JSON pointer of `where`, shortened with a hash when very long."""
        pointer = json_pointer(where)
        if len(pointer) > _MAX_KEY:
            digest = hashlib.sha256(pointer.encode()).hexdigest()[:16]
            pointer = f"{pointer[: _MAX_KEY - 40]}...#{digest}"
        return pointer


def json_pointer(path: Path) -> str:
    """The JSON pointer (RFC 6901) of a path, e.g. ``["a/b", 0]`` is ``"/a~1b/0"``."""
    return "".join("/" + str(step).replace("~", "~0").replace("/", "~1") for step in path)


def restore(document: Any, contents: Mapping[str, Any], registry: Registry, owner: type) -> Any:
    """Put the split-off values back into a body document; return its data."""
    if not (isinstance(document, dict) and "data" in document and "refs" in document):
        msg = f"the stored body of {owner.__qualname__} is not a lakery model document"
        raise SerializationError(msg)
    data = document["data"]
    for ref in document["refs"]:
        path = ref["path"]
        if "key" in ref:
            if ref["key"] not in contents:
                msg = f"the record of {owner.__qualname__} has no part {ref['key']!r}"
                raise SerializationError(msg)
            value = contents[ref["key"]]
            if ref.get("body"):
                value = restore(value, contents, registry, owner)
        else:
            serializer = registry.get_serializer(ref["serializer"])
            value = serializer.deserialize(bytearray(base64.b64decode(ref["base64"])))
        data = _put(data, path, value)
    return data


def _put(data: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


def _value_part(value: Any, spec: ContentSpec | None) -> UnpackedValue[Any]:
    if spec is None:
        return UnpackedValue(value)
    return UnpackedValue(value, spec.serializer, spec.storage, spec.tags)  # type: ignore[arg-type]


def _stream_part(value: Any, spec: ContentSpec | None) -> UnpackedValueStream[Any]:
    if spec is None:
        return UnpackedValueStream(value)
    return UnpackedValueStream(value, spec.serializer, spec.storage, spec.tags)  # type: ignore[arg-type]


def _is_numpy_scalar(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic)


def _known_size(value: Any) -> int | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return memoryview(value).nbytes
    size = getattr(value, "nbytes", None)
    return size if isinstance(size, int) else None


def _serialize(serializer: Serializer[Any], value: Any, owner: type, where: Path) -> bytes:
    try:
        serialized = serializer.serialize(value)
    except (TypeError, ValueError) as exc:
        msg = (
            f"{owner.__qualname__} part {json_pointer(where)!r}: serializer {serializer.name!r} "
            f"cannot serialize {describe(value)}: {exc}"
        )
        raise SerializationError(msg, serializer=serializer.name) from exc
    if isinstance(serialized, bytes | bytearray | memoryview):
        return bytes(serialized)
    return b"".join(bytes(buffer) for buffer in serialized)


def _json_key(key: Any, owner: type, where: Path) -> str:
    if isinstance(key, str):
        return key
    try:
        converted = pydantic_core.to_jsonable_python({key: None})
    except pydantic_core.PydanticSerializationError as exc:
        msg = f"{owner.__qualname__} at {json_pointer(where)!r}: dict key {key!r} is not JSON-able"
        raise SerializationError(msg) from exc
    return next(iter(converted))


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    """Set items in a stable order (sorted when they can be), so equal sets dump equally."""
    try:
        return sorted(items)
    except TypeError:
        return list(items)
