"""Unpackers split a storable into named content parts and rebuild it from them."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import TypeAlias
from typing import TypeVar

from lakery.core.component import Component

if TYPE_CHECKING:
    from lakery.core.registry import Registry
    from lakery.core.serializer import Serializer
    from lakery.core.serializer import StreamSerializer
    from lakery.core.storage import Storage

__all__ = ["UnpackedContents", "UnpackedValue", "UnpackedValueStream", "Unpacker"]

T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class UnpackedValue(Generic[T]):
    """One value of a storable, with how to serialize and where to store it.

    `serializer` and `storage` may be a component instance, a component class (resolved
    through the registry) or None (inferred from the value's type / the registry's
    default storage). `tags` land on the content record and are passed to the storage.
    """

    value: T
    serializer: Serializer[Any] | type[Serializer[Any]] | str | None = None
    storage: Storage | type[Storage] | str | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class UnpackedValueStream(Generic[T]):
    """An async stream of items of a storable, saved without holding it all in memory."""

    stream: AsyncIterable[T]
    serializer: StreamSerializer[Any] | type[StreamSerializer[Any]] | str | None = None
    storage: Storage | type[Storage] | str | None = None
    tags: Mapping[str, str] | None = None


UnpackedContents: TypeAlias = Mapping[str, UnpackedValue[Any] | UnpackedValueStream[Any]]
"""An unpacked storable: content key to part."""


class Unpacker(Component, abc.ABC, Generic[S]):
    """Splits storables of some class into content parts and rebuilds them.

    `unpack` returns `{content_key: UnpackedValue | UnpackedValueStream}`; `repack` gets
    `{content_key: value}` back, where a stream part is an async iterator of its items.
    Both are pure, synchronous and free of I/O.
    """

    @abc.abstractmethod
    def unpack(self, obj: S, registry: Registry) -> UnpackedContents:
        """Split `obj` into content parts."""

    @abc.abstractmethod
    def repack(self, cls: type[S], contents: Mapping[str, Any], registry: Registry) -> S:
        """Rebuild an instance of `cls` from its loaded content parts."""
