"""What the example stores: pydantic models with numpy arrays, a stream and a CSV table.

Every class pins its ``class_id``: stored data names the class by that id, so these
classes can be renamed or moved without making old data unreadable. Listed in
``__all__``, they are also the storables of the registry built from this module
(``registry_modules=[..., "example_project.storables"]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated
from typing import Any

import numpy as np

from lakery.builtin import CsvSerializer
from lakery.builtin import JsonStreamSerializer
from lakery.extra.pydantic import ContentSpec
from lakery.extra.pydantic import StorableModel

__all__ = [
    "CycleFit",
    "DailyFeatures",
    "DailyMeasurements",
    "ForecastRelease",
    "ReadingsArchive",
    "SiteReport",
]

TERMS = ("intercept", "sin_24h", "cos_24h", "sin_12h", "cos_12h", "trend_per_day")
"""The columns of `CycleFit.coefficients`."""


class DailyMeasurements(StorableModel, class_id="664177cdda014b60b20ec1cad51b5718", frozen=True):
    """One day of readings from every sensor of a greenhouse site, one per minute.

    Stored as a JSON body (day, sensors, site) and one ``.npy`` part per array.
    """

    day: str
    sensors: list[str]
    site: dict[str, str]
    minute: np.ndarray
    """Minute of the day of each column, shape ``(1440,)``."""
    temperature_c: np.ndarray
    """Shape ``(sensors, minutes)``, float32."""
    humidity_pct: np.ndarray
    """Shape ``(sensors, minutes)``, float32."""


class DailyFeatures(StorableModel, class_id="cafa365317cd421fac9f197f4143d03a", frozen=True):
    """Hourly means and per-sensor statistics of one day, and the glitches found in it."""

    day: str
    sensors: list[str]
    hourly_temperature_c: np.ndarray
    """Shape ``(sensors, 24)``: the mean of each hour."""
    hourly_humidity_pct: np.ndarray
    mean_c: dict[str, float]
    min_c: dict[str, float]
    max_c: dict[str, float]
    glitches: dict[str, int]
    """Readings far off their hour's mean (a sensor glitch), per sensor."""


class CycleFit(StorableModel, class_id="deb9f306e9634d968b97d8bd4c275b93", frozen=True):
    """A daily-cycle model per sensor, fitted on the hourly means of a window of days.

    ``temperature(hour, day) = c0 + c1 sin(2πh/24) + c2 cos(2πh/24) + c3 sin(2πh/12)
    + c4 cos(2πh/12) + c5 day`` with ``day`` counted from `day` (0) backwards.
    """

    day: str
    window: list[str]
    """The days the model was fitted on (up to seven, ending at `day`)."""
    sensors: list[str]
    terms: list[str]
    coefficients: np.ndarray
    """Shape ``(sensors, len(terms))``, float64."""
    residual_std_c: np.ndarray
    """Shape ``(sensors,)``: how far the hourly means are from the fit."""

    def predict(self, day_offset: float) -> np.ndarray:
        """Hourly temperatures ``(sensors, 24)`` for the day `day_offset` days after `day`."""
        hours = np.arange(24) + 0.5
        design = cycle_design(hours, np.full(24, float(day_offset)))
        return self.coefficients @ design.T

    @property
    def amplitude_c(self) -> np.ndarray:
        """Half the day-night swing of each sensor, from the 24-hour terms."""
        return np.hypot(self.coefficients[:, 1], self.coefficients[:, 2])


class SiteReport(StorableModel, class_id="a92fb59b83ec4903997af44e3ea4c7c1", frozen=True):
    """The site's state after the last day: tomorrow's forecast, trends and glitches."""

    last_day: str
    forecast_day: str
    sensors: list[str]
    forecast_c: np.ndarray
    """Shape ``(sensors, 24)``: the hourly forecast for `forecast_day`."""
    model_days: list[str]
    amplitude_history_c: np.ndarray
    """Shape ``(days, sensors)``: the fitted half day-night swing of each day's model."""
    glitches: dict[str, int]
    summary: str
    """The report as Markdown."""


class ReadingsArchive(StorableModel, class_id="bcf149046a484a09af610c6c195aba73"):
    """Every raw reading as JSON lines, written as a stream (never whole in memory).

    Loaded back, `rows` is an async iterator that reads (and at its end verifies) the
    stored stream as it is consumed.
    """

    days: list[str]
    columns: list[str]
    row_count: int
    rows: Annotated[
        AsyncIterable[dict[str, Any]],
        ContentSpec(serializer=JsonStreamSerializer, tags={"format": "jsonl"}),
    ]


class ForecastRelease(StorableModel, class_id="65a0ce1b740b4ce38674a7f2caf29b52", frozen=True):
    """What the site publishes: tomorrow's forecast as a CSV table and as an array.

    Saved by the ``published`` IO manager, whose storage is ``LAKERY_STORAGE_URL``
    (an ``s3://bucket/prefix`` URL puts it on S3).
    """

    release: str
    valid_for: str
    table: Annotated[list[dict[str, str]], ContentSpec(serializer=CsvSerializer)]
    """One row per sensor and hour: ``sensor, hour, temperature_c`` (as text)."""
    forecast_c: np.ndarray


def cycle_design(hours: np.ndarray, day_index: np.ndarray) -> np.ndarray:
    """The design matrix of `CycleFit`: one row per (hour, day), one column per term."""
    day_angle = 2 * np.pi * hours / 24
    return np.column_stack(
        [
            np.ones_like(hours, dtype=float),
            np.sin(day_angle),
            np.cos(day_angle),
            np.sin(2 * day_angle),
            np.cos(2 * day_angle),
            day_index.astype(float),
        ]
    )
