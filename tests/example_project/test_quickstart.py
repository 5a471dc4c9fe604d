"""The plain-async example (no Dagster) runs, and runs again on its own data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.example_project.conftest import subprocess_env

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[2] / "example_project" / "quickstart.py"


def test_quickstart_runs_twice(tmp_path: Path) -> None:
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--data", str(tmp_path / "data")],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "9 measurements loaded back and equal to what was saved" in result.stdout
        assert "stream of 10000 readings loaded back and verified" in result.stdout
        assert f"{11 * run} manifests in the database" in result.stdout
