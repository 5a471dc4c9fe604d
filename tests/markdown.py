"""Running the Python code blocks of Markdown files (the seed, the README, docs/)."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^(?:<!--([^>]*)-->\n)?```python\n(.*?)^```", re.S | re.M)
"""A ```python block, with the marks of an HTML comment on the line before it, e.g.
``<!-- notest -->`` (shown, never run) or ``<!-- notest s3 -->`` (run by the S3 tests)."""


def python_blocks(path: Path, *, marked: str | None = None) -> list[str]:
    """The ```python blocks of a Markdown file, in order.

    By default the blocks not marked ``notest``; with `marked`, only the blocks whose
    marker comment names that word.
    """
    blocks = []
    for marks, code in FENCE.findall(path.read_text()):
        words = marks.split()
        if (marked in words) if marked is not None else ("notest" not in words):
            blocks.append(code)
    return blocks


def await_save_one(code: str) -> str:
    """The seed's one correction: `save_one` is a coroutine, so it is awaited."""
    return re.sub(r"(?<!await )\bsave_one\(", "await save_one(", code).replace(
        "import await save_one", "import save_one"
    )


async def run_block(code: str, namespace: dict[str, Any]) -> None:
    """Run one block like a notebook cell: top-level `await` and `async with` allowed."""
    compiled = compile(code, "<markdown>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if result is not None:
        await result


def run_page(blocks: list[str], namespace: dict[str, Any]) -> None:
    """Run blocks in order from synchronous code, like notebook cells sharing one event loop
    (so `asyncio.run(...)` works in a block, and so does a top-level `await`)."""
    loop = asyncio.new_event_loop()
    try:
        for code in blocks:
            compiled = compile(code, "<markdown>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(compiled, namespace)
            if result is not None:
                loop.run_until_complete(result)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
