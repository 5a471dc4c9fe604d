"""The benchmark suite still runs: `python -m benchmarks --quick` at toy sizes.

Only the benchmarks that need nothing from the network run here (no labox install), on
SQLite only; nothing is asserted about timings, only that every benchmark produced its
rows and the results file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.run import main

TINY = {
    "bulk_count": 40,
    "bulk_repeats": 1,
    "numpy_mib": 1,
    "numpy_repeats": 1,
    "dagster_assets": 3,
    "dagster_partitions": 2,
    "dagster_repeats": 1,
    "query_sqlite_rows": 1000,
    "query_count": 20,
}


@pytest.mark.slow
def test_quick_mode_runs_at_toy_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = [item for name, value in TINY.items() for item in ("--set", f"{name}={value}")]
    code = main(
        [
            "--quick",
            "--only",
            "bulk,numpy,dagster,query",
            "--no-labox",
            "--no-postgres",
            "--out",
            str(tmp_path / "results"),
            "--work",
            str(tmp_path),
            *settings,
        ]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    [written] = (tmp_path / "results").glob("*-quick.json")
    assert f"results: {written}" in output
    result = json.loads(written.read_text())
    assert result["failures"] == {}
    assert {row["benchmark"] for row in result["rows"]} == {"bulk", "numpy", "dagster", "query"}
    assert all(row["lakery"] for row in result["rows"])
    assert result["machine"]["nproc"] >= 1
    assert (tmp_path / "results" / written.name.replace(".json", ".md")).exists()
