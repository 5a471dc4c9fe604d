"""Every error lakery raises, under one root.

```
LakeryError
├── ConfigurationError        a registry, storage or class definition is set up wrongly
│   └── InvalidClassIdError   a class_id that is not 8-32 hex characters
├── NotRegisteredError        a component or storable class is missing from the registry
├── StorableTypeError         an object that is not a storable (or a coroutine left un-awaited)
├── InvalidTagsError          tags that are not a mapping of str to str
├── SerializationError        a value could not be serialized or deserialized
├── NotFoundError             stored data or a record does not exist (also a FileNotFoundError)
├── IntegrityError            stored data does not match the size or hash in its record
├── HasDependantsError        a delete would remove manifests that others were derived
│                             from (pass force=True to delete them anyway)
├── StorageError              a storage backend failed (including a full disk)
│   └── AccessDeniedError     the backend refused the credentials or the permission
│                             (also a PermissionError)
└── DatabaseError             the database failed or could not be reached
    └── CommitUnknownError    the connection was lost during COMMIT: the save may have
                              been committed (carries the manifest ids to check)
```

Errors carry the fields that identify what failed (component name, record id, content key)
besides a message that says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

__all__ = [
    "AccessDeniedError",
    "CommitUnknownError",
    "ConfigurationError",
    "DatabaseError",
    "HasDependantsError",
    "IntegrityError",
    "InvalidClassIdError",
    "InvalidTagsError",
    "LakeryError",
    "LakeryWarning",
    "NotFoundError",
    "NotRegisteredError",
    "SerializationError",
    "StorableTypeError",
    "StorageError",
]


class LakeryWarning(UserWarning):
    """A problem that does not stop lakery but should be fixed (e.g. an unpinned class_id)."""


class LakeryError(Exception):
    """The root of every error lakery raises."""


class ConfigurationError(LakeryError, ValueError):
    """A registry, storage or storable class is configured wrongly."""


class InvalidClassIdError(ConfigurationError):
    """A storable's class_id is not 8-32 hexadecimal characters."""


class NotRegisteredError(LakeryError, LookupError):
    """A component (serializer, storage, unpacker) or storable class is not in the registry.

    Attributes:
        kind: "serializer", "stream serializer", "storage", "unpacker" or "storable".
        name: the name, type or class id that was looked up.
    """

    def __init__(self, message: str, *, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


class StorableTypeError(LakeryError, TypeError):
    """An object passed where a storable (or a manifest record) was expected."""


class InvalidTagsError(LakeryError, ValueError):
    """Tags that are not a mapping of non-empty str keys to str values."""


class SerializationError(LakeryError, ValueError):
    """A value could not be serialized or deserialized.

    Attributes:
        serializer: the serializer's name, when one was chosen.
    """

    def __init__(self, message: str, *, serializer: str | None = None) -> None:
        super().__init__(message)
        self.serializer = serializer


class NotFoundError(LakeryError, FileNotFoundError):
    """Stored data or a record does not exist.

    Attributes:
        locator: the storage locator that was read, when the data was missing.
    """

    def __init__(self, message: str, *, locator: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.locator = locator

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IntegrityError(LakeryError):
    """Stored data does not match the size or hash recorded for it.

    Attributes:
        manifest_id: the manifest whose content failed the check.
        content_key: the content part that failed.
    """

    def __init__(
        self, message: str, *, manifest_id: UUID | None = None, content_key: str | None = None
    ) -> None:
        super().__init__(message)
        self.manifest_id = manifest_id
        self.content_key = content_key


class HasDependantsError(LakeryError):
    """A delete was refused: other manifests were derived from the ones to delete.

    Delete the dependants too, or pass ``force=True`` (``lakery delete --force``): their
    lineage edges then stay, naming a parent that is missing (`Lineage.missing`).

    Attributes:
        dependants: the manifests to delete that have dependants, each with the ids of
            the manifests derived from it (that are not deleted with it).
    """

    def __init__(self, message: str, *, dependants: dict[Any, list[Any]]) -> None:
        super().__init__(message)
        self.dependants = dependants


class StorageError(LakeryError):
    """A storage backend failed (I/O error, access denied, service error)."""


class AccessDeniedError(StorageError, PermissionError):
    """A storage backend refused access: missing permission, or rejected credentials.

    Attributes:
        locator: the storage locator (or bucket and key) that was being accessed, if any.
    """

    def __init__(self, message: str, *, locator: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.locator = locator

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatabaseError(LakeryError):
    """The database failed or could not be reached; the original error is the `__cause__`.

    Attributes:
        database: the database URL with its password hidden.
    """

    def __init__(self, message: str, *, database: str | None = None) -> None:
        super().__init__(message)
        self.database = database


class CommitUnknownError(DatabaseError):
    """The connection was lost while a save committed: its rows may or may not be stored.

    Look the manifests up by id (``session.get(ManifestRecord, id)`` in a new session, or
    ``lakery show ID``) to learn which it was. Saving the objects again is safe either way:
    their content is stored once; only a second manifest per object may result.

    Attributes:
        manifest_ids: the ids the save gave its manifests, in the order they were saved.
    """

    def __init__(
        self, message: str, *, database: str | None = None, manifest_ids: tuple[UUID, ...] = ()
    ) -> None:
        super().__init__(message, database=database)
        self.manifest_ids = manifest_ids
