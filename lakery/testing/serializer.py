"""Conformance suites for serializers and stream serializers, including third-party ones.

```python
class TestMySerializer(SerializerConformance):
    serializer = MySerializer()
    values = [value1, value2]
```
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import pytest

from lakery.core.component import check_component_name
from lakery.core.serializer import ColumnarSerializer
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer

__all__ = [
    "ColumnarSerializerConformance",
    "SerializerConformance",
    "StreamSerializerConformance",
]


def _join(serialized: Any) -> bytes:
    if isinstance(serialized, bytes | bytearray | memoryview):
        return bytes(serialized)
    return b"".join(bytes(buffer) for buffer in serialized)


class _Common:
    serializer: ClassVar[Serializer[Any] | StreamSerializer[Any]]

    def assert_equal(self, loaded: Any, original: Any) -> None:
        """Override for values that `==` cannot compare (e.g. arrays)."""
        assert loaded == original
        assert type(loaded) is type(original)

    def test_component_attributes(self) -> None:
        serializer = self.serializer
        check_component_name(serializer.name, owner=type(serializer).__qualname__)
        assert isinstance(serializer.content_type, str) and "/" in serializer.content_type
        assert isinstance(serializer.types, tuple)


class SerializerConformance(_Common):
    """Tests every value serializer must pass. Set `serializer` and `values`."""

    serializer: ClassVar[Serializer[Any]]
    values: ClassVar[Sequence[Any]] = ()

    def test_has_values(self) -> None:
        assert self.values, "give the suite some values to round-trip"

    def test_round_trip(self) -> None:
        for value in self.values:
            data = _join(self.serializer.serialize(value))
            self.assert_equal(self.serializer.deserialize(data), value)

    def test_deterministic(self) -> None:
        for value in self.values:
            assert _join(self.serializer.serialize(value)) == _join(
                self.serializer.serialize(value)
            )

    def test_reads_from_memoryview_and_bytearray(self) -> None:
        for value in self.values:
            data = _join(self.serializer.serialize(value))
            self.assert_equal(self.serializer.deserialize(memoryview(data)), value)
            self.assert_equal(self.serializer.deserialize(bytearray(data)), value)


class StreamSerializerConformance(_Common):
    """Tests every stream serializer must pass. Set `serializer` and `streams` (lists of
    items). The decoder must accept the bytes re-chunked at any boundary."""

    serializer: ClassVar[StreamSerializer[Any]]
    streams: ClassVar[Sequence[Sequence[Any]]] = ()

    def encode(self, items: Sequence[Any]) -> bytes:
        encoder = self.serializer.encoder()
        return b"".join([bytes(encoder.encode(item)) for item in items]) + bytes(encoder.finish())

    def decode(self, chunks: Sequence[bytes]) -> list[Any]:
        decoder = self.serializer.decoder()
        items: list[Any] = []
        for chunk in chunks:
            items.extend(decoder.decode(chunk))
        items.extend(decoder.finish())
        return items

    def assert_items(self, loaded: list[Any], original: Sequence[Any]) -> None:
        assert len(loaded) == len(original)
        for a, b in zip(loaded, original, strict=True):
            self.assert_equal(a, b)

    def test_has_streams(self) -> None:
        assert self.streams, "give the suite some streams to round-trip"

    def test_one_chunk(self) -> None:
        for items in self.streams:
            self.assert_items(self.decode([self.encode(items)]), items)

    def test_one_byte_chunks(self) -> None:
        for items in self.streams:
            data = self.encode(items)
            self.assert_items(self.decode([data[i : i + 1] for i in range(len(data))]), items)

    @pytest.mark.parametrize("seed", range(5))
    def test_random_chunks(self, seed: int) -> None:
        rng = random.Random(seed)
        for items in self.streams:
            data = self.encode(items)
            chunks, start = [], 0
            while start < len(data):
                size = rng.randint(0, 64)
                chunks.append(data[start : start + size])
                start += size
            self.assert_items(self.decode(chunks), items)

    def test_empty_stream(self) -> None:
        self.assert_items(self.decode([self.encode([])]), [])

    def test_truncated_stream_is_an_error(self) -> None:
        for items in self.streams:
            data = self.encode(items)
            if len(data) < 2:
                continue
            with pytest.raises(ValueError):
                self.decode([data[:-1]])


class ColumnarSerializerConformance(SerializerConformance):
    """`SerializerConformance` plus column subsets. Set `serializer`, `values`, and
    implement `select_columns(value, columns)` (the expected subset) and `column_names`."""

    serializer: ClassVar[ColumnarSerializer[Any]]

    def column_names(self, value: Any) -> list[str]:
        """The columns of a table value, in order."""
        raise NotImplementedError

    def select_columns(self, value: Any, columns: Sequence[str]) -> Any:
        """What loading only `columns` of `value` must give."""
        raise NotImplementedError

    def _cases(self) -> list[tuple[Any, list[str]]]:
        cases = []
        for value in self.values:
            names = self.column_names(value)
            if names:
                cases.append((value, list(reversed(names[:2]))))
        assert cases, "give the suite a value with at least one column"
        return cases

    def test_deserialize_columns(self) -> None:
        for value, columns in self._cases():
            data = _join(self.serializer.serialize(value))
            loaded = self.serializer.deserialize_columns(data, columns)
            self.assert_equal(loaded, self.select_columns(value, columns))

    def test_read_columns_from_a_file(self, tmp_path: Any) -> None:
        for index, (value, columns) in enumerate(self._cases()):
            path = tmp_path / f"blob{index}"
            path.write_bytes(_join(self.serializer.serialize(value)))
            loaded = self.serializer.read_columns(str(path), columns)
            if loaded is not None:
                self.assert_equal(loaded, self.select_columns(value, columns))

    def test_missing_column_is_a_key_error(self) -> None:
        for value, _ in self._cases():
            data = _join(self.serializer.serialize(value))
            with pytest.raises(KeyError):
                self.serializer.deserialize_columns(data, ["no such column, surely"])
