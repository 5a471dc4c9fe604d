"""Configuration shared by the ``lakery`` command line and `lakery_dagster`: the database
URL (`lakery.config.database`) and the default registry modules
(`lakery.config.registry_modules`)."""

from lakery.config.database import default_database_url
from lakery.config.database import normalize_database_url
from lakery.config.database import redact_url
from lakery.config.registry_modules import default_registry_modules

__all__ = [
    "default_database_url",
    "default_registry_modules",
    "normalize_database_url",
    "redact_url",
]
