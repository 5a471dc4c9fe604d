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

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    marker = VENV / "lakery-bench-requirements.json"
    wanted = json.dumps(REQUIREMENTS)
    if python().exists() and marker.exists() and marker.read_text() == wanted:
        return python()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            check=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        command = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run(
            [*command, *REQUIREMENTS], stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        msg = f"installing the tables peers into {VENV} failed; see {log}"
        raise RuntimeError(msg)
    marker.write_text(wanted)
    return python()


def run_driver(interpreter: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Run one side's repeat in its own process (see `tables_driver`); its JSON result."""
    done = subprocess.run(
        [str(interpreter), str(DRIVER), json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        msg = f"the tables driver failed ({config['side']}, {config['library']}):\n"
        raise RuntimeError(msg + done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
