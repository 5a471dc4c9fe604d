"""What every command works with: the database engine, the registry, output settings."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TextIO

from sqlalchemy import event
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery.cli.options import normalize_database_url
from lakery.cli.options import parse_storage
from lakery.cli.options import redact_url
from lakery.cli.output import ProgressLine
from lakery.cli.output import emit_json
from lakery.common.exceptions import ConfigurationError
from lakery.core.registry import Registry

__all__ = ["DEFAULT_MODULES", "Context", "open_context"]

DEFAULT_MODULES = ["lakery.builtin"]
SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a command waits for other SQLite writers (instead of "database is locked")."""


@dataclass
class Context:
    """The open engine and registry of one command run."""

    args: argparse.Namespace
    engine: AsyncEngine
    url: str
    registry_factory: Any
    progress: ProgressLine
    stdout: TextIO
    _registry: Registry | None = None

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def registry(self) -> Registry:
        """Built on first use (``db`` commands need none)."""
        if self._registry is None:
            self._registry = self.registry_factory()
        return self._registry

    def session(self) -> AsyncSession:
        return async_sessionmaker(self.engine, expire_on_commit=False)()

    def print(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def emit(self, value: Any) -> None:
        emit_json(value, self.stdout)

    async def check_tables(self) -> None:
        """Fail clearly when the database has no lakery tables."""
        async with self.engine.connect() as connection:
            present = await connection.run_sync(lambda c: inspect(c).has_table("lakery_manifests"))
        if not present:
            msg = (
                f"the database {redact_url(self.url)} has no lakery tables; create them "
                "with `lakery db upgrade`"
            )
            raise ConfigurationError(msg)


def open_context(args: argparse.Namespace, *, needs_tables: bool) -> Context:
    """The engine and registry for `args` (the engine connects lazily)."""
    raw_url = args.database_url or os.environ.get("LAKERY_DATABASE_URL", "")
    if not raw_url:
        msg = "no database: pass --database-url URL or set LAKERY_DATABASE_URL"
        raise ConfigurationError(msg)
    url = normalize_database_url(raw_url)
    engine = _create_engine(url, must_exist=needs_tables)
    modules = args.registry_module or DEFAULT_MODULES

    def registry_factory() -> Registry:
        storages = [
            parse_storage(
                text,
                s3_endpoint_url=args.s3_endpoint_url or "",
                s3_region=args.s3_region or "",
            )
            for text in args.storage_url or []
        ]
        try:
            return Registry(modules=modules, storages=storages)
        except ConfigurationError as exc:
            if "named" in str(exc) and storages:
                msg = f"{exc} (give each --storage-url its own name: NAME=URL)"
                raise ConfigurationError(msg) from None
            raise

    progress = ProgressLine(sys.stderr, enabled=not args.quiet)
    return Context(args, engine, url, registry_factory, progress, sys.stdout)


def _create_engine(url: str, *, must_exist: bool) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if must_exist and database not in {"", ":memory:"} and not Path(database).exists():
        msg = f"no SQLite database at {database}; check --database-url"
        raise ConfigurationError(msg)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return engine
