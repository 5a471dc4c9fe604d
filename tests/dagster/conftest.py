"""Fixtures for the Dagster integration: a clean lakery database, resources, an instance."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests import conftest as root_conftest


@pytest.fixture
def lakery_url(database_url: str) -> str:
    """The parametrized database (SQLite file or PostgreSQL), with empty lakery tables."""
    if database_url.startswith("postgresql"):
        asyncio.run(root_conftest.empty_postgres(database_url))
        # The shared `engine` fixture then truncates too, instead of assuming empty tables.
    return database_url


@pytest.fixture
def lakery(lakery_url: str) -> Iterator[LakeryResource]:
    resource = LakeryResource(database_url=lakery_url)
    yield resource
    resource.close()


@pytest.fixture
def resources(lakery: LakeryResource) -> dict[str, object]:
    return {"io_manager": LakeryIOManager(lakery=lakery), "lakery": lakery}


@pytest.fixture
def instance() -> dg.DagsterInstance:
    """An in-memory instance shared by the runs of one test (so inputs find materializations)."""
    return dg.DagsterInstance.ephemeral()


def lakery_error(error: BaseException) -> BaseException:
    """The lakery error behind a Dagster error (following causes), else `error` itself."""
    from lakery import LakeryError

    seen = error
    while seen is not None:
        if isinstance(seen, LakeryError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


_DAGSTER_NOISE = [
    "ignore:Parameter `backfill_policy`.*is currently in beta",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            for noise in _DAGSTER_NOISE:
                item.add_marker(pytest.mark.filterwarnings(noise))
