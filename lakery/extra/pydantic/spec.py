"""`ContentSpec`: how and where a field (or a value inside it) of a `StorableModel` is stored.

```python
class ExperimentData(StorableModel, class_id="..."):
    results: Annotated[dict[str, np.ndarray], ContentSpec(storage=FileStorage, tags={"a": "b"})]
    frames: list[Annotated[np.ndarray, ContentSpec(serializer=NpySerializer)]]


SaveInFiles = Annotated[T, ContentSpec(storage=FileStorage)]  # a reusable generic alias
```
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from pydantic_core import core_schema

from lakery.common.exceptions import ConfigurationError
from lakery.common.tags import validate_tags
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer
from lakery.core.storage import Storage

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

__all__ = ["SAVING", "ContentSpec", "SpecValue"]

SAVING = "lakery.pydantic.saving"
"""Key of the serialization context with which `ModelUnpacker` dumps a model."""

SerializerSpec = Serializer[Any] | StreamSerializer[Any] | type[Serializer[Any]] | str
StorageSpec = Storage | type[Storage] | str


class ContentSpec:
    """`Annotated` metadata that stores a value as content of its own.

    The value at an annotated place (a field, or e.g. the items of a list) is stored
    outside the model's JSON body, in `storage` and with `tags` on its content record (the
    tags are also passed to the storage, together with the manifest's tags).

    - With a `serializer`, the value becomes one part serialized by it (a stream
      serializer for an async-iterable value).
    - Without one, a leaf value such as an array becomes one part serialized by the
      serializer registered for its type. A container (dict, list, nested model, ...)
      becomes a JSON document of its own in `storage`, and every value inside it that is not
      JSON (arrays, bytes, ...) becomes a part there too.

    Components may be given as an instance, a class (the registry's instance of it is used)
    or a registered name; they must be in the registry when saving. A `ContentSpec` nested
    inside another one inherits its storage and tags unless it sets its own.

    Args:
        serializer: the serializer (or stream serializer) of the value.
        storage: where to keep the value; default the registry's default storage.
        tags: content tags, str to str.
    """

    __slots__ = ("_tags", "serializer", "storage")

    def __init__(
        self,
        *,
        serializer: SerializerSpec | None = None,
        storage: StorageSpec | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        _check_component(serializer, (Serializer, StreamSerializer), "serializer")
        _check_component(storage, (Storage,), "storage")
        self.serializer = serializer
        self.storage = storage
        self._tags = tuple(validate_tags(tags, what="ContentSpec tags").items())

    @property
    def tags(self) -> dict[str, str]:
        """The content tags."""
        return dict(self._tags)

    def merged_into(self, outer: ContentSpec | None) -> ContentSpec:
        """This spec, with the storage and tags of an enclosing spec where it sets none."""
        if outer is None:
            return self
        return ContentSpec(
            serializer=self.serializer,
            storage=self.storage if self.storage is not None else outer.storage,
            tags={**outer.tags, **self.tags},
        )

    def is_stream_serializer(self) -> bool:
        """Whether `serializer` names a stream serializer (a name is decided by the value)."""
        spec = self.serializer
        return isinstance(spec, StreamSerializer) or (
            inspect.isclass(spec) and issubclass(spec, StreamSerializer)
        )

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        previous = schema.get("serialization")
        # Keep any serializer set before (e.g. a PlainSerializer) for ordinary dumps.
        inner = core_schema.any_schema(serialization=previous) if previous else None
        # A dict; pydantic-core types CoreSchema as a read-only Mapping for mypy (speed).
        schema["serialization"] = core_schema.wrap_serializer_function_ser_schema(  # type: ignore[index]
            self._serialize, info_arg=True, schema=inner
        )
        return schema

    def _serialize(
        self, value: Any, handler: core_schema.SerializerFunctionWrapHandler, info: Any
    ) -> Any:
        context = info.context
        if value is None or not (isinstance(context, dict) and context.get(SAVING)):
            return handler(value)
        if info.mode != "python":
            return handler(value)
        # With its own serializer the value is stored as it is; otherwise as pydantic dumps
        # it (so that specs nested inside it are seen too).
        return SpecValue(value if self.serializer is not None else handler(value), self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContentSpec):
            return NotImplemented
        return (self.serializer, self.storage, self._tags) == (
            other.serializer,
            other.storage,
            other._tags,
        )

    def __hash__(self) -> int:
        return hash((ContentSpec, _hashable(self.serializer), _hashable(self.storage), self._tags))

    def __repr__(self) -> str:
        fields = [
            f"{name}={value!r}"
            for name, value in (
                ("serializer", self.serializer),
                ("storage", self.storage),
                ("tags", self.tags or None),
            )
            if value is not None
        ]
        return f"ContentSpec({', '.join(fields)})"


class SpecValue:
    """A value under a `ContentSpec`, as `ModelUnpacker` sees it in a model dump."""

    __slots__ = ("spec", "value")

    def __init__(self, value: Any, spec: ContentSpec) -> None:
        self.value = value
        self.spec = spec

    def __repr__(self) -> str:
        return f"SpecValue({type(self.value).__qualname__}, {self.spec!r})"


def _check_component(spec: object, kinds: tuple[type, ...], what: str) -> None:
    if spec is None or isinstance(spec, (str, *kinds)):
        return
    if inspect.isclass(spec) and issubclass(spec, kinds):
        return
    names = " or ".join(kind.__name__ for kind in kinds)
    msg = f"ContentSpec {what} must be a {names} instance, class or registered name, got {spec!r}"
    raise ConfigurationError(msg)


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        return id(value)
    return value
