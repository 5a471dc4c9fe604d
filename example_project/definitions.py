"""The code location: assets, two jobs, and the lakery resources and IO managers.

Two IO managers share one records database: ``io_manager`` keeps content in local files
under the data folder; ``published_io_manager`` (used by `forecast_release` only) writes
to ``LAKERY_STORAGE_URL`` — S3 when it is an ``s3://bucket/prefix`` URL.
"""

from __future__ import annotations

import dagster as dg

from example_project.assets import PUBLISHED_IO_MANAGER
from example_project.assets import cycle_fit
from example_project.assets import daily_features
from example_project.assets import forecast_release
from example_project.assets import raw_measurements
from example_project.assets import readings_archive
from example_project.assets import readings_table
from example_project.assets import sensor_summary
from example_project.assets import site_report
from example_project.settings import DATABASE_ENV
from example_project.settings import ExampleSettings
from lakery_dagster import DEFAULT_REGISTRY_MODULES
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource

__all__ = [
    "DAILY_JOB",
    "REPORTING_JOB",
    "build_defs",
    "lakery_resources",
]

DAILY_JOB = "daily_pipeline"
REPORTING_JOB = "reporting"
REGISTRY_MODULES = [*DEFAULT_REGISTRY_MODULES, "example_project.storables"]

ASSETS = [
    raw_measurements,
    daily_features,
    cycle_fit,
    site_report,
    readings_archive,
    forecast_release,
    readings_table,
    sensor_summary,
]


def lakery_resources(settings: ExampleSettings) -> tuple[LakeryResource, LakeryResource]:
    """The resources of the ``io_manager`` (local files) and of the published release."""
    # A URL from the environment is read at run time and never shown in the UI.
    database_url = dg.EnvVar(DATABASE_ENV) if settings.database_from_env else settings.database_url
    files = LakeryResource(
        database_url=database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.files_dir.as_uri(),
        viewer_url=settings.viewer_url,
    )
    published = LakeryResource(
        database_url=database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.published_storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        viewer_url=settings.viewer_url,
    )
    return files, published


def build_defs(settings: ExampleSettings | None = None) -> dg.Definitions:
    """The example's definitions for `settings` (default: from the environment)."""
    settings = settings or ExampleSettings.from_env()
    files, published = lakery_resources(settings)
    return dg.Definitions(
        assets=ASSETS,
        jobs=[
            dg.define_asset_job(
                DAILY_JOB,
                selection=[raw_measurements, daily_features, cycle_fit, readings_table],
                description="One day: readings, features, the 7-day model fit, the table.",
            ),
            dg.define_asset_job(
                REPORTING_JOB,
                selection=[site_report, readings_archive, forecast_release, sensor_summary],
                description="The report, the archive, the release and the sensor summary.",
            ),
        ],
        resources={
            "io_manager": LakeryIOManager(lakery=files),
            PUBLISHED_IO_MANAGER: LakeryIOManager(lakery=published),
            "lakery": files,
        },
        # Small steps: running them in the run's own process is faster than a process per
        # step. lakery works with the multiprocess executor too.
        executor=dg.in_process_executor,
    )
