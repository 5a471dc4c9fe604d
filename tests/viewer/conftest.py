"""Fixtures of the viewer's tests: the demo store on SQLite and PostgreSQL, and a
Starlette TestClient of the viewer over it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from lakery import Registry
from lakery.viewer import ViewerStore
from lakery.viewer import create_app
from tests.conftest import empty_postgres
from tests.viewer.demo import Demo
from tests.viewer.demo import fill_store
from tests.viewer.demo import make_registry

DAGSTER_URL = "http://dagster.invalid:3000"


@dataclass
class Viewer:
    client: TestClient
    demo: Demo
    registry: Registry
    files: Path
    database_url: str


@pytest.fixture
def viewer(database_url: str, tmp_path: Path) -> Iterator[Viewer]:
    files = tmp_path / "files"
    postgres = database_url.startswith("postgresql")
    if postgres:
        asyncio.run(empty_postgres(database_url))
    demo = asyncio.run(fill_store(database_url, files, create=not postgres))
    # NullPool: the TestClient runs the app on a loop of its own; no connection is shared
    engine = create_async_engine(database_url, poolclass=NullPool)
    registry = make_registry(files)
    store = ViewerStore(async_sessionmaker(engine, expire_on_commit=False), registry)
    app = create_app(store, dagster_url=DAGSTER_URL, page_size=3)
    with TestClient(app) as client:
        yield Viewer(client, demo, registry, files, database_url)
    asyncio.run(engine.dispose())
