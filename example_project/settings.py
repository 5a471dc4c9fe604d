"""Where the example keeps its data, read from the environment.

====================================  ==================================================
variable                              default
====================================  ==================================================
``LAKERY_EXAMPLE_DIR``                ``.lakery/example`` at the root of the repository
``LAKERY_DATABASE_URL``               ``sqlite+aiosqlite:///<dir>/lakery.db``
``LAKERY_STORAGE_URL``                ``<dir>/published`` (the `forecast_release` asset)
``LAKERY_S3_ENDPOINT_URL``            empty (AWS); set it for MinIO, moto, ...
``LAKERY_S3_REGION``                  empty (the AWS chain's region)
====================================  ==================================================

Everything but the published release is written to ``<dir>/files``; Dagster's own
instance lives in ``<dir>/dagster_home`` when the runner (`example_project.run`) makes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATABASE_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "S3_ENDPOINT_ENV",
    "S3_REGION_ENV",
    "STORAGE_ENV",
    "VIEWER_ENV",
    "ExampleSettings",
]

DATA_DIR_ENV = "LAKERY_EXAMPLE_DIR"
DATABASE_ENV = "LAKERY_DATABASE_URL"
STORAGE_ENV = "LAKERY_STORAGE_URL"
S3_ENDPOINT_ENV = "LAKERY_S3_ENDPOINT_URL"
S3_REGION_ENV = "LAKERY_S3_REGION"
VIEWER_ENV = "LAKERY_VIEWER_URL"
DEFAULT_VIEWER_URL = "http://127.0.0.1:8321"
"""Where the printed ``lakery serve`` command listens; materializations link there."""

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".lakery" / "example"
"""``.lakery/example`` next to ``example_project/`` (the repository root)."""


@dataclass(frozen=True)
class ExampleSettings:
    """The example's data folder, database and storages.

    Attributes:
        data_dir: the project data folder (absolute).
        database_url: the records database; from ``LAKERY_DATABASE_URL`` or an SQLite file.
        database_from_env: whether `database_url` came from the environment (then the
            resources read it with ``dg.EnvVar`` so that it never shows in the UI).
        published_storage_url: where `forecast_release` is written (``s3://...`` or files).
        storage_from_env: whether `published_storage_url` came from ``LAKERY_STORAGE_URL``.
        s3_endpoint_url: endpoint of an S3-compatible server, or empty.
        s3_region: region of the bucket, or empty.
        viewer_url: the ``lakery serve`` that materializations link to (``LAKERY_VIEWER_URL``,
            default http://127.0.0.1:8321).
    """

    data_dir: Path
    database_url: str
    database_from_env: bool
    published_storage_url: str
    s3_endpoint_url: str = ""
    s3_region: str = ""
    storage_from_env: bool = False
    viewer_url: str = DEFAULT_VIEWER_URL

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, data_dir: Path | None = None
    ) -> ExampleSettings:
        """Settings from the environment (`data_dir` overrides ``LAKERY_EXAMPLE_DIR``)."""
        env = os.environ if environ is None else environ
        folder = data_dir or Path(env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
        folder = folder.expanduser().resolve()
        database = env.get(DATABASE_ENV, "").strip()
        storage = env.get(STORAGE_ENV, "").strip()
        return cls(
            data_dir=folder,
            database_url=database or f"sqlite+aiosqlite:///{folder / 'lakery.db'}",
            database_from_env=bool(database),
            published_storage_url=storage or str(folder / "published"),
            s3_endpoint_url=env.get(S3_ENDPOINT_ENV, "").strip(),
            s3_region=env.get(S3_REGION_ENV, "").strip(),
            storage_from_env=bool(storage),
            viewer_url=env.get(VIEWER_ENV, "").strip() or DEFAULT_VIEWER_URL,
        )

    @property
    def lakery_env(self) -> dict[str, str]:
        """The ``LAKERY_*`` variables (but the data folder) that this run was given."""
        given = {
            DATABASE_ENV: self.database_url if self.database_from_env else "",
            STORAGE_ENV: self.published_storage_url if self.storage_from_env else "",
            S3_ENDPOINT_ENV: self.s3_endpoint_url,
            S3_REGION_ENV: self.s3_region,
            VIEWER_ENV: self.viewer_url if self.viewer_url != DEFAULT_VIEWER_URL else "",
        }
        return {name: value for name, value in given.items() if value}

    @property
    def files_dir(self) -> Path:
        """Where every asset but the published release keeps its content."""
        return self.data_dir / "files"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance folder that the runner uses unless DAGSTER_HOME is set."""
        return self.data_dir / "dagster_home"

    @property
    def publishes_to_s3(self) -> bool:
        return self.published_storage_url.lower().startswith("s3://")
