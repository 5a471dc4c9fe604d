"""`bash scripts/example.sh --distributed --days 2`: 3 Celery workers on Redis, the Dagster
instance on PostgreSQL, lakery on PostgreSQL + S3; peak connections within the bound."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example_project.conftest import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).parents[2]


def test_distributed_example(tmp_path: Path) -> None:
    env = subprocess_env(PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "example_project.distributed",
            "--data",
            str(tmp_path),
            "--days",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "3 Celery workers up" in out
    assert out.count("4 assets on") == 2
    peak, bound = map(int, re.search(r"database.*?: (\d+); documented bound (\d+)", out).groups())  # type: ignore[union-attr]
    assert 1 <= peak <= bound
    assert "raw_measurements    2 manifests" in out
    assert "lakery.aws.s3@v1" in out
