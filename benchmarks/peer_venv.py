"""Throwaway virtual environments for the peers a benchmark compares against.

A peer is installed from the package index into its own venv under ``benchmarks/.venvs``
(git-ignored), never into lakery's; a driver script runs in that interpreter and prints
one JSON line with what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def ensure_venv(venv: Path, requirements: list[str], log: Path, *, what: str) -> Path:
    """The venv's interpreter, creating the venv and installing `requirements` when they
    changed since the last install (a marker file in the venv remembers them)."""
    python = venv / "bin" / "python"
    marker = venv / "lakery-bench-requirements.json"
    wanted = json.dumps(requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            check=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run(
            [*command, *requirements], stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        msg = f"installing {what} into {venv} failed; see {log}"
        raise RuntimeError(msg)
    marker.write_text(wanted)
    return python


def run_driver(
    interpreter: Path, driver: Path, config: dict[str, Any], *, what: str, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `driver` with `config` (JSON) in `interpreter`; the JSON of its last line."""
    done = subprocess.run(
        [str(interpreter), str(driver), json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    if done.returncode != 0:
        msg = f"the {what} driver failed:\n{done.stderr[-4000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])
