"""What every command works with: the database engine, the registry, output settings."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TextIO

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery.cli.discovery import discover_storages
from lakery.cli.options import parse_storage
from lakery.cli.output import ProgressLine
from lakery.cli.output import emit_json
from lakery.cli.settings import CONFIG_FILE
from lakery.cli.settings import ENV_DATABASE_URL
from lakery.cli.settings import Settings
from lakery.common.exceptions import ConfigurationError
from lakery.config.database import normalize_database_url
from lakery.config.database import redact_url
from lakery.config.engine import create_engine
from lakery.config.engine import is_in_memory
from lakery.config.registry_modules import default_registry_modules
from lakery.core.registry import Registry

__all__ = ["Context", "open_context", "registry_modules"]


@dataclass
class Context:
    """The open engine and registry of one command run."""

    args: argparse.Namespace
    settings: Settings
    engine: AsyncEngine
    url: str
    progress: ProgressLine
    stdout: TextIO
    stdin: TextIO | None = None
    not_collected: dict[str, str] = field(default_factory=dict)
    """Storages made from the records that gc must skip, with the reason."""
    _registry: Registry | None = None
    _discovered: bool = False

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def registry(self) -> Registry:
        """The registry of the settings (plus storages found by `discover_storages`)."""
        return self._registry if self._registry is not None else self.build_registry()

    def build_registry(self) -> Registry:
        """The default and configured modules and storages (``db`` commands need none)."""
        if self._registry is None:
            self._registry = _build_registry(self.settings)
        return self._registry

    async def discover_storages(self, names: list[str] | None = None) -> Registry:
        """Add storages that the records name (all, or `names`) but the registry lacks."""
        registry = self.registry
        if self._discovered:
            return registry
        async with self.session() as session:
            found = await discover_storages(
                session,
                registry,
                names=names,
                s3_endpoint_url=self.settings.s3_endpoint_url,
                s3_region=self.settings.s3_region,
            )
        self._discovered = names is None
        if found.storages:
            self._registry = Registry(registries=[registry], storages=found.storages)
        self.not_collected.update(found.not_collected)
        if not self.args.quiet:
            for note in found.notes:
                sys.stderr.write(f"lakery: note: {note}\n")
        return self.registry

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


def registry_modules(settings: Settings) -> list[str]:
    """The default modules, then the configured ones (each once)."""
    return list(dict.fromkeys([*default_registry_modules(), *settings.registry_modules]))


def open_context(args: argparse.Namespace, settings: Settings, *, needs_tables: bool) -> Context:
    """The engine for `settings` (it connects lazily); the registry is built on demand."""
    if not settings.database_url:
        msg = (
            f"no database: pass --database-url URL, set {ENV_DATABASE_URL}, or set "
            f"database_url in {CONFIG_FILE} (or the file given with --config)"
        )
        raise ConfigurationError(msg)
    url = normalize_database_url(settings.database_url)
    engine = _create_engine(url, must_exist=needs_tables)
    progress = ProgressLine(sys.stderr, enabled=not args.quiet)
    return Context(args, settings, engine, url, progress, sys.stdout, sys.stdin)


def _build_registry(settings: Settings) -> Registry:
    if settings.registry_modules and os.getcwd() not in sys.path:
        # as with `python -m`: the project's own modules, from where the command runs
        # (appended: never shadows an installed module)
        sys.path.append(os.getcwd())
    storages = [
        parse_storage(text, s3_endpoint_url=settings.s3_endpoint_url, s3_region=settings.s3_region)
        for text in settings.storage_urls
    ]
    try:
        return Registry(modules=registry_modules(settings), storages=storages)
    except ConfigurationError as exc:
        if "named" in str(exc) and storages:
            msg = f"{exc} (give each --storage-url its own name: NAME=URL)"
            raise ConfigurationError(msg) from None
        raise


def _create_engine(url: str, *, must_exist: bool) -> AsyncEngine:
    """`lakery.config.create_engine`; an SQLite file that must exist is checked first (a
    command other than ``db upgrade`` never creates a database)."""
    parsed = make_url(url)
    database = parsed.database or ""
    is_file = parsed.get_backend_name() == "sqlite" and not is_in_memory(url)
    if must_exist and is_file and not Path(database).exists():
        msg = f"no SQLite database at {database}; check --database-url"
        raise ConfigurationError(msg)
    return create_engine(url)
