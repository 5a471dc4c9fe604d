"""Asking the user before a destructive step (only on a terminal)."""

from __future__ import annotations

from typing import TextIO

__all__ = ["confirm", "is_terminal"]


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is an interactive terminal."""
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):  # closed or detached
        return False


def confirm(question: str, stdin: TextIO, stderr: TextIO) -> bool:
    """Ask `question` on `stderr`; True only for an answer of y or yes."""
    stderr.write(f"{question} [y/N] ")
    stderr.flush()
    answer = stdin.readline()
    if not answer.endswith("\n"):
        stderr.write("\n")
    return answer.strip().lower() in {"y", "yes"}
