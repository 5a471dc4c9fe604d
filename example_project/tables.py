"""The example's tables: a day of readings as a pandas frame, a sensor summary in polars.

Pure functions, like `example_project.analysis`. `readings_frame` is what the
``readings_table`` asset returns (saved as Parquet by ``lakery.extra.pandas``);
`sensor_summary` gets every day of it concatenated, with only the columns it reads, as
one polars frame (the IO manager converts through Arrow).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from example_project.storables import DailyMeasurements

__all__ = ["SUMMARY_COLUMNS", "readings_frame", "sensor_summary"]

SUMMARY_COLUMNS = ["time", "sensor", "temperature_c"]
"""The columns of ``readings_table`` that `sensor_summary` reads."""


def readings_frame(raw: DailyMeasurements) -> pd.DataFrame:
    """One row per sensor and minute: UTC time, sensor (categorical), temperature, humidity."""
    sensors, minutes = raw.temperature_c.shape
    start = pd.Timestamp(raw.day, tz="UTC")
    times = start + pd.to_timedelta(raw.minute.astype(np.int64), unit="min")
    return pd.DataFrame(
        {
            "time": np.tile(times, sensors),
            "sensor": pd.Categorical(np.repeat(raw.sensors, minutes), categories=raw.sensors),
            "temperature_c": raw.temperature_c.reshape(-1),
            "humidity_pct": raw.humidity_pct.reshape(-1),
        }
    )


def sensor_summary(readings: pl.DataFrame) -> pl.DataFrame:
    """Per day and sensor: readings, mean, minimum and maximum temperature."""
    return (
        readings.with_columns(
            pl.col("time").dt.date().cast(pl.String).alias("day"),
            pl.col("sensor").cast(pl.String),
        )
        .group_by("day", "sensor", maintain_order=True)
        .agg(
            pl.len().alias("readings"),
            pl.col("temperature_c").mean().round(3).alias("mean_c"),
            pl.col("temperature_c").min().alias("min_c"),
            pl.col("temperature_c").max().alias("max_c"),
        )
        .sort("day", "sensor")
    )
