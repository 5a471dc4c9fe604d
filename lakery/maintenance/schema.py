"""Schema migrations: bring a database's lakery tables up to date with Alembic.

The migration scripts ship in `lakery.migrations`; applied in order they build exactly
what `BaseRecord.create_all` creates, and their first revision (``"0001"``) is the schema
of lakery 0.1. A database whose tables were made by `create_all` (and never migrated) is
adopted: it is stamped at that first revision, then upgraded (later revisions skip what
already exists). The revision is kept in ``lakery_alembic_version``, so lakery's migrations do not
interfere with an Alembic setup of your own in the same database.

```python
from lakery.maintenance import downgrade_database
from lakery.maintenance import upgrade_database

change = await upgrade_database(engine)  # e.g. SchemaChange(before=None, after="0003")
await downgrade_database(engine, "0001")  # back to the schema of an older lakery
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from lakery.common.exceptions import ConfigurationError
from lakery.migrations.objects import BASELINE_TABLES
from lakery.migrations.objects import TABLES
from lakery.migrations.objects import VERSION_TABLE
from lakery.migrations.objects import object_filter

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BASELINE_REVISION",
    "HEAD_REVISION",
    "VERSION_TABLE",
    "SchemaChange",
    "alembic_config",
    "database_revision",
    "downgrade_database",
    "object_filter",
    "upgrade_database",
]

BASELINE_REVISION = "0001"
"""The revision equal to the schema of `BaseRecord.create_all` in lakery 0.1."""

HEAD_REVISION = "0003"
"""The newest revision: the schema `BaseRecord.create_all` creates now."""


@dataclass(frozen=True)
class SchemaChange:
    """The revision of lakery's schema before and after `upgrade_database`.

    Attributes:
        before: the revision found (None: no lakery tables, or tables never migrated).
        after: the revision now.
        adopted: the tables existed without a revision (made by `create_all`) and were
            stamped at `BASELINE_REVISION` first.
    """

    before: str | None
    after: str | None
    adopted: bool = False


def alembic_config() -> Config:
    """An Alembic `Config` for lakery's migrations (no ini file needed)."""
    from alembic.config import Config

    import lakery.migrations

    config = Config()
    config.set_main_option("script_location", str(Path(lakery.migrations.__file__).parent))
    return config


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision of lakery's schema in the database (None if never migrated)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> SchemaChange:
    """Upgrade lakery's tables to `revision` (default: the newest), in one transaction
    where the database supports transactional DDL (PostgreSQL, SQLite).

    Tables created by `BaseRecord.create_all` without migrations are adopted first
    (stamped at `BASELINE_REVISION`).
    """
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade, revision)


async def downgrade_database(engine: AsyncEngine, revision: str) -> SchemaChange:
    """Downgrade lakery's tables to an earlier `revision` (e.g. ``"0001"``, to go back to
    an older lakery), in one transaction where the database supports transactional DDL.

    Downgrading to nothing (``"base"``) would drop the tables and everything in them; it
    is refused: drop them yourself if that is what you want.
    """
    async with engine.begin() as connection:
        return await connection.run_sync(_downgrade, revision)


def _downgrade(connection: Connection, revision: str) -> SchemaChange:
    from alembic import command
    from alembic.script import ScriptDirectory

    if revision in ("base", "", None):
        msg = "refusing to downgrade to base: that drops lakery's tables and their records"
        raise ConfigurationError(msg)
    known = [
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    ]
    if revision not in known:
        msg = f"unknown revision {revision!r}; lakery's revisions are {', '.join(sorted(known))}"
        raise ConfigurationError(msg)
    before = _current_revision(connection)
    if before is None:
        msg = "the database has no lakery revision: run `lakery db upgrade` first"
        raise ConfigurationError(msg)
    if known.index(revision) < known.index(before):  # walk_revisions: newest first
        msg = f"revision {revision} is newer than the database's {before}: use db upgrade"
        raise ConfigurationError(msg)
    _run(connection, command.downgrade, revision)
    return SchemaChange(before, _current_revision(connection))


def _upgrade(connection: Connection, revision: str) -> SchemaChange:
    from alembic import command

    before = _current_revision(connection)
    adopted = False
    if before is None:
        present = [t for t in TABLES if inspect(connection).has_table(t)]
        if present and not set(BASELINE_TABLES) <= set(present):
            msg = (
                f"the database has only some of lakery's tables ({', '.join(present)}); "
                "restore the others or drop these before running the migrations"
            )
            raise ConfigurationError(msg)
        if present:
            _run(connection, command.stamp, BASELINE_REVISION)
            adopted = True
    _run(connection, command.upgrade, revision)
    return SchemaChange(before, _current_revision(connection), adopted)


def _run(connection: Connection, action: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    action(config, revision)


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
