"""Fixtures of the maintenance tests: a file storage, a registry, throwaway databases.

The S3 fixtures (a moto server on 127.0.0.1 and fresh buckets) are tests/extra_aws's.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from lakery import Registry
from lakery.builtin import FileStorage
from tests.conftest import POSTGRES_URL
from tests.conftest import admin_sql
from tests.extra_aws.conftest import REGION  # noqa: F401
from tests.extra_aws.conftest import aws_environment  # noqa: F401
from tests.extra_aws.conftest import bucket  # noqa: F401
from tests.extra_aws.conftest import make_storage  # noqa: F401
from tests.extra_aws.conftest import moto_endpoint  # noqa: F401
from tests.extra_aws.conftest import raw_s3  # noqa: F401
from tests.maintenance.helpers import DocUnpacker


@pytest.fixture
def files(tmp_path: Path) -> FileStorage:
    return FileStorage(tmp_path / "files", name="files")


@pytest.fixture
def store(files: FileStorage) -> Registry:
    """Built-ins (the database storage by default) and the "files" storage."""
    return Registry(modules=["lakery.builtin"], storages=[files], unpackers=[DocUnpacker()])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes databases with no tables at all: new SQLite files, or new PostgreSQL databases
    (dropped afterwards)."""
    made: list[str] = []

    def make() -> str:
        name = f"lakery_maint_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / name}.db"
        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    if request.param == "postgresql":
        request.getfixturevalue("postgres_base_url")  # skips (or fails in CI) without a server
    yield make
    for name in made:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
