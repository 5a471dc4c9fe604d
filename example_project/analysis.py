"""The example's numbers: simulated sensors, features, a model fit and a report.

Pure functions of their inputs (no I/O, no Dagster), so the assets stay thin and the same
day always gives the same arrays: re-materializing stores nothing new (identical content
is kept once) and leaves the data versions unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from datetime import date
from datetime import timedelta
from typing import Any

import numpy as np

from example_project.storables import TERMS
from example_project.storables import CycleFit
from example_project.storables import DailyFeatures
from example_project.storables import DailyMeasurements
from example_project.storables import ForecastRelease
from example_project.storables import SiteReport
from example_project.storables import cycle_design

__all__ = [
    "ARCHIVE_COLUMNS",
    "SENSORS",
    "archive_rows",
    "features_of",
    "fit_cycle",
    "release_of",
    "report_of",
    "simulate_day",
]

SENSORS = (
    "north-bed",
    "south-bed",
    "east-wall",
    "west-wall",
    "roof-vent",
    "propagation",
    "cold-frame",
    "store-room",
)
SITE = {"site": "greenhouse-7", "timezone": "UTC", "source": "simulated"}
MINUTES = 24 * 60
SEED = 20260101
FIRST_DAY = date(2026, 1, 1)
GLITCH_THRESHOLD_C = 4.0
ARCHIVE_COLUMNS = ["day", "minute", "sensor", "temperature_c", "humidity_pct"]


def simulate_day(day: str, sensors: tuple[str, ...] = SENSORS) -> DailyMeasurements:
    """Readings of one day: a daily cycle per sensor, weather, noise and a few glitches.

    Deterministic: the random generator is seeded with the day.
    """
    when = date.fromisoformat(day)
    rng = np.random.default_rng([SEED, when.toordinal()])
    n = len(sensors)
    index = np.arange(n)
    minute = np.arange(MINUTES, dtype=np.int16)
    angle = 2 * np.pi * (minute / MINUTES - 0.375)  # warmest around 15:00
    base = 16.0 + 1.5 * index  # each sensor sits somewhere warmer or colder
    swing = 2.5 + 0.75 * (index % 3)
    weather = rng.normal(0.0, 0.8) + 0.1 * (when - FIRST_DAY).days  # a slow warming trend
    temperature = (
        base[:, None]
        + weather
        + swing[:, None] * np.sin(angle)[None, :]
        + rng.normal(0.0, 0.25, size=(n, MINUTES))
    )
    for _ in range(int(rng.poisson(3))):  # sensor glitches: one reading far off
        sensor, at = rng.integers(n), rng.integers(MINUTES)
        temperature[sensor, at] += rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 10.0)
    humidity = np.clip(
        75.0 - 2.0 * (temperature - base[:, None]) + rng.normal(0.0, 1.5, size=(n, MINUTES)),
        5.0,
        100.0,
    )
    return DailyMeasurements(
        day=day,
        sensors=list(sensors),
        site=dict(SITE),
        minute=minute,
        temperature_c=temperature.astype(np.float32),
        humidity_pct=humidity.astype(np.float32),
    )


def features_of(raw: DailyMeasurements) -> DailyFeatures:
    """Hourly means, daily statistics and glitch counts of one day."""
    temperature = raw.temperature_c.astype(np.float64)
    n = len(raw.sensors)
    hourly = temperature.reshape(n, 24, 60)
    off_hour_mean = np.abs(hourly - np.median(hourly, axis=2, keepdims=True))
    glitches = (off_hour_mean > GLITCH_THRESHOLD_C).sum(axis=(1, 2))
    return DailyFeatures(
        day=raw.day,
        sensors=list(raw.sensors),
        hourly_temperature_c=hourly.mean(axis=2),
        hourly_humidity_pct=raw.humidity_pct.astype(np.float64).reshape(n, 24, 60).mean(axis=2),
        mean_c=_per_sensor(raw.sensors, temperature.mean(axis=1)),
        min_c=_per_sensor(raw.sensors, temperature.min(axis=1)),
        max_c=_per_sensor(raw.sensors, temperature.max(axis=1)),
        glitches={s: int(v) for s, v in zip(raw.sensors, glitches, strict=True)},
    )


def _per_sensor(sensors: list[str], values: np.ndarray) -> dict[str, float]:
    return {s: round(float(v), 3) for s, v in zip(sensors, values, strict=True)}


def fit_cycle(day: str, window: Mapping[str, DailyFeatures]) -> CycleFit:
    """Least-squares fit of the daily cycle (and a trend) on the hourly means of `window`."""
    if not window:
        msg = f"no daily features to fit the model of {day} on"
        raise ValueError(msg)
    days = sorted(window)
    end = date.fromisoformat(day)
    hours = np.tile(np.arange(24) + 0.5, len(days))
    day_index = np.repeat([(date.fromisoformat(d) - end).days for d in days], 24)
    design = cycle_design(hours, day_index)
    observed = np.concatenate([window[d].hourly_temperature_c for d in days], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, observed.T, rcond=None)
    residual = observed - (design @ coefficients).T
    return CycleFit(
        day=day,
        window=days,
        sensors=list(window[days[-1]].sensors),
        terms=list(TERMS),
        coefficients=coefficients.T,
        residual_std_c=residual.std(axis=1),
    )


def report_of(fits: Mapping[str, CycleFit], features: Mapping[str, DailyFeatures]) -> SiteReport:
    """Tomorrow's forecast from the last day's model, the swing of every day's model, and
    the glitches of all days."""
    days = sorted(fits)
    last = fits[days[-1]]
    forecast = last.predict(1.0)
    forecast_day = (date.fromisoformat(last.day) + timedelta(days=1)).isoformat()
    glitches = {s: sum(f.glitches.get(s, 0) for f in features.values()) for s in last.sensors}
    lines = [
        f"# Forecast for {forecast_day}",
        "",
        f"From the daily-cycle model of {last.day} (fitted on {len(last.window)} days).",
        "",
        "| sensor | min °C | max °C | fit error °C | glitches |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for i, sensor in enumerate(last.sensors):
        lines.append(
            f"| {sensor} | {forecast[i].min():.1f} | {forecast[i].max():.1f} "
            f"| {last.residual_std_c[i]:.2f} | {glitches[sensor]} |"
        )
    return SiteReport(
        last_day=last.day,
        forecast_day=forecast_day,
        sensors=list(last.sensors),
        forecast_c=forecast,
        model_days=days,
        amplitude_history_c=np.stack([fits[d].amplitude_c for d in days]),
        glitches=glitches,
        summary="\n".join(lines) + "\n",
    )


def release_of(report: SiteReport) -> ForecastRelease:
    """The published form of a report's forecast."""
    table = [
        {"sensor": sensor, "hour": f"{hour:02d}", "temperature_c": f"{temperature:.2f}"}
        for sensor, hourly in zip(report.sensors, report.forecast_c, strict=True)
        for hour, temperature in enumerate(hourly)
    ]
    return ForecastRelease(
        release=f"forecast-{report.forecast_day}",
        valid_for=report.forecast_day,
        table=table,
        forecast_c=report.forecast_c.astype(np.float32),
    )


async def archive_rows(raw: Mapping[str, DailyMeasurements]) -> AsyncIterator[dict[str, Any]]:
    """Every reading of every day as a row, produced lazily (one day at a time)."""
    for day in sorted(raw):
        measurements = raw[day]
        temperature = np.round(measurements.temperature_c.astype(np.float64), 2).tolist()
        humidity = np.round(measurements.humidity_pct.astype(np.float64), 1).tolist()
        minutes = measurements.minute.tolist()
        for s, sensor in enumerate(measurements.sensors):
            for m, minute in enumerate(minutes):
                yield {
                    "day": day,
                    "minute": minute,
                    "sensor": sensor,
                    "temperature_c": temperature[s][m],
                    "humidity_pct": humidity[s][m],
                }
