"""The peers of the tables benchmark, installed into their own throwaway virtual environment.

dagster-polars and universal-pathlib are never lakery dependencies. The benchmark creates
``benchmarks/.venvs/tables`` (git-ignored) with ``python -m venv``, installs the peers
there with pip, and installs lakery itself into
it too (``pip install -e`` of this checkout, with its table and Dagster extras): both
sides then run in the same interpreter with the same pyarrow, pandas, polars and Dagster,
each in its own process, through `tables_driver.py`.

polars is pinned to 1.44.2, the last 1.x: dagster-polars 0.27.12 (its newest release)
calls ``scan_parquet(rechunk=...)``, an argument polars 2.0 removed, so its loads fail on
polars 2 (pandas, pyarrow and Dagster are the project venv's versions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import peer_venv
from benchmarks.peer_venv import ensure_venv

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(__file__).resolve().parent / ".venvs" / "tables"
DRIVER = Path(__file__).resolve().parent / "tables_driver.py"
REQUIREMENTS = [
    "dagster==1.13.28",
    "dagster-polars==0.27.12",
    "universal-pathlib>=0.3,<0.4",
    "polars==1.44.2",  # dagster-polars 0.27.12 passes scan_parquet(rechunk=), gone in 2.0
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "numpy>=2",
    "aiosqlite",
    "-e",
    f"{ROOT}[arrow,pandas,polars,dagster]",
]


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(log: Path) -> Path:
    """The venv's interpreter, creating the venv and installing the peers when needed."""
    return ensure_venv(VENV, REQUIREMENTS, log, what="the tables peers")


def run_driver(interpreter: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Run one side's repeat in its own process (see `tables_driver`); its JSON result."""
    what = f"tables ({config['side']}, {config['library']})"
    return peer_venv.run_driver(interpreter, DRIVER, config, what=what, cwd=ROOT)
