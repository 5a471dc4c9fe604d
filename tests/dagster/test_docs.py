"""The python blocks of docs/dagster.md run, in order, in one namespace."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.markdown import python_blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "dagster.md"


def test_dagster_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    blocks = python_blocks(DOC)
    assert len(blocks) >= 3
    module = types.ModuleType("lakery_docs_dagster")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for number, code in enumerate(blocks, 1):
            exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)
    finally:
        lakery = namespace.get("lakery")
        if lakery is not None:
            lakery.close()  # type: ignore[attr-defined]
    assert (tmp_path / "lakery.db").exists()
    assert any((tmp_path / "lakery-files").rglob("*"))
