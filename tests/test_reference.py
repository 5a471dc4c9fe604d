"""Every public name is in the API reference (docs/reference.md).

The public modules are found by walking `lakery` and `lakery_dagster`: every package with
an `__all__`, and every module whose package has none (`lakery.common.*`,
`lakery.extra.*`, `lakery.testing.*`). The modules behind a package with an `__all__`
(e.g. `lakery.core.save`) are its implementation: their public names are the package's.
Private modules, ``__main__`` and the internals of `lakery.cli`, `lakery.migrations` and
`lakery_dagster.selection` (the IO manager's input path) are skipped.

A name counts as documented when the reference has a ``::: path`` entry that resolves to
the same object (``::: lakery.core.Saver`` documents `lakery.Saver` too), or documents a
whole module whose `__all__` holds it. That mkdocstrings can render each entry is
checked by `mkdocs build --strict` (tests/test_docs.py).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
PACKAGES = ["lakery", "lakery_dagster"]
INTERNAL = ("lakery.cli", "lakery.migrations", "lakery_dagster.selection")
ENTRY = re.compile(r"^::: *([\w.]+) *$", re.M)


def _is_internal(name: str) -> bool:
    parts = name.split(".")
    return any(part.startswith("_") for part in parts) or any(
        name == prefix or name.startswith(prefix + ".") for prefix in INTERNAL
    )


def public_modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        found = [package] + [
            info.name for info in pkgutil.walk_packages(root.__path__, package + ".")
        ]
        for name in found:
            if _is_internal(name):
                continue
            module = importlib.import_module(name)
            parent = name.rpartition(".")[0]
            is_package = hasattr(module, "__path__")
            parent_has_all = bool(parent) and hasattr(importlib.import_module(parent), "__all__")
            if hasattr(module, "__all__") and (is_package or not parent_has_all):
                names.append(name)
    return names


def resolve(path: str) -> object:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(path)


def entries() -> list[str]:
    return ENTRY.findall(REFERENCE.read_text())


def documented(module: ModuleType, name: str, paths: list[str]) -> bool:
    value = getattr(module, name)
    for path in paths:
        target = resolve(path)
        if path.rpartition(".")[2] == name and target is value:
            return True
        if (
            isinstance(target, ModuleType)
            and name in getattr(target, "__all__", ())
            and getattr(target, name) is value
        ):
            return True
    return False


MODULES = public_modules()


def test_the_walk_finds_the_public_modules() -> None:
    expected = {
        "lakery",
        "lakery.core",
        "lakery.builtin",
        "lakery.common.exceptions",
        "lakery.common.tags",
        "lakery.maintenance",
        "lakery.testing.serializer",
        "lakery.testing.storage",
        "lakery.extra.pydantic",
        "lakery.extra.numpy",
        "lakery.extra.aws",
        "lakery.extra.arrow",
        "lakery.extra.pandas",
        "lakery.extra.polars",
        "lakery_dagster",
    }
    assert expected <= set(MODULES)
    assert not [m for m in MODULES if m.startswith(("lakery.cli", "lakery.core."))]


def test_every_entry_resolves() -> None:
    broken = []
    for path in entries():
        try:
            resolve(path)
        except (ImportError, AttributeError):
            broken.append(path)
    assert not broken


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_is_in_the_reference(module_name: str) -> None:
    module = importlib.import_module(module_name)
    paths = entries()
    missing = [n for n in module.__all__ if not documented(module, n, paths)]
    assert not missing, f"add to docs/reference.md: {[f'{module_name}.{n}' for n in missing]}"
