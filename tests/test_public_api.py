"""The package root re-exports the public core, and every `__all__` is accurate."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import lakery
import lakery.core

MODULES = [
    "lakery",
    "lakery.core",
    "lakery.builtin",
    "lakery.common.exceptions",
    "lakery.config",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing
    assert len(set(module.__all__)) == len(module.__all__)


def test_root_reexports_core() -> None:
    assert set(lakery.core.__all__) <= set(lakery.__all__)
    for name in [
        "Registry",
        "Storable",
        "save_one",
        "load_one",
        "new_saver",
        "new_loader",
        "BaseRecord",
        "ManifestRecord",
        "ContentRecord",
        "LakeryError",
    ]:
        assert name in lakery.__all__


def test_public_functions_are_documented() -> None:
    undocumented = [
        n
        for n in lakery.__all__
        if callable(getattr(lakery, n)) and not (getattr(lakery, n).__doc__ or "").strip()
    ]
    assert not undocumented


def test_every_package_directory_is_a_package() -> None:
    """setuptools ships only directories with an __init__.py (a missing one drops a module
    from the wheel while the editable install still finds it)."""
    root = Path(__file__).parents[1]
    missing = [
        str(directory.relative_to(root))
        for top in ("lakery", "lakery_dagster")
        for directory in (root / top).rglob("*")
        if directory.is_dir()
        and any(directory.glob("*.py"))
        and not (directory / "__init__.py").exists()
        and directory.name != "versions"  # alembic's migration scripts: package data
    ]
    assert not missing
