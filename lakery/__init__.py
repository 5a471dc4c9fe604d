"""lakery: store typed Python objects as content-hashed blobs, with records in SQL."""

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import CommitUnknownError
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import DatabaseError
from lakery.common.exceptions import HasDependantsError
from lakery.common.exceptions import IntegrityError
from lakery.common.exceptions import InvalidClassIdError
from lakery.common.exceptions import InvalidTagsError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import LakeryWarning
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import NotRegisteredError
from lakery.common.exceptions import SerializationError
from lakery.common.exceptions import StorableTypeError
from lakery.common.exceptions import StorageError
from lakery.core import *  # noqa: F403
from lakery.core import __all__ as _core_all

__version__ = "0.1.0"

__all__ = [
    *_core_all,
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
