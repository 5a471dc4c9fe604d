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

from pathlib import Path
from typing import Any

from benchmarks import peer_venv
from benchmarks.peer_venv import ensure_venv

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
    return ensure_venv(VENV, REQUIREMENTS, log, what="labox")


def run_driver(interpreter: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Run one timed labox save + load in its own process; its JSON result."""
    return peer_venv.run_driver(interpreter, DRIVER, config, what="labox")
