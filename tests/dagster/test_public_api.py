"""The public names of lakery_dagster and the query API."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import dagster as dg
import pytest

import lakery
import lakery.core
import lakery_dagster


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(lakery_dagster).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(lakery_dagster.__all__)
    assert {"LakeryIOManager", "LakeryResource"} <= set(lakery_dagster.__all__)


def test_query_api_is_exported() -> None:
    for name in ["find_manifests", "get_manifests", "fetch_contents", "select_manifests"]:
        assert name in lakery.core.__all__
        assert getattr(lakery, name) is getattr(lakery.core, name)


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for cls in [lakery_dagster.LakeryResource, lakery_dagster.LakeryIOManager]:
        match = re.search(r"```python\n(.*?)```", cls.__doc__ or "", re.DOTALL)
        assert match, f"{cls.__name__} has no example"
        namespace: dict[str, object] = {"__name__": "lakery_docstring_example"}
        exec(textwrap.dedent(match.group(1)), namespace)
        defs = namespace["defs"]
        assert isinstance(defs, dg.Definitions)
        assert defs.resolve_implicit_global_asset_job_def().execute_in_process().success
