"""The distribution: typed packages, the license, one version, the dev group, the sdist."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

import lakery
import lakery_dagster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


@pytest.mark.parametrize("package", ["lakery", "lakery_dagster"])
def test_packages_are_marked_typed(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    # Shipped in the wheel, not only in the checkout.
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"][package]


def test_license_is_an_spdx_expression_with_its_file() -> None:
    assert PROJECT["license"] == "MIT"  # a string (PEP 639), not the deprecated table
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the lakery developers" in text
    # License classifiers are not allowed next to a license expression.
    assert not [c for c in PROJECT.get("classifiers", []) if c.startswith("License ::")]
    # setuptools reads `license` as an SPDX expression from 77 on.
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if "setuptools" in r]
    match = re.fullmatch(r"setuptools>=(\d+).*", setuptools.replace(" ", ""))
    assert match and int(match.group(1)) >= 77


def test_version_is_written_once() -> None:
    assert "version" not in PROJECT
    assert "version" in PROJECT["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "lakery.__version__"}
    # setuptools reads a literal assignment without importing lakery (whose dependencies
    # the build environment does not have).
    tree = ast.parse((ROOT / "lakery" / "__init__.py").read_text())
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == [lakery.__version__]
    assert importlib.metadata.version("lakery") == lakery.__version__
    assert getattr(lakery_dagster, "__version__", lakery.__version__) == lakery.__version__


def test_dev_tools_are_a_dependency_group() -> None:
    dev = PYPROJECT["dependency-groups"]["dev"]
    names = {re.split(r"[\[<>=!~;\s]", item, maxsplit=1)[0].lower() for item in dev}
    assert {"pytest", "ruff", "mkdocs", "mkdocstrings", "hypothesis"} <= names
    # Not lakery itself: from the index that name is an unrelated project.
    assert "lakery" not in names
    assert "dev" not in PROJECT["optional-dependencies"]
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--group dev" in bootstrap
    assert ".[dev]" not in bootstrap
    assert "'uv>=0.6.7'" in bootstrap  # the first uv with `uv pip install --group`


SDIST_TREES = ["tests", "docs", "example_project", "benchmarks", "scripts"]
SDIST_TREES += ["lakery", "lakery_dagster"]
SDIST_FILES = ["LICENSE", "README.md", "pyproject.toml", "mkdocs.yml", "MANIFEST.in"]


def _shipped(path: Path) -> bool:
    """Whether MANIFEST.in ships a file of the checkout (its prunes and excludes)."""
    parts = path.relative_to(ROOT).parts
    return not (
        "__pycache__" in parts
        or path.suffix in {".pyc", ".pyo", ".pyd", ".db", ".db-wal", ".db-shm"}
        or parts[:2] in {("benchmarks", ".venvs"), ("benchmarks", "results")}
    )


@pytest.mark.skipif(importlib.util.find_spec("uv") is None, reason="uv: scripts/bootstrap.sh")
def test_sdist_carries_the_test_suite(tmp_path: Path) -> None:
    """`uv build --sdist` (about 2 s): the tests and everything they read are in it."""
    result = subprocess.run(
        [sys.executable, "-m", "uv", "build", "--sdist", "--out-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sdist,) = tmp_path.glob("lakery-*.tar.gz")
    assert sdist.name == f"lakery-{lakery.__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        members = {name.partition("/")[2] for name in archive.getnames()}
    expected = {
        str(path.relative_to(ROOT))
        for tree in SDIST_TREES
        for path in (ROOT / tree).rglob("*")
        if path.is_file() and _shipped(path)
    }
    assert not sorted(expected - members)
    assert {*SDIST_FILES, "lakery/py.typed", "lakery_dagster/py.typed"} <= members
    assert not [
        m for m in members if "__pycache__" in m or m.endswith(".pyc") or m.startswith(".venv")
    ]
