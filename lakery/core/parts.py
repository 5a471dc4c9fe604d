"""Turning unpacked contents into serialized parts ready to be written."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import AsyncIterable
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeVar

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotRegisteredError
from lakery.common.exceptions import SerializationError
from lakery.common.tags import validate_tags
from lakery.core.component import Component
from lakery.core.registry import Registry
from lakery.core.serializer import UNUSABLE_VALUE_ERRORS
from lakery.core.serializer import Buffer
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer
from lakery.core.serializer import describe
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.core.storage import hash_buffers
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import UnpackedValueStream

__all__ = ["Part", "Resolver", "StreamPart", "ValuePart", "prepare_parts"]

C = TypeVar("C", bound=Component)


@dataclass(slots=True)
class ValuePart:
    """A serialized value, hashed, waiting to be written (then: where it was written)."""

    key: str
    serializer: Serializer[Any]
    storage: Storage
    tags: dict[str, str]
    buffers: Sequence[Buffer]
    size: int
    sha256: str
    locator: Locator | None = None
    serializer_type: ClassVar[str] = "value"


@dataclass(slots=True)
class StreamPart:
    """A stream to be serialized, hashed and written item by item (then: where it was)."""

    key: str
    serializer: StreamSerializer[Any] | None
    storage: Storage
    tags: dict[str, str]
    stream: AsyncIterator[Any]
    registry: Registry
    size: int = -1
    sha256: str = ""
    locator: Locator | None = None
    serializer_type: ClassVar[str] = "stream"

    async def write(self, *, tags: Mapping[str, str]) -> Locator:
        """Encode, hash and write the stream; afterwards `size` and `sha256` are set."""
        if self.serializer is None:
            self.serializer, self.stream = await _pick_stream_serializer(
                self.stream, self.registry, self.key
            )
        hashing = HashingStream(_encode(self.stream, self.serializer))
        locator = await self.storage.put_stream(hashing, tags=tags)
        self.size, self.sha256 = hashing.size, hashing.sha256
        return locator


Part = ValuePart | StreamPart


class Resolver:
    """Components for the parts of many objects, looked up once per spec and value type.

    A saver keeps one for all the objects it saves (its registry does not change meanwhile).
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # Each kind's answers, by spec (see `_resolve_cached`), and serializers by type.
        self._storages: _Found[Storage] = {}
        self._serializers: _Found[Serializer[Any]] = {}
        self._stream_serializers: _Found[StreamSerializer[Any]] = {}
        self._by_type: dict[type, Serializer[Any] | None] = {}

    def storage(self, spec: object, where: _Where) -> Storage | None:
        """A storage from an instance, a class (looked up in the registry) or a name."""
        return self._resolve_cached(self._storages, _STORAGE, spec, where)

    def serializer(self, spec: object, where: _Where) -> Serializer[Any] | None:
        """A value serializer from an instance, a class or a name."""
        return self._resolve_cached(self._serializers, _SERIALIZER, spec, where)

    def stream_serializer(self, spec: object, where: _Where) -> StreamSerializer[Any] | None:
        """A stream serializer from an instance, a class or a name."""
        return self._resolve_cached(self._stream_serializers, _STREAM_SERIALIZER, spec, where)

    def _resolve_cached(
        self, found: _Found[C], kind: _Kind[C], spec: object, where: _Where
    ) -> C | None:
        if spec is None:
            return None
        # Names and classes by value; anything else by identity (the cache keeps it alive,
        # so its id is not reused meanwhile).
        key = spec if type(spec) is str or isinstance(spec, type) else id(spec)
        hit = found.get(key)
        if hit is None or (type(key) is int and hit[0] is not spec):
            hit = found[key] = (spec, _resolve(spec, kind, self.registry, str(where)))
        return hit[1]

    def serializer_for(self, value_type: type) -> Serializer[Any] | None:
        try:
            return self._by_type[value_type]
        except KeyError:
            found = self._by_type[value_type] = self.registry.find_serializer(value_type)
            return found

    def default_storage(self, where: _Where) -> Storage:
        storage = self.registry.default_storage
        if storage is None:
            msg = (
                f"{where} names no storage and the registry has no default; pass "
                "Registry(default_storage=...) or add 'lakery.builtin' to its modules"
            )
            raise ConfigurationError(msg)
        return storage


_Found = dict[object, tuple[object, C | None]]
"""A resolver's answers for one kind: (the spec, its component) by name, class or id."""


@dataclass(frozen=True, slots=True, eq=False)
class _Kind(Generic[C]):
    """A kind of component that a part may name, and how the registry finds one."""

    base: type[C]
    by_name: Callable[[Registry, str], C]
    registered: Callable[[Registry], Mapping[str, C]]


_STORAGE = _Kind(Storage, Registry.get_storage, lambda registry: registry.storages)
_SERIALIZER = _Kind(Serializer, Registry.get_serializer, lambda r: r.serializers)
_STREAM_SERIALIZER = _Kind(
    StreamSerializer, Registry.get_stream_serializer, lambda r: r.stream_serializers
)


class _Where:
    """`Owner part 'key'` for error messages, formatted only when one is raised."""

    __slots__ = ("key", "owner")

    def __init__(self, owner: type, key: str) -> None:
        self.owner = owner
        self.key = key

    def __str__(self) -> str:
        return f"{self.owner.__qualname__} part {self.key!r}"


def prepare_parts(
    contents: Mapping[str, Any],
    registry: Registry,
    *,
    owner: type,
    resolver: Resolver | None = None,
) -> list[Part]:
    """Resolve components for each unpacked part and serialize the values.

    Synchronous and CPU-bound: the saver runs it in a worker thread. A `resolver` shared
    by many calls saves looking the same components up again and again.
    """
    if type(contents) is not dict and not isinstance(contents, Mapping):
        got = type(contents).__name__
        msg = f"the unpacker of {owner.__qualname__} returned {got}, not a mapping"
        raise SerializationError(msg)
    if resolver is None:
        resolver = Resolver(registry)
    parts: list[Part] = []
    for key, unpacked in contents.items():
        if type(key) is not str or not key or len(key) > 1024:
            msg = f"{owner.__qualname__}: content keys must be non-empty str (≤1024), got {key!r}"
            raise SerializationError(msg)
        where = _Where(owner, key)
        tags = (
            {}
            if unpacked.tags is None
            else validate_tags(unpacked.tags, what=f"content tags of {where}")
        )
        storage = resolver.storage(unpacked.storage, where) or resolver.default_storage(where)
        if isinstance(unpacked, UnpackedValue):
            parts.append(_value_part(key, unpacked, storage, tags, resolver, where))
        elif isinstance(unpacked, UnpackedValueStream):
            serializer = resolver.stream_serializer(unpacked.serializer, where)
            stream = _as_async_iterator(unpacked.stream, where)
            parts.append(StreamPart(key, serializer, storage, tags, stream, registry))
        else:
            msg = f"{where} is {type(unpacked).__name__}, not UnpackedValue/UnpackedValueStream"
            raise SerializationError(msg)
    return parts


def _value_part(
    key: str,
    unpacked: UnpackedValue[Any],
    storage: Storage,
    tags: dict[str, str],
    resolver: Resolver,
    where: _Where,
) -> ValuePart:
    value = unpacked.value
    serializer = resolver.serializer(unpacked.serializer, where)
    if serializer is None:
        serializer = resolver.serializer_for(type(value))
        if serializer is None:
            msg = (
                f"{where}: no serializer in the registry handles {type(value).__qualname__} "
                f"({describe(value)}); {_provider_hint(type(value))}, or name a "
                "serializer for this part"
            )
            raise NotRegisteredError(msg, kind="serializer", name=type(value).__qualname__)
    try:
        serialized = serializer.serialize(value)
    except UNUSABLE_VALUE_ERRORS as exc:
        msg = f"{where}: serializer {serializer.name!r} cannot serialize {describe(value)}: {exc}"
        raise SerializationError(msg, serializer=serializer.name) from exc
    if type(serialized) is bytes:
        size = len(serialized)
        sha256 = hashlib.sha256(serialized).hexdigest()
        return ValuePart(key, serializer, storage, tags, (serialized,), size, sha256)
    buffers = _as_buffers(serialized, serializer.name)
    size, sha256 = hash_buffers(buffers)
    return ValuePart(key, serializer, storage, tags, buffers, size, sha256)


_PROVIDERS_BY_PACKAGE = {
    "numpy": "lakery.extra.numpy",
    "pyarrow": "lakery.extra.arrow",
    "pandas": "lakery.extra.pandas",
    "polars": "lakery.extra.polars",
}
"""Top-level packages of well-known value types, and the lakery module that serializes them."""
_BUILTIN_TYPES = (bytes, bytearray, dict, list, str, int, float, bool, type(None), date)


def _provider_hint(value_type: type) -> str:
    """What to add to the registry so that values of `value_type` can be serialized."""
    module = _PROVIDERS_BY_PACKAGE.get(value_type.__module__.partition(".")[0])
    if module is None and issubclass(value_type, _BUILTIN_TYPES):
        module = "lakery.builtin"
    if module is not None:
        return f"add {module!r} to Registry(modules=[...])"
    return "add the module that provides one to Registry(modules=[...])"


def _as_buffers(serialized: Any, name: str) -> Sequence[Buffer]:
    if isinstance(serialized, bytes | bytearray | memoryview):
        return (serialized,)
    if isinstance(serialized, Sequence) and all(
        isinstance(b, bytes | bytearray | memoryview) for b in serialized
    ):
        return tuple(serialized)
    msg = f"serializer {name!r} returned {type(serialized).__name__}, not bytes or buffers"
    raise SerializationError(msg, serializer=name)


def _resolve(spec: object, kind: _Kind[C], registry: Registry, where: str) -> C | None:
    """A component from an instance, a class (looked up in the registry) or a name."""
    if spec is None:
        return None
    base = kind.base
    if isinstance(spec, str):
        return kind.by_name(registry, spec)
    if inspect.isclass(spec) and issubclass(spec, base):
        return registry.find_component(spec)
    if isinstance(spec, base):
        registered = kind.registered(registry).get(spec.name)
        if registered is None:
            msg = (
                f"{where} uses {spec!r}, which is not in the registry, so it could not be "
                f"loaded back; add it to the Registry"
            )
            raise NotRegisteredError(msg, kind=base.__name__, name=spec.name)
        return spec
    msg = f"{where}: expected a {base.__name__} instance, class or name, got {spec!r}"
    raise ConfigurationError(msg)


def _as_async_iterator(stream: Any, where: object) -> AsyncIterator[Any]:
    if isinstance(stream, AsyncIterable):
        return aiter(stream)
    msg = f"{where}: a stream part needs an async iterable, got {type(stream).__name__}"
    raise SerializationError(msg)


async def _encode(
    items: AsyncIterator[Any], serializer: StreamSerializer[Any]
) -> AsyncIterator[Buffer]:
    encoder = serializer.encoder()
    async for item in items:
        chunk = _encode_step(encoder.encode, item, serializer)
        if chunk:
            yield chunk
    tail = _encode_step(lambda _: encoder.finish(), None, serializer)
    if tail:
        yield tail


def _encode_step(
    step: Callable[[Any], Buffer], item: Any, serializer: StreamSerializer[Any]
) -> Buffer:
    try:
        return step(item)
    except UNUSABLE_VALUE_ERRORS as exc:
        msg = f"stream serializer {serializer.name!r} cannot encode {describe(item)}: {exc}"
        raise SerializationError(msg, serializer=serializer.name) from exc


async def _pick_stream_serializer(
    stream: AsyncIterator[Any], registry: Registry, key: str
) -> tuple[StreamSerializer[Any], AsyncIterator[Any]]:
    """Choose a stream serializer from the type of the first item (peeked, then replayed)."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        # An empty stream reads back empty in any format: any registered one will do.
        serializer = registry.find_stream_serializer(type(None)) or next(
            iter(registry.stream_serializers.values()), None
        )
        if serializer is None:
            msg = f"stream part {key!r}: the registry has no stream serializer"
            raise NotRegisteredError(msg, kind="stream serializer", name="any") from None
        return serializer, stream
    serializer = registry.find_stream_serializer(type(first))
    if serializer is None:
        msg = (
            f"stream part {key!r}: no stream serializer in the registry handles items of type "
            f"{type(first).__qualname__}; add one to the Registry or name one for this part"
        )
        raise NotRegisteredError(msg, kind="stream serializer", name=type(first).__qualname__)
    return serializer, _prepend(first, stream)


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
