"""Serializers turn values into bytes and back; stream serializers do it item by item.

Serializers are pure, synchronous and free of I/O: lakery runs them, hashes their
output and hands the bytes to a storage.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeAlias
from typing import TypeVar

from lakery.core.component import Component

__all__ = [
    "Buffer",
    "ColumnarSerializer",
    "SerializedValue",
    "Serializer",
    "StreamDecoder",
    "StreamEncoder",
    "StreamSerializer",
]

T = TypeVar("T")

Buffer: TypeAlias = bytes | bytearray | memoryview
"""A contiguous block of bytes."""

SerializedValue: TypeAlias = Buffer | Sequence[Buffer]
"""What `Serializer.serialize` returns: one buffer, or several written one after another
(so that e.g. an array's memory can be written without first copying it into one bytes)."""


class _BaseSerializer(Component, Generic[T]):
    types: ClassVar[tuple[type, ...]] = ()
    """Types this serializer is chosen for when a part names no serializer (MRO lookup)."""
    content_type: ClassVar[str] = "application/octet-stream"
    """MIME type of the bytes, recorded on the content record."""
    content_encoding: ClassVar[str | None] = None
    """Encoding of the bytes (e.g. "utf-8"), recorded on the content record."""


class Serializer(_BaseSerializer[T], abc.ABC):
    """Turns one value into bytes and back.

    Subclasses set `name`, `types`, `content_type` (and `content_encoding`) and implement
    `serialize` and `deserialize`. Raise `TypeError` or `ValueError` for values they cannot
    handle: lakery reports them as a `SerializationError` naming the serializer.
    """

    @abc.abstractmethod
    def serialize(self, value: T) -> SerializedValue:
        """Return the bytes of `value` (one buffer, or a sequence of buffers to concatenate)."""

    @abc.abstractmethod
    def deserialize(self, data: Buffer) -> T:
        """Rebuild the value from the bytes that `serialize` produced."""


class ColumnarSerializer(Serializer[T], abc.ABC):
    """A serializer of tables that can read back only some of their columns.

    `load_one(..., columns=[...])` and `Loader.load_soon(..., columns=[...])` use it for
    every part it wrote. Raise `KeyError` naming the missing columns (and the ones there
    are) when a requested column is not in the stored table.
    """

    @abc.abstractmethod
    def deserialize_columns(self, data: Buffer, columns: Sequence[str]) -> T:
        """Rebuild the value from `serialize`'s bytes with only `columns`, in that order."""

    reads_files: ClassVar[bool] = False
    """Whether `read_file` reads a whole value from a local file."""

    def read_file(self, path: str) -> T:
        """Read the whole value from a local file of `serialize`'s bytes (the loader checks
        the file's size and sha256 first). Only called when `reads_files` is true."""
        raise NotImplementedError

    def read_columns(self, path: str, columns: Sequence[str]) -> T | None:
        """Read only `columns` straight from a local file of `serialize`'s bytes.

        Return None (the default) when this format cannot read part of a file; the loader
        then reads the whole value and calls `deserialize_columns`.
        """
        return None


class StreamEncoder(abc.ABC, Generic[T]):
    """Encodes the items of one stream, in order."""

    @abc.abstractmethod
    def encode(self, item: T) -> Buffer:
        """Return the bytes for one item (may be empty)."""

    def finish(self) -> Buffer:
        """Return any bytes that close the stream."""
        return b""


class StreamDecoder(abc.ABC, Generic[T]):
    """Decodes the bytes of one stream, fed in chunks of any size."""

    @abc.abstractmethod
    def decode(self, chunk: Buffer) -> list[T]:
        """Take the next chunk and return the items it completed."""

    @abc.abstractmethod
    def finish(self) -> Iterable[T]:
        """Return the last items; raise `ValueError` if the bytes ended mid-item.

        A list, or a lazy iterable (e.g. a generator reading a spooled file), which the
        loader consumes item by item in a worker thread and closes when the reader stops.
        """


class StreamSerializer(_BaseSerializer[T], abc.ABC):
    """Turns an async stream of items into a stream of byte chunks and back.

    The decoder must accept the bytes re-chunked at any boundaries.
    """

    @abc.abstractmethod
    def encoder(self) -> StreamEncoder[T]:
        """Return a fresh encoder for one stream."""

    @abc.abstractmethod
    def decoder(self) -> StreamDecoder[T]:
        """Return a fresh decoder for one stream."""


UNUSABLE_VALUE_ERRORS = (TypeError, ValueError, RecursionError)
"""What a serializer raises for a value or data it cannot handle (RecursionError: a value
nested too deeply); lakery reports each as a `SerializationError`."""


def describe(value: Any) -> str:
    """A short description of a value for error messages."""
    try:
        text = repr(value)
    except RecursionError:
        text = "(nested too deeply to show)"
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__qualname__} {text}"
