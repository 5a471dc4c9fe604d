"""Checks of `S3Storage`'s options: each error names the option and what it accepts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError

__all__ = [
    "ADDRESSING_STYLES",
    "CHECKSUM_SETTINGS",
    "MAX_OBJECT_SIZE",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "GiB",
    "MiB",
    "bounded_int",
    "check_endpoint",
    "checksum_setting",
    "choice",
    "directory",
    "optional_size",
]

MiB = 1 << 20
GiB = 1 << 30
MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (all but the last part of a multipart upload)."""
MAX_PART_SIZE = 5 * GiB
"""S3's largest part, single PUT and single copy."""
MAX_OBJECT_SIZE = 5 * 1024 * GiB
"""S3's largest object."""
ADDRESSING_STYLES = ("auto", "path", "virtual")
CHECKSUM_SETTINGS = ("when_supported", "when_required")


def check_endpoint(endpoint_url: str | None) -> str | None:
    if endpoint_url is None:
        return None
    if not isinstance(endpoint_url, str):
        msg = f"endpoint_url must be a str URL, got {type(endpoint_url).__name__}"
        raise ConfigurationError(msg)
    parts = urlsplit(endpoint_url)
    if parts.username is not None or parts.password is not None:
        msg = (
            "endpoint_url must not contain credentials (user:password@): remove them from "
            "the URL and provide them through the AWS credential chain or session="
        )
        raise ConfigurationError(msg)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            "endpoint_url must be an http(s) URL such as 'http://127.0.0.1:9000', "
            f"got {endpoint_url!r}"
        )
        raise ConfigurationError(msg)
    return endpoint_url


def choice(option: str, value: object, choices: Sequence[str]) -> Any:
    if value not in choices:
        msg = (
            f"S3Storage({option}=...) must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
        raise ConfigurationError(msg)
    return value


def checksum_setting(option: str, value: object) -> Any:
    return None if value is None else choice(option, value, CHECKSUM_SETTINGS)


def bounded_int(option: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"S3Storage({option}=...) must be an int from {low} to {high}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def directory(option: str, value: object) -> str | None:
    """A directory path as a str (None stays None); it need not exist yet."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        msg = f"S3Storage({option}=...) must be a directory path or None, got {value!r}"
        raise ConfigurationError(msg)
    path = os.fspath(value)
    if not isinstance(path, str):
        msg = f"S3Storage({option}=...) must be a str path, got {value!r}"
        raise ConfigurationError(msg)
    return path


def optional_size(option: str, value: object, high: int) -> int:
    """A byte count from 0 to `high`; None counts as 0 (off)."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        msg = (
            f"S3Storage({option}=...) must be None or 0 (off) or a number of bytes up to "
            f"{high}, got {value!r}"
        )
        raise ConfigurationError(msg)
    return value
