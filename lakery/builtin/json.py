"""JSON values and JSON Lines streams.

Strict standard JSON: writing refuses NaN and infinities (no JSON parser must accept
them) and dict keys that are not str; reading refuses an object with a duplicate key
(lakery never writes one). Reading still accepts the NaN/Infinity tokens that lakery
0.1.0 wrote before it refused them, so data stored then stays readable.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from lakery.core.serializer import Buffer
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamDecoder
from lakery.core.serializer import StreamEncoder
from lakery.core.serializer import StreamSerializer

__all__ = ["JsonSerializer", "JsonStreamSerializer"]

JsonType = dict[str, Any] | list[Any] | str | int | float | bool | None

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        twice = sorted(key for key, count in counts.items() if count > 1)
        msg = f"the JSON object has duplicate keys {twice!r}"
        raise ValueError(msg)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def _dumps(value: Any) -> str:
    _check_keys(value)
    try:
        return _ENCODER.encode(value)
    except ValueError as exc:
        if "JSON compliant" not in str(exc):
            raise
        msg = (
            "NaN and infinite floats are not JSON: replace them (e.g. with None), or store "
            "the numbers as a numpy array or in a pydantic model"
        )
        raise ValueError(msg) from exc


def _loads(data: bytes | str) -> Any:
    return _DECODER.decode(data if isinstance(data, str) else data.decode())


def _check_keys(value: Any) -> None:
    """Reject dict keys that JSON would silently turn into strings."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    msg = f"JSON object keys must be str, got {type(key).__name__} {key!r}"
                    raise TypeError(msg)
                if isinstance(child, dict | list | tuple):
                    stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(child for child in item if isinstance(child, dict | list | tuple))


class JsonSerializer(Serializer[JsonType]):
    """A JSON document (UTF-8). Tuples come back as lists; dict keys must be str; NaN and
    infinities are refused (see the module docstring)."""

    name = "lakery.json.value@v1"
    types = (dict, list, str, int, float, bool, type(None))
    content_type = "application/json"
    content_encoding = "utf-8"

    def serialize(self, value: JsonType) -> bytes:
        return _dumps(value).encode()

    def deserialize(self, data: Buffer) -> JsonType:
        return _loads(bytes(data))


class _JsonLinesEncoder(StreamEncoder[Any]):
    def encode(self, item: Any) -> bytes:
        return (_dumps(item) + "\n").encode()


class _JsonLinesDecoder(StreamDecoder[Any]):
    def __init__(self) -> None:
        self._rest = b""

    def decode(self, chunk: Buffer) -> list[Any]:
        data = self._rest + bytes(chunk)
        *lines, self._rest = data.split(b"\n")
        return [_loads(line) for line in lines if line]

    def finish(self) -> list[Any]:
        if self._rest.strip():
            msg = "the JSON Lines stream ended in the middle of an item"
            raise ValueError(msg)
        return []


class JsonStreamSerializer(StreamSerializer[Any]):
    """A stream of JSON values, one per line (JSON Lines)."""

    name = "lakery.json.stream@v1"
    types = (dict, list, str, int, float, bool, type(None))
    content_type = "application/x-ndjson"
    content_encoding = "utf-8"

    def encoder(self) -> StreamEncoder[Any]:
        return _JsonLinesEncoder()

    def decoder(self) -> StreamDecoder[Any]:
        return _JsonLinesDecoder()
