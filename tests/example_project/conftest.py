"""Fixtures for the example project: its environment on a test database and tmp folders.

The example reads its configuration from the environment (see `example_project.settings`);
`example_env` points it at the parametrized test database (SQLite file or PostgreSQL,
emptied first), a temporary data folder and a temporary Dagster instance, with Dagster's
telemetry off so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from example_project.settings import DATA_DIR_ENV
from example_project.settings import DATABASE_ENV
from example_project.settings import S3_ENDPOINT_ENV
from example_project.settings import S3_REGION_ENV
from example_project.settings import STORAGE_ENV
from example_project.settings import ExampleSettings
from tests.conftest import empty_postgres

TELEMETRY_OFF = "telemetry:\n  enabled: false\n"


@dataclass(frozen=True)
class ExampleEnv:
    """Where one test's example lives."""

    data_dir: Path
    dagster_home: Path
    database_url: str

    @property
    def settings(self) -> ExampleSettings:
        return ExampleSettings.from_env()


def make_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(TELEMETRY_OFF)
    return path


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No example or AWS settings from the machine running the tests."""
    for name in (DATA_DIR_ENV, DATABASE_ENV, STORAGE_ENV, S3_ENDPOINT_ENV, S3_REGION_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def example_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExampleEnv:
    """The example configured for the test database, a tmp data folder and Dagster home."""
    clean_environment(monkeypatch)
    if database_url.startswith("postgresql"):
        asyncio.run(empty_postgres(database_url))
    monkeypatch.setenv(DATABASE_ENV, database_url)
    data_dir = tmp_path / "example"
    home = make_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    settings = ExampleSettings.from_env()
    return ExampleEnv(data_dir=data_dir, dagster_home=home, database_url=settings.database_url)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one's, with `extra` and no proxies."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXIES}
    env.update(extra)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


_PROXIES = {"http_proxy", "https_proxy", "all_proxy"}
