"""Turning configuration into live objects, shared by the ``lakery`` command line, the
Alembic environment and `lakery_dagster`: database URLs (`lakery.config.database`), the
one engine recipe (`lakery.config.engine`), storages from URLs
(`lakery.config.storage_url`) and the default registry modules
(`lakery.config.registry_modules`)."""

from lakery.config.database import default_database_url
from lakery.config.database import normalize_database_url
from lakery.config.database import redact_url
from lakery.config.engine import EngineOptions
from lakery.config.engine import create_engine
from lakery.config.registry_modules import default_registry_modules
from lakery.config.storage_url import StorageUrlOptions
from lakery.config.storage_url import storage_from_url

__all__ = [
    "EngineOptions",
    "StorageUrlOptions",
    "create_engine",
    "default_database_url",
    "default_registry_modules",
    "normalize_database_url",
    "redact_url",
    "storage_from_url",
]
