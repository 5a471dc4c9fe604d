"""The example's assets: daily readings → features → a model over a 7-day window → report.

=====================  ============  =====================================================
asset                  partitions    output (every one a lakery manifest)
=====================  ============  =====================================================
``raw_measurements``   daily         `DailyMeasurements`: JSON body + three ``.npy`` parts
``daily_features``     daily         `DailyFeatures` of the same day
``cycle_fit``          daily         `CycleFit` over the features of the last 7 days
``site_report``        none          `SiteReport` from every day's fit and features
``readings_archive``   none          `ReadingsArchive`: all readings, streamed as JSON lines
``readings_table``     daily         a pandas ``DataFrame`` of the day's readings (Parquet)
``sensor_summary``     none          a polars ``DataFrame``: per day and sensor, from every
                                     day's table concatenated (three of its columns)
``forecast_release``   none          `ForecastRelease`, saved where ``LAKERY_STORAGE_URL``
                                     says (S3 or files) by the ``published`` IO manager
=====================  ============  =====================================================

The assets are plain functions of their inputs: the IO manager loads the inputs from
lakery (one bulk load for a window or all partitions) and saves the outputs, tagging each
manifest with its asset, partition, run and input manifests.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations of asset
# functions (a `context` annotated with a string is refused).
import dagster as dg
import pandas as pd
import polars as pl
from dagster import AssetExecutionContext

from example_project.analysis import ARCHIVE_COLUMNS
from example_project.analysis import archive_rows
from example_project.analysis import features_of
from example_project.analysis import fit_cycle
from example_project.analysis import release_of
from example_project.analysis import report_of
from example_project.analysis import simulate_day
from example_project.storables import CycleFit
from example_project.storables import DailyFeatures
from example_project.storables import DailyMeasurements
from example_project.storables import ForecastRelease
from example_project.storables import ReadingsArchive
from example_project.storables import SiteReport
from example_project.tables import SUMMARY_COLUMNS
from example_project.tables import readings_frame
from example_project.tables import sensor_summary as summarize_sensors

__all__ = [
    "DAYS",
    "PUBLISHED_IO_MANAGER",
    "WINDOW_DAYS",
    "cycle_fit",
    "daily_features",
    "forecast_release",
    "raw_measurements",
    "readings_archive",
    "readings_table",
    "sensor_summary",
    "site_report",
]

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-15")
"""Fourteen days, 2026-01-01 to 2026-01-14."""
WINDOW_DAYS = 7
PUBLISHED_IO_MANAGER = "published_io_manager"


def _tags(stage: str) -> dict[str, dict[str, str]]:
    """Definition metadata that the IO manager turns into manifest tags."""
    return {"lakery/tags": {"project": "lakery-example", "stage": stage}}


@dg.asset(
    partitions_def=DAYS,
    group_name="measurements",
    code_version="1",
    metadata=_tags("raw"),
)
def raw_measurements(context: AssetExecutionContext) -> DailyMeasurements:
    """A day of per-minute temperature and humidity readings of eight sensors (simulated)."""
    raw = simulate_day(context.partition_key)
    context.add_output_metadata({"readings": int(raw.temperature_c.size)})
    return raw


@dg.asset(
    partitions_def=DAYS,
    group_name="measurements",
    code_version="1",
    metadata=_tags("features"),
)
def daily_features(
    context: AssetExecutionContext, raw_measurements: DailyMeasurements
) -> DailyFeatures:
    """Hourly means, daily minimum, maximum and mean, and glitches per sensor."""
    features = features_of(raw_measurements)
    context.add_output_metadata({"glitches": sum(features.glitches.values())})
    return features


@dg.asset(
    partitions_def=DAYS,
    group_name="modelling",
    code_version="1",
    metadata=_tags("model"),
    ins={
        "daily_features": dg.AssetIn(
            # This day and the six before it (fewer at the start of the partitions).
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=1 - WINDOW_DAYS),
            # Fit on the days that exist when some of the window was never materialized.
            metadata={"lakery/allow_missing": True},
        )
    },
)
def cycle_fit(context: AssetExecutionContext, daily_features: dict[str, DailyFeatures]) -> CycleFit:
    """A daily-cycle model per sensor, fitted on the last seven days of hourly means."""
    fit = fit_cycle(context.partition_key, daily_features)
    context.add_output_metadata(
        {
            "window_days": len(fit.window),
            "mean_fit_error_c": float(fit.residual_std_c.mean()),
        }
    )
    return fit


@dg.asset(group_name="reporting", code_version="1", metadata=_tags("report"))
def site_report(
    context: AssetExecutionContext,
    cycle_fit: dict[str, CycleFit],
    daily_features: dict[str, DailyFeatures],
) -> SiteReport:
    """Tomorrow's forecast from the newest model, how the models changed, all glitches."""
    report = report_of(cycle_fit, daily_features)
    context.add_output_metadata(
        {"report": dg.MetadataValue.md(report.summary), "forecast_day": report.forecast_day}
    )
    return report


@dg.asset(group_name="reporting", code_version="1", metadata=_tags("archive"))
def readings_archive(
    context: AssetExecutionContext, raw_measurements: dict[str, DailyMeasurements]
) -> ReadingsArchive:
    """Every reading of every day as JSON lines: a stream, written as it is produced."""
    count = sum(m.temperature_c.size for m in raw_measurements.values())
    context.add_output_metadata({"rows": count})
    return ReadingsArchive(
        days=sorted(raw_measurements),
        columns=ARCHIVE_COLUMNS,
        row_count=count,
        rows=archive_rows(raw_measurements),
    )


@dg.asset(
    group_name="reporting",
    code_version="1",
    metadata=_tags("release"),
    io_manager_key=PUBLISHED_IO_MANAGER,
)
def forecast_release(site_report: SiteReport) -> ForecastRelease:
    """The forecast as published: to S3 when ``LAKERY_STORAGE_URL`` is an ``s3://`` URL."""
    return release_of(site_report)


@dg.asset(
    partitions_def=DAYS,
    group_name="measurements",
    code_version="1",
    metadata=_tags("table"),
)
def readings_table(raw_measurements: DailyMeasurements) -> pd.DataFrame:
    """The day's readings as a table: one row per sensor and minute (Parquet, via pandas)."""
    return readings_frame(raw_measurements)


@dg.asset(
    group_name="reporting",
    code_version="1",
    metadata=_tags("summary"),
    ins={
        "readings_table": dg.AssetIn(
            # Every day's table as one frame, with only the columns the summary reads.
            metadata={"lakery/concat": True, "columns": SUMMARY_COLUMNS},
        )
    },
)
def sensor_summary(context: AssetExecutionContext, readings_table: pl.DataFrame) -> pl.DataFrame:
    """Per day and sensor: readings, mean, minimum and maximum temperature (polars)."""
    summary = summarize_sensors(readings_table)
    context.add_output_metadata({"days": summary["day"].n_unique()})
    return summary
