"""Parsing the command line's values: tags, times, durations, storages.

Database URLs are checked by `lakery.config.database`, shared with `lakery_dagster`.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from lakery.common.exceptions import ConfigurationError
from lakery.config.storage_url import storage_from_url
from lakery.core.component import check_component_name
from lakery.core.storage import Storage

__all__ = [
    "parse_duration",
    "parse_storage",
    "parse_tag",
    "parse_time",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may be empty or contain ``=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"expected KEY=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return key, value


def parse_duration(text: str) -> timedelta:
    """``90`` or ``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        msg = f"expected a duration such as 30s, 15m, 24h or 7d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    unit = (match[2] or "s").lower()
    return timedelta(seconds=float(match[1]) * _UNITS[unit])


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration meaning "ago"."""
    if _DURATION.match(text):
        return datetime.now(UTC) - parse_duration(text)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        msg = f"expected an ISO time such as 2026-01-31T12:00:00+00:00 or a duration, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_storage(text: str, *, s3_endpoint_url: str = "", s3_region: str = "") -> Storage:
    """``[NAME=]URL``: a storage from `lakery.config.storage_url`, optionally renamed."""
    name: str | None = None
    left, sep, right = text.partition("=")
    if sep and "://" not in left and left and right:
        name, text = left, right
    storage = storage_from_url(text, s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
    if storage is None:
        msg = "--storage-url needs a URL, e.g. file:///data/lakery or s3://bucket/prefix"
        raise ConfigurationError(msg)
    if name is not None:
        storage.name = check_component_name(name, owner="--storage-url")
    return storage
