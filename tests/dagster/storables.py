"""Storable classes used by the Dagster tests (importable, for step subprocesses too)."""

from __future__ import annotations

from dataclasses import dataclass

from lakery.builtin import StorableDataclass


@dataclass
class Reading(StorableDataclass, class_id="7e57da7a0000000000000000000000a1"):
    """A small storable with two parts."""

    sensor: str
    values: list[float]
