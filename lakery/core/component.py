"""The base of every named component (serializer, stream serializer, storage, unpacker)."""

from __future__ import annotations

import re

from lakery.common.exceptions import ConfigurationError

__all__ = ["Component", "check_component_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]*(@[A-Za-z0-9_.-]+)?$")


def check_component_name(name: object, *, owner: str) -> str:
    """Return `name` if it is a valid component name, else raise `ConfigurationError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        msg = (
            f"{owner} has an invalid component name {name!r}: use letters, digits and "
            "'._:/+-', with an optional version suffix, e.g. 'mycompany.parquet@v1'"
        )
        raise ConfigurationError(msg)
    return name


class Component:
    """A component with a permanent name that stored records refer to.

    The name (e.g. ``"lakery.json.value@v1"``) is written into content records, so it must
    never change once data was saved with it; bump the version suffix for a new format.
    """

    name: str
    """Set on the class; a storage may be given its own per instance (``name=...``)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            check_component_name(name, owner=cls.__qualname__)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')!r}>"
