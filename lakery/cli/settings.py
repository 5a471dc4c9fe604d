"""Where the command line's database, registry modules and storages come from.

Each setting is taken from the first of: the command-line flags, the environment
(``LAKERY_DATABASE_URL``, ``LAKERY_REGISTRY_MODULES``, ``LAKERY_STORAGE_URLS``,
``LAKERY_DAGSTER_URL``), the config
file (``--config PATH``, else ``lakery.toml`` in the working directory if there is one).
Registry modules always add to the defaults (`lakery.config.default_registry_modules`).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from lakery.common.exceptions import ConfigurationError

__all__ = [
    "CONFIG_FILE",
    "ENV_DAGSTER_URL",
    "ENV_DATABASE_URL",
    "ENV_REGISTRY_MODULES",
    "ENV_STORAGE_URLS",
    "Settings",
    "resolve_settings",
]

CONFIG_FILE = "lakery.toml"
ENV_DATABASE_URL = "LAKERY_DATABASE_URL"
ENV_REGISTRY_MODULES = "LAKERY_REGISTRY_MODULES"
ENV_STORAGE_URLS = "LAKERY_STORAGE_URLS"
ENV_DAGSTER_URL = "LAKERY_DAGSTER_URL"
_STRINGS = ("database_url", "s3_endpoint_url", "s3_region", "dagster_url")
_LISTS = ("registry_modules", "storage_urls")


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run (the database URL as given, not normalized).

    Attributes:
        registry_modules: modules to register besides the defaults.
        storage_urls: ``[NAME=]URL`` of the storages to add.
        dagster_url: the Dagster UI that ``lakery serve`` links manifests to.
        config_path: the config file read, if any.
    """

    database_url: str = ""
    registry_modules: list[str] = field(default_factory=list)
    storage_urls: list[str] = field(default_factory=list)
    s3_endpoint_url: str = ""
    s3_region: str = ""
    dagster_url: str = ""
    config_path: Path | None = None


def resolve_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags > environment > config file > defaults, for each setting."""
    env = os.environ if environ is None else environ
    path = _config_path(getattr(args, "config", None))
    config = _read_config(path) if path is not None else {}
    from_env: dict[str, Any] = {
        "database_url": env.get(ENV_DATABASE_URL, "").strip(),
        "registry_modules": _split(env.get(ENV_REGISTRY_MODULES, "")),
        "storage_urls": _split(env.get(ENV_STORAGE_URLS, "")),
        "dagster_url": env.get(ENV_DAGSTER_URL, "").strip(),
    }
    from_flags: dict[str, Any] = {
        "database_url": args.database_url,
        "registry_modules": args.registry_module,
        "storage_urls": args.storage_url,
        "s3_endpoint_url": args.s3_endpoint_url,
        "s3_region": args.s3_region,
        "dagster_url": getattr(args, "dagster_url", None),
    }
    # Flags, environment and TOML are checked above by kind (str or list of str), not typed.
    values: dict[str, Any] = {
        key: next((s[key] for s in (from_flags, from_env, config) if s.get(key)), default)
        for key, default in (*((k, "") for k in _STRINGS), *((k, []) for k in _LISTS))
    }
    return Settings(**values, config_path=path)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _config_path(given: str | None) -> Path | None:
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"no config file at {path} (--config)")
        return path
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc}") from None
    unknown = sorted(set(data) - {*_STRINGS, *_LISTS})
    if unknown:
        known = ", ".join((*_STRINGS, *_LISTS))
        msg = f"the config file {path} has unknown keys {unknown}; it may have: {known}"
        raise ConfigurationError(msg)
    for key in _STRINGS:
        if key in data and not isinstance(data[key], str):
            raise ConfigurationError(f"{key} in the config file {path} must be a string")
    for key in _LISTS:
        value = data.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            msg = f'{key} in the config file {path} must be a list of strings, e.g. ["a", "b"]'
            raise ConfigurationError(msg)
    return data
