"""Alembic environment of lakery's migrations.

`lakery.maintenance.upgrade_database` (``lakery db upgrade``) runs the migrations on a
connection of an async engine that it passes in ``config.attributes["connection"]``.
Run by the ``alembic`` command instead, this opens an engine (`lakery.config.create_engine`)
on the ``sqlalchemy.url`` option or, without one, on ``LAKERY_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.engine import make_url

from lakery.config.database import normalize_database_url
from lakery.config.engine import create_engine
from lakery.core.records import BaseRecord
from lakery.migrations.objects import VERSION_TABLE
from lakery.migrations.objects import object_filter

config = context.config


def _configure(dialect: str, **options: Any) -> None:
    context.configure(
        target_metadata=BaseRecord.metadata,
        version_table=VERSION_TABLE,
        include_object=object_filter(dialect),
        compare_type=True,
        **options,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection.dialect.name, connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(normalize_database_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LAKERY_DATABASE_URL")
    if not url:
        msg = "set sqlalchemy.url in the Alembic configuration or LAKERY_DATABASE_URL"
        raise RuntimeError(msg)
    return url


if context.is_offline_mode():
    url = _url()
    _configure(make_url(url).get_backend_name(), url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_async(_url()))
