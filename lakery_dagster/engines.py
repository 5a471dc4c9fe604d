"""Database engines for lakery_dagster: one per process and configuration, on the bridge loop.

Engines are created on lakery's bridge loop (`lakery.common.sync`) and shared by every
`LakeryResource` in the process with the same settings; each set-up resource holds a
reference. When the last one lets go the engine stays open, idle, so that the next run in
the process (or the next `LakeryResource.open`) reuses its connections and skips the
connection check and table creation: at most `MAX_IDLE_ENGINES` idle engines are kept (the
least recently used beyond that are disposed), and all are disposed when the process exits
or by `dispose_idle_engines`. In-memory SQLite engines are disposed at once (the database
goes with them, as it always did). A forked child forgets the parent's engines (their
connections belong to the parent) and makes its own. Each engine is made by
`lakery.config.create_engine` (SQLite: WAL, a busy timeout, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from dataclasses import field

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import DatabaseError
from lakery.common.sync import at_exit
from lakery.common.sync import at_fork_in_child
from lakery.config.database import default_database_url
from lakery.config.database import normalize_database_url as _normalize_database_url
from lakery.config.database import redact_url
from lakery.config.engine import EngineOptions
from lakery.config.engine import create_engine
from lakery.config.engine import is_in_memory
from lakery.core.records import BaseRecord

__all__ = [
    "MAX_IDLE_ENGINES",
    "EngineSettings",
    "acquire_engine",
    "default_database_url",
    "dispose_idle_engines",
    "normalize_database_url",
    "redact_url",
    "release_engine",
]

MAX_IDLE_ENGINES = 4
"""Engines that no resource uses any more, kept open for the next run in the process."""


@dataclass(frozen=True)
class EngineSettings:
    """What identifies an engine: its URL (normalized to an async driver) and options."""

    url: str
    options: EngineOptions = field(default_factory=EngineOptions)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"


def normalize_database_url(url: str) -> str:
    """`lakery.config.normalize_database_url` with errors that name ``database_url``
    (empty: `default_database_url`)."""
    return _normalize_database_url(url, setting="database_url")


@dataclass
class _Entry:
    engine: AsyncEngine
    references: int = 0
    tables_ready: bool = False


_ENGINES: dict[EngineSettings, _Entry] = {}
_LOCKS: dict[EngineSettings, asyncio.Lock] = {}


_INHERITED: list[AsyncEngine] = []
"""In a forked child: the parent's engines, kept alive and never used."""


def _forget_after_fork() -> None:
    # The parent's connections are not ours to use or close. They must not be garbage
    # collected here either: finalizing a pooled connection talks to the server through the
    # socket the parent still uses (seen: the parent's next query waited forever).
    _INHERITED.extend(entry.engine for entry in _ENGINES.values())
    _ENGINES.clear()
    _LOCKS.clear()


at_fork_in_child(_forget_after_fork)


async def _dispose_all() -> None:
    entries = list(_ENGINES.values())
    _ENGINES.clear()
    for entry in entries:
        with contextlib.suppress(Exception):  # e.g. a database dropped meanwhile
            await entry.engine.dispose()


at_exit(_dispose_all)


async def acquire_engine(settings: EngineSettings, *, create_tables: bool) -> AsyncEngine:
    """The shared engine for `settings` (run on the bridge loop); call `release_engine` after.

    Connects once (so an unreachable database fails here, with a clear message) and, when
    asked, creates lakery's tables.
    """
    lock = _LOCKS.setdefault(settings, asyncio.Lock())
    async with lock:
        entry = _ENGINES.get(settings)
        if entry is None:
            entry = _Entry(create_engine(settings.url, settings.options))
            try:
                await _check_connection(entry.engine, settings)
            except BaseException:
                await entry.engine.dispose()
                raise
            _ENGINES[settings] = entry
        if create_tables and not entry.tables_ready:
            await _create_tables(entry.engine, settings)
            entry.tables_ready = True
        entry.references += 1
        return entry.engine


async def release_engine(settings: EngineSettings) -> None:
    """Drop one reference; an engine nobody uses stays open, idle (see the module notes)."""
    lock = _LOCKS.setdefault(settings, asyncio.Lock())
    async with lock:
        entry = _ENGINES.get(settings)
        if entry is None:
            return
        entry.references -= 1
        if entry.references > 0:
            return
        entry.references = 0
        # Most recently released last: _ENGINES keeps insertion order.
        _ENGINES.pop(settings)
        _ENGINES[settings] = entry
    if is_in_memory(settings.url):
        await _dispose_if_idle(settings)  # its database lives as long as the engine
        return
    idle = [s for s, e in _ENGINES.items() if e.references <= 0]
    for stale in idle[: max(0, len(idle) - MAX_IDLE_ENGINES)]:
        await _dispose_if_idle(stale)


async def dispose_idle_engines() -> None:
    """Dispose every engine of this process that no resource uses (run on the bridge loop).

    ``run_sync(dispose_idle_engines())`` closes their connections now instead of at exit,
    e.g. before deleting an SQLite database file the process has used.
    """
    for settings in [s for s, e in _ENGINES.items() if e.references <= 0]:
        await _dispose_if_idle(settings)


async def _dispose_if_idle(settings: EngineSettings) -> None:
    lock = _LOCKS.setdefault(settings, asyncio.Lock())
    async with lock:
        entry = _ENGINES.get(settings)
        if entry is None or entry.references > 0:
            return
        del _ENGINES[settings]
    with contextlib.suppress(Exception):
        await entry.engine.dispose()


async def _check_connection(engine: AsyncEngine, settings: EngineSettings) -> None:
    try:
        async with asyncio.timeout(settings.options.connect_timeout + 5):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        msg = (
            f"cannot connect to the lakery database at {settings.redacted_url}: {reason}; "
            "check LakeryResource.database_url and that the database server is running"
        )
        raise DatabaseError(msg, database=settings.redacted_url) from exc


async def _create_tables(engine: AsyncEngine, settings: EngineSettings) -> None:
    """Create lakery's tables if missing; tolerate other processes doing it at the same time."""
    attempts = 5
    for attempt in range(attempts):
        try:
            async with engine.begin() as connection:
                await connection.run_sync(BaseRecord.metadata.create_all)
            return
        except SQLAlchemyError as exc:
            if attempt == attempts - 1:
                msg = (
                    f"cannot create lakery's tables in {settings.redacted_url}: {exc}; create "
                    "them beforehand (BaseRecord.create_all) and set create_tables=False"
                )
                raise ConfigurationError(msg) from exc
            await asyncio.sleep(0.1 * (attempt + 1))  # another process raced us: look again
