"""The registry: which storables, unpackers, serializers and storages lakery may use.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.pydantic"])
```

Components come from, in increasing precedence: `modules` (what each lists in its
`__all__`), merged `registries`, then the explicit keyword arguments; within each source a
later component with the same name wins. Saving looks components up by type (along the
value's MRO); loading looks them up by the names written in the records.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from typing import TypeVar
from uuid import UUID

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotRegisteredError
from lakery.core.component import Component
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import storable_class_for_id
from lakery.core.storage import Storage
from lakery.core.unpacker import Unpacker

__all__ = ["DEFAULT_STORAGE_ATTRIBUTE", "Registry"]

C = TypeVar("C", bound=Component)
S = TypeVar("S", Serializer[Any], StreamSerializer[Any])

DEFAULT_STORAGE_ATTRIBUTE = "lakery_default_storage"
"""A module may name a default storage (a zero-argument factory or an instance) with this
attribute; a registry built from it uses that storage when nothing else sets a default."""

_KINDS: dict[str, type[Component]] = {
    "serializer": Serializer,
    "stream serializer": StreamSerializer,
    "storage": Storage,
    "unpacker": Unpacker,
}
_ARGUMENT = {
    "serializer": "serializers",
    "stream serializer": "serializers",
    "storage": "storages",
    "unpacker": "unpackers",
}


class Registry:
    """The components lakery may use to save and load.

    Args:
        modules: import paths (or modules) whose `__all__` lists components: component
            instances, component classes that take no arguments, and storable classes.
        registries: registries to merge, in order.
        storables: storable classes, so loading can find a class by id without one given.
        unpackers: unpacker instances.
        serializers: serializer and stream serializer instances.
        storages: storage instances.
        default_storage: where parts that name no storage go. Defaults to the last merged
            registry's default, else the default named by the modules.
    """

    def __init__(
        self,
        *,
        modules: Sequence[str | ModuleType] = (),
        registries: Sequence[Registry] = (),
        storables: Iterable[type[Storable]] = (),
        unpackers: Iterable[Unpacker[Any]] = (),
        serializers: Iterable[Serializer[Any] | StreamSerializer[Any]] = (),
        storages: Iterable[Storage] = (),
        default_storage: Storage | None = None,
    ) -> None:
        self._serializers: dict[str, Serializer[Any]] = {}
        self._stream_serializers: dict[str, StreamSerializer[Any]] = {}
        self._storages: dict[str, Storage] = {}
        self._unpackers: dict[str, Unpacker[Any]] = {}
        # `find_serializer`'s and `find_stream_serializer`'s answers, by value type.
        self._found_serializers: dict[type, Serializer[Any] | None] = {}
        self._found_stream_serializers: dict[type, StreamSerializer[Any] | None] = {}
        self._storables: dict[UUID, type[Storable]] = {}
        self._default_storage: Storage | None = None

        for module in modules:
            self._add_module(module)
        for registry in registries:
            if not isinstance(registry, Registry):
                msg = f"registries must hold Registry instances, got {registry!r}"
                raise ConfigurationError(msg)
            self._merge(registry)
        explicit: list[Component] = [*unpackers, *serializers, *storages]
        self._check_unique(explicit)
        for component in explicit:
            self._add_component(component, source="the Registry arguments")
        for cls in storables:
            self._add_storable(cls)
        if default_storage is not None:
            if not isinstance(default_storage, Storage):
                msg = f"default_storage must be a Storage instance, got {default_storage!r}"
                raise ConfigurationError(msg)
            self._add_component(default_storage, source="default_storage")
            self._default_storage = default_storage

    # -- building ---------------------------------------------------------------------

    def _add_module(self, module: str | ModuleType) -> None:
        if isinstance(module, str):
            try:
                module = importlib.import_module(module)
            except ImportError as exc:
                msg = f"cannot import registry module {module!r}: {exc}"
                raise ConfigurationError(msg) from exc
        names = getattr(module, "__all__", None)
        if names is None:
            msg = f"registry module {module.__name__!r} has no __all__ listing its components"
            raise ConfigurationError(msg)
        for attr in names:
            item = getattr(module, attr)
            if inspect.isclass(item) and issubclass(item, Storable):
                if "__lakery_class_id__" in item.__dict__:
                    self._add_storable(item)
            elif inspect.isclass(item) and issubclass(item, Component):
                instance = _instantiate_without_arguments(item)
                if instance is not None:
                    self._add_component(instance, source=module.__name__)
            elif isinstance(item, Component):
                self._add_component(item, source=module.__name__)
        default = getattr(module, DEFAULT_STORAGE_ATTRIBUTE, None)
        if default is not None:
            storage = default if isinstance(default, Storage) else default()
            self._add_component(storage, source=module.__name__)
            self._default_storage = storage

    @property
    def _components(self) -> dict[str, Mapping[str, Component]]:
        """Every kind's components by name, by kind (a view: `_add_component` adds)."""
        return {
            "serializer": self._serializers,
            "stream serializer": self._stream_serializers,
            "storage": self._storages,
            "unpacker": self._unpackers,
        }

    def _merge(self, other: Registry) -> None:
        self._serializers.update(other._serializers)
        self._stream_serializers.update(other._stream_serializers)
        self._storages.update(other._storages)
        self._unpackers.update(other._unpackers)
        self._forget_found()
        self._storables.update(other._storables)
        if other._default_storage is not None:
            self._default_storage = other._default_storage

    def _add_component(self, component: Component, *, source: str) -> None:
        if _kind_of(component) is None:
            msg = (
                f"{source}: {component!r} is not a serializer, stream serializer, storage "
                "or unpacker instance"
            )
            raise ConfigurationError(msg)
        if not isinstance(getattr(component, "name", None), str):
            msg = f"{source}: {type(component).__qualname__} has no component name"
            raise ConfigurationError(msg)
        # The kinds in `_KINDS`'s order: a class that is two kinds counts as the first.
        if isinstance(component, Serializer):
            self._serializers[component.name] = component
        elif isinstance(component, StreamSerializer):
            self._stream_serializers[component.name] = component
        elif isinstance(component, Storage):
            self._storages[component.name] = component
        elif isinstance(component, Unpacker):
            self._unpackers[component.name] = component
        self._forget_found()

    def _forget_found(self) -> None:
        self._found_serializers.clear()
        self._found_stream_serializers.clear()

    def _add_storable(self, cls: type[Storable]) -> None:
        if not (inspect.isclass(cls) and issubclass(cls, Storable)):
            msg = f"storables must hold Storable subclasses, got {cls!r}"
            raise ConfigurationError(msg)
        self._storables[get_class_id(cls)] = cls

    @staticmethod
    def _check_unique(components: list[Component]) -> None:
        seen: dict[tuple[str | None, str], Component] = {}
        for component in components:
            key = (_kind_of(component), getattr(component, "name", ""))
            if key in seen and seen[key] is not component:
                msg = (
                    f"two {key[0]}s are named {key[1]!r} ({seen[key]!r} and {component!r}); "
                    "give one of them another name"
                )
                raise ConfigurationError(msg)
            seen[key] = component

    # -- lookups by name (loading) ----------------------------------------------------

    def get_serializer(self, name: str) -> Serializer[Any]:
        """The value serializer named `name`."""
        return self._get("serializer", self._serializers, name)

    def get_stream_serializer(self, name: str) -> StreamSerializer[Any]:
        """The stream serializer named `name`."""
        return self._get("stream serializer", self._stream_serializers, name)

    def get_storage(self, name: str) -> Storage:
        """The storage named `name`."""
        return self._get("storage", self._storages, name)

    def get_unpacker(self, name: str) -> Unpacker[Any]:
        """The unpacker named `name`."""
        return self._get("unpacker", self._unpackers, name)

    def get_storable(self, class_id: UUID) -> type[Storable]:
        """The storable class with this id: registered, else any imported one."""
        cls = self._storables.get(class_id) or storable_class_for_id(class_id)
        if cls is None:
            msg = (
                f"no storable class with class_id {class_id.hex!r} is registered or imported: "
                "import the module that defines it, pass the class to load_one/load_soon, "
                "or add it with Registry(storables=[...])"
            )
            raise NotRegisteredError(msg, kind="storable", name=class_id.hex)
        return cls

    @staticmethod
    def _get(kind: str, components: Mapping[str, C], name: str) -> C:
        try:
            return components[name]
        except KeyError:
            known = ", ".join(sorted(components)) or "none"
            msg = (
                f"no {kind} named {name!r} in the registry (it has: {known}); add the module "
                f"that provides it to Registry(modules=[...]) or pass it with "
                f"Registry({_ARGUMENT[kind]}=[...])"
            )
            raise NotRegisteredError(msg, kind=kind, name=name) from None

    # -- lookups by type (saving) -----------------------------------------------------

    def find_serializer(self, value_type: type) -> Serializer[Any] | None:
        """The last registered value serializer for the nearest type in `value_type`'s MRO."""
        return self._find(self._serializers, self._found_serializers, value_type)

    def find_stream_serializer(self, item_type: type) -> StreamSerializer[Any] | None:
        """The stream serializer for the nearest type in `item_type`'s MRO."""
        return self._find(self._stream_serializers, self._found_stream_serializers, item_type)

    @staticmethod
    def _find(
        components: Mapping[str, S], found: dict[type, S | None], value_type: type
    ) -> S | None:
        try:
            return found[value_type]
        except KeyError:
            answer = found[value_type] = _search(components, value_type)
            return answer

    def find_component(self, component_type: type[C]) -> C:
        """The registered instance of `component_type` under the class's own name, else the
        last registered instance of it."""
        kind = _kind_of_class(component_type)
        if kind is not None:
            found = [c for c in self._components[kind].values() if isinstance(c, component_type)]
            default_name = getattr(component_type, "name", None)
            for component in reversed(found):
                if component.name == default_name:
                    return component
            if found:
                return found[-1]
        msg = (
            f"no {component_type.__qualname__} is in the registry; add one with "
            f"Registry({_ARGUMENT.get(kind or 'storage')}=[{component_type.__name__}(...)]) "
            "or add the module that provides it to Registry(modules=[...])"
        )
        raise NotRegisteredError(msg, kind=kind or "component", name=component_type.__qualname__)

    def find_serializer_for_content_type(self, content_type: str) -> Serializer[Any] | None:
        """The last value serializer whose content type matches, ignoring parameters."""
        wanted = _bare_content_type(content_type)
        for component in list(self._serializers.values())[::-1]:
            if _bare_content_type(component.content_type) == wanted:
                return component
        return None

    @property
    def default_storage(self) -> Storage | None:
        """Where parts that name no storage are written."""
        return self._default_storage

    # -- introspection ----------------------------------------------------------------

    @property
    def serializers(self) -> dict[str, Serializer[Any]]:
        """Value serializers by name."""
        return dict(self._serializers)

    @property
    def stream_serializers(self) -> dict[str, StreamSerializer[Any]]:
        """Stream serializers by name."""
        return dict(self._stream_serializers)

    @property
    def storages(self) -> dict[str, Storage]:
        """Storages by name."""
        return dict(self._storages)

    @property
    def unpackers(self) -> dict[str, Unpacker[Any]]:
        """Unpackers by name."""
        return dict(self._unpackers)

    @property
    def storables(self) -> dict[UUID, type[Storable]]:
        """Registered storable classes by class id."""
        return dict(self._storables)

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(v)} {k}s" for k, v in self._components.items())
        return f"<Registry {counts}, {len(self._storables)} storables>"


def _search(components: Mapping[str, S], value_type: type) -> S | None:
    candidates = list(components.values())[::-1]  # the last registered first
    for base in value_type.__mro__:
        for component in candidates:
            if base in component.types:
                return component
    return None


def _kind_of(component: object) -> str | None:
    return _kind_of_class(type(component))


def _kind_of_class(cls: type) -> str | None:
    for kind, base in _KINDS.items():
        if issubclass(cls, base):
            return kind
    return None


def _instantiate_without_arguments(cls: type[Component]) -> Component | None:
    """Instantiate a component class listed in a module's `__all__`, if it needs no args."""
    if inspect.isabstract(cls) or not isinstance(cls.__dict__.get("name", None), str):
        return None
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    required = [
        p
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return None if required else cls()


def _bare_content_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()
