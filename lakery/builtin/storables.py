"""`StorableValue` and `StorableStream`: wrap one value or one async stream."""

from __future__ import annotations

from collections.abc import AsyncIterable
from collections.abc import AsyncIterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Generic
from typing import TypeVar

from lakery.core.registry import Registry
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer
from lakery.core.storable import Storable
from lakery.core.storage import Storage
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import UnpackedValueStream
from lakery.core.unpacker import Unpacker

__all__ = ["StorableStream", "StorableValue", "StreamUnpacker", "ValueUnpacker"]

T = TypeVar("T")


class ValueUnpacker(Unpacker["StorableValue[Any]"]):
    """One part, ``"value"``."""

    name = "lakery.value@v1"

    def unpack(self, obj: StorableValue[Any], registry: Registry) -> UnpackedContents:
        return {"value": UnpackedValue(obj.value, obj.serializer, obj.storage, obj.tags)}

    def repack(
        self, cls: type[StorableValue[Any]], contents: Mapping[str, Any], registry: Registry
    ) -> StorableValue[Any]:
        return cls(contents["value"])


class StreamUnpacker(Unpacker["StorableStream[Any]"]):
    """One stream part, ``"stream"``."""

    name = "lakery.stream@v1"

    def unpack(self, obj: StorableStream[Any], registry: Registry) -> UnpackedContents:
        return {"stream": UnpackedValueStream(obj.stream, obj.serializer, obj.storage, obj.tags)}

    def repack(
        self, cls: type[StorableStream[Any]], contents: Mapping[str, Any], registry: Registry
    ) -> StorableStream[Any]:
        return cls(contents["stream"])


@dataclass(frozen=True)
class StorableValue(
    Storable,
    Generic[T],
    class_id="c4a1d2b3e5f60718293a4b5c6d7e8f90",
    unpacker=ValueUnpacker(),
):
    """One value saved as one part, e.g. ``StorableValue({"a": 1})``.

    The serializer is chosen by the value's type unless one is given; `storage` and
    `tags` (content tags) are optional. Only `value` is compared and restored on load.
    """

    value: T
    serializer: Serializer[Any] | type[Serializer[Any]] | str | None = field(
        default=None, compare=False, kw_only=True
    )
    storage: Storage | type[Storage] | str | None = field(default=None, compare=False, kw_only=True)
    tags: Mapping[str, str] | None = field(default=None, compare=False, kw_only=True)


@dataclass(frozen=True, eq=False)
class StorableStream(
    Storable,
    Generic[T],
    class_id="5e0b9c8d7a6f41e2b3c4d5e6f7a8b9c0",
    unpacker=StreamUnpacker(),
):
    """An async stream of items saved as one stream part, without holding it in memory.

    Loaded back, `stream` is an async iterator that reads (and at its end verifies) the
    stored bytes as it is consumed; iterate it once.
    """

    stream: AsyncIterable[T]
    serializer: StreamSerializer[Any] | type[StreamSerializer[Any]] | str | None = field(
        default=None, kw_only=True
    )
    storage: Storage | type[Storage] | str | None = field(default=None, kw_only=True)
    tags: Mapping[str, str] | None = field(default=None, kw_only=True)

    def __aiter__(self) -> AsyncIterator[T]:
        return aiter(self.stream)
