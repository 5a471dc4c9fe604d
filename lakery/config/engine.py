"""The one recipe from a database URL to an async SQLAlchemy engine.

Used by `lakery_dagster`, the ``lakery`` command line and the Alembic environment. SQLite
engines are set up for many processes writing at once: WAL journal (readers do not block
the writer), a busy timeout (writers wait for each other instead of failing with
"database is locked"), ``synchronous=NORMAL`` (durable at each checkpoint, safe in WAL)
and foreign keys on. In-memory SQLite keeps its single connection (no pool options).

Connection budget (PostgreSQL): one engine holds at most ``pool_size + max_overflow``
connections, ``pool_size`` of them kept open while idle. With ``null_pool=True`` it keeps
none: a connection is opened per session and closed when the session ends, so a process
holds connections only while it talks to the database (for short-lived step processes, or
behind PgBouncer, which pools for everyone). Behind PgBouncer in transaction mode set
``statement_cache_size=0``: asyncpg's and SQLAlchemy's prepared-statement caches are off
and each statement gets a unique name, since consecutive transactions of one client may run
on different server connections (see docs/deploying.md).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from lakery.common.exceptions import ConfigurationError

__all__ = ["EngineOptions", "create_engine", "is_in_memory"]


@dataclass(frozen=True)
class EngineOptions:
    """Pool and timeout options of an engine.

    Attributes:
        pool_size: connections kept open.
        max_overflow: connections opened beyond `pool_size` under load.
        pool_timeout: seconds to wait for a free connection.
        pool_recycle: seconds after which a connection is replaced (PostgreSQL).
        connect_timeout: seconds to wait for the server when connecting (PostgreSQL).
        sqlite_busy_timeout: seconds an SQLite writer waits for another one.
        null_pool: keep no connection open between uses (SQLAlchemy's `NullPool`;
            `pool_size`, `max_overflow`, `pool_timeout` and `pool_recycle` then do not
            apply). PostgreSQL only; ignored for SQLite.
        statement_cache_size: asyncpg's prepared-statement cache per connection (and
            SQLAlchemy's, of the asyncpg dialect); None keeps the drivers' defaults. ``0``
            is required behind PgBouncer in transaction mode: the caches are off and every
            prepared statement gets a unique name. PostgreSQL with asyncpg only.
    """

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = 1800
    connect_timeout: float = 10.0
    sqlite_busy_timeout: float = 60.0
    null_pool: bool = False
    statement_cache_size: int | None = None

    def max_connections(self) -> int:
        """The most PostgreSQL connections one engine with these options opens at once.

        ``pool_size + max_overflow``; with `null_pool` there is no pool bound (one
        connection per concurrent session, none while idle), and this is 0.
        """
        return 0 if self.null_pool else self.pool_size + self.max_overflow


def create_engine(url: str, options: EngineOptions | None = None) -> AsyncEngine:
    """An engine for `url` (already normalized to an async driver, see
    `lakery.config.normalize_database_url`); it connects lazily.

    Raises:
        ConfigurationError: the folder of an SQLite file cannot be created.
    """
    options = options or EngineOptions()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, options)
    connect_args: dict[str, Any] = {"timeout": options.connect_timeout}
    if options.statement_cache_size is not None and parsed.get_driver_name() == "asyncpg":
        size = options.statement_cache_size
        connect_args.update(statement_cache_size=size, prepared_statement_cache_size=size)
        if size == 0:
            # SQLAlchemy still prepares each statement (for its result columns); asyncpg
            # numbers their names per connection, and behind PgBouncer two clients' names
            # meet on one server connection ("prepared statement already exists").
            connect_args["prepared_statement_name_func"] = _unique_statement_name
    pool: dict[str, Any]
    if options.null_pool:
        pool = {"poolclass": NullPool}
    else:
        pool = {
            "pool_size": options.pool_size,
            "max_overflow": options.max_overflow,
            "pool_timeout": options.pool_timeout,
            "pool_recycle": options.pool_recycle,
        }
    return create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **pool)


def _unique_statement_name() -> str:
    return f"__lakery_{uuid.uuid4().hex}__"


def is_in_memory(url: str) -> bool:
    """Whether `url` is an in-memory SQLite database (gone with its engine)."""
    parsed = make_url(url)
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        database in {"", ":memory:"} or database.startswith("file::memory:")
    )


def _sqlite_engine(url: URL, options: EngineOptions) -> AsyncEngine:
    in_memory = is_in_memory(url.render_as_string(hide_password=False))
    if not in_memory:
        path = Path(url.database or "").expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"cannot create the directory of the SQLite database {path}: {exc}; "
                "point the database URL at a writable location"
            )
            raise ConfigurationError(msg) from exc
    # The pool's own reset rolls back every connection it takes back, even right after a
    # commit (one more hop to aiosqlite's thread per session): roll back only what is open.
    arguments: dict[str, Any] = {
        "connect_args": {"timeout": options.sqlite_busy_timeout},
        "pool_reset_on_return": None,
    }
    if not in_memory:
        arguments.update(pool_size=options.pool_size, max_overflow=options.max_overflow)
        arguments.update(pool_timeout=options.pool_timeout)
    engine = create_async_engine(url, **arguments)
    busy_ms = int(options.sqlite_busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not in_memory:
                # Fails only while another process switches it; WAL persists in the file.
                with contextlib.suppress(Exception):
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection: Any, _record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # the connection is being discarded, or cannot be talked to here
        if getattr(dbapi_connection.driver_connection, "in_transaction", True):
            dbapi_connection.rollback()

    return engine
