"""The records database URL: the default, normalisation to an async driver, redaction.

Shared by the ``lakery`` command line and `lakery_dagster`. Supported: PostgreSQL
(``asyncpg``, or ``psycopg`` in its async mode) and SQLite (``aiosqlite``);
``postgresql://`` and ``sqlite://`` URLs get their async driver added.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import NoSuchModuleError

from lakery.common.exceptions import ConfigurationError

__all__ = [
    "ASYNC_DRIVERS",
    "default_database_url",
    "normalize_database_url",
    "redact_url",
]

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
"""The driver each supported backend gets when its URL names none."""
_ALIASES = {"postgres": "postgresql"}
_EXAMPLES = "'postgresql+asyncpg://user@host:5432/db' or 'sqlite+aiosqlite:///path/lakery.db'"


def default_database_url() -> str:
    """``sqlite+aiosqlite:///<DAGSTER_HOME or the working directory>/lakery.db``."""
    home = os.environ.get("DAGSTER_HOME") or os.getcwd()
    return f"sqlite+aiosqlite:///{Path(home).expanduser().resolve() / 'lakery.db'}"


def normalize_database_url(url: str, *, setting: str = "database URL") -> str:
    """Check a database URL and give it an async driver (``postgresql://`` becomes
    ``postgresql+asyncpg://``, ``sqlite://`` becomes ``sqlite+aiosqlite://``); an empty
    URL is `default_database_url`. `setting` names the URL in error messages.

    Raises:
        ConfigurationError: a malformed URL, another backend (e.g. MySQL), or a driver
            that is not async (e.g. ``postgresql+psycopg2``).
    """
    if not url:
        return default_database_url()
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        msg = f"malformed {setting} {redact_url(url)!r}: {exc}; use e.g. {_EXAMPLES}"
        raise ConfigurationError(msg) from None
    backend = _ALIASES.get(parsed.get_backend_name(), parsed.get_backend_name())
    if backend not in ASYNC_DRIVERS:
        msg = (
            f"{setting} {redact_url(url)!r} names the {backend!r} backend; lakery supports "
            "'postgresql+asyncpg://...' and 'sqlite+aiosqlite:///...'"
        )
        raise ConfigurationError(msg)
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=ASYNC_DRIVERS[backend])
    elif not _is_async(parsed):
        msg = (
            f"{setting} {redact_url(url)!r} names the driver {parsed.get_driver_name()!r}, "
            f"which is not an installed async driver; use e.g. {_EXAMPLES}"
        )
        raise ConfigurationError(msg)
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def _is_async(parsed: URL) -> bool:
    try:
        dialect = parsed.get_dialect(_is_async=True)
    except (NoSuchModuleError, ImportError, TypeError):
        return False
    return bool(getattr(dialect, "is_async", False))
