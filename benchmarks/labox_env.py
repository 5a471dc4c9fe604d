"""labox, installed from the package index into a throwaway virtual environment.

labox is the other published library of lakery's design. The benchmark never vendors or
imports it: it creates ``benchmarks/.venvs/labox`` (git-ignored) with ``python -m venv``,
installs labox there with pip, and runs `labox_driver.py` in that interpreter.

labox 0.1.0 needs three things its package metadata does not say, so they are installed
next to it: SQLAlchemy below 2.1 (its ORM models give a relationship a default that 2.1
rejects), ``sniffio`` (imported by its dependency anysync) and ``ruyaml`` (imported by its
registry module). The database drivers are the ones lakery uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

VENV = Path(__file__).resolve().parent / ".venvs" / "labox"
DRIVER = Path(__file__).resolve().parent / "labox_driver.py"
REQUIREMENTS = [
    "labox[pydantic]==0.1.0",
    "sqlalchemy[asyncio]>=2.0.36,<2.1",
    "sniffio",
    "ruyaml",
    "aiosqlite",
    "asyncpg",
]


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(log: Path) -> Path:
    """The venv's interpreter, creating the venv and installing labox when needed."""
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
        msg = f"installing labox into {VENV} failed; see {log}"
        raise RuntimeError(msg)
    marker.write_text(wanted)
    return python()


def run_driver(interpreter: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Run one timed labox save + load in its own process; its JSON result."""
    done = subprocess.run(
        [str(interpreter), str(DRIVER), json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        msg = f"the labox driver failed:\n{done.stderr[-4000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])
