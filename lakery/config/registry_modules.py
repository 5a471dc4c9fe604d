"""The default registry modules: ``lakery.builtin`` and every extra whose library is installed."""

from __future__ import annotations

import functools
import importlib
import importlib.util

__all__ = ["EXTRA_MODULES", "default_registry_modules"]

EXTRA_MODULES = [
    ("lakery.extra.pydantic", "pydantic"),
    ("lakery.extra.numpy", "numpy"),
    ("lakery.extra.arrow", "pyarrow"),
    ("lakery.extra.pandas", "pandas"),
    ("lakery.extra.polars", "polars"),
]
"""Extras with components, and the library each needs (``lakery.extra.aws`` has none that
a registry can make without arguments: an `S3Storage` needs its bucket)."""


def default_registry_modules() -> list[str]:
    """``lakery.builtin`` plus the extras whose dependencies are installed and import.

    Imports the extras on the first call (the answer is cached); a missing or broken
    extra is left out.
    """
    return list(_defaults())


@functools.cache
def _defaults() -> tuple[str, ...]:
    extras = (module for module, library in EXTRA_MODULES if _importable(module, library))
    return ("lakery.builtin", *extras)


def _importable(module: str, *requires: str) -> bool:
    """Whether `module` and its dependencies are installed and it lists components."""
    try:
        if not all(importlib.util.find_spec(name) is not None for name in (module, *requires)):
            return False
        return hasattr(importlib.import_module(module), "__all__")
    except Exception:  # a missing or broken extra is simply left out of the defaults
        return False
