"""What the command line prints: results on stdout (text or ``--json``), progress on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any
from typing import TextIO

__all__ = ["ProgressLine", "emit_json", "human_bytes", "table"]


class ProgressLine:
    """A status line on stderr for long operations.

    On a terminal it is redrawn in place (at most every 0.1 s); otherwise (a log file, a
    CI job) a line is written at most every 5 seconds, and once at the end of each stage.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = 0.1 if self.tty else 5.0
        self._last = 0.0
        self._width = 0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and now - self._last < self._interval:
            return
        self._last = now
        text = f"{stage}: {done}" + (f"/{total}" if total is not None else "")
        if self.tty:
            padding = " " * max(0, self._width - len(text))
            self.stream.write(f"\r{text}{padding}")
            self._width = len(text)
            if finished:
                self.stream.write("\n")
                self._width = 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """End a line left unfinished (e.g. on an error)."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    """Print `value` as indented JSON (UUIDs, times and other objects as strings)."""
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def human_bytes(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with left-aligned columns."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
