"""How long maintenance operations report their progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Progress", "report"]

Progress: TypeAlias = Callable[[str, int, int | None], None]
"""Called as ``progress(stage, done, total)``: `done` items of `total` (None when not known
in advance) in the named stage, e.g. ``("verify", 1200, 5000)``. Called often; keep it
cheap (the `lakery` command line redraws a status line at most a few times a second)."""


def report(progress: Progress | None, stage: str, done: int, total: int | None) -> None:
    """Call `progress` if there is one."""
    if progress is not None:
        progress(stage, done, total)
