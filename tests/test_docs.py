"""Every Python block of the README and docs/ runs, except blocks marked ``<!-- notest -->``
on the line before their fence (shown, not run).

Each page runs top to bottom in a fresh namespace and a temporary working directory, like
a notebook (top-level `await` allowed), on the embedded default (SQLite, local files).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.markdown import python_blocks
from tests.markdown import run_page

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIPPED = {
    # The user's page: its snippets are alternatives, not one script; they run, combined
    # as the page intends, in tests/test_seed.py and tests/extra_pydantic.
    ROOT / "docs" / "usage.md",
    # Runs Dagster with its own instance home: tests/dagster/test_docs.py.
    ROOT / "docs" / "dagster.md",
}


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p not in SKIPPED], ids=lambda p: str(p.relative_to(ROOT))
)
def test_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip("no runnable Python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. examples pin their class ids: no warnings
        warnings.simplefilter("ignore", ResourceWarning)
        run_page(blocks, namespace)


def test_no_page_is_skipped_silently() -> None:
    assert set(PAGES) >= SKIPPED


def test_notest_blocks_are_skipped(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- notest s3 -->\n```python\nraise SystemExit\n```\n"
    )
    assert python_blocks(page) == ["x = 1\n"]
    assert python_blocks(page, marked="s3") == ["raise SystemExit\n"]


@pytest.mark.slow
def test_site_builds(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the nav exists, links and anchors resolve,
    and the API reference renders from the docstrings."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "reference" / "index.html").exists()


INSTALL = re.compile(r"\b(?:pip3?|uv pip) install\b([^`\n]*)|\buv add\b([^`\n]*)")
FROM_INDEX = re.compile(r"lakery(\[[^\]]*\])?([<>=!~].*)?", re.I)


def index_installs(text: str) -> list[str]:
    """The install commands in `text` that fetch lakery by name from the package index
    (where "lakery" is an unrelated project), not from a checkout or a built wheel."""
    found = []
    for match in INSTALL.finditer(text):
        arguments = (match.group(1) or match.group(2) or "").split(" #")[0]
        try:
            words = shlex.split(arguments)
        except ValueError:
            words = arguments.split()
        for i, word in enumerate(words):
            if FROM_INDEX.fullmatch(word) and words[i + 1 : i + 2] != ["@"]:
                found.append(match.group(0).strip())
    return found


def test_index_installs_are_recognized() -> None:
    assert index_installs("Install with `pip install 'lakery[dagster]'`.")
    assert index_installs('`uv pip install -U "lakery[aws]>=0.1"` or `uv add lakery`')
    assert not index_installs(
        "pip install -e '/path/to/lakery[dagster]'   # not: pip install lakery\n"
        "pip install '.[dagster]' 'dist/lakery-0.1.0-py3-none-any.whl[dagster]'\n"
        "pip install 'lakery[aws] @ ./dist/lakery-0.1.0-py3-none-any.whl'"
    )


def test_no_page_installs_lakery_from_the_index() -> None:
    """The name on the package index is an unrelated 0.0.1 placeholder: the docs say how to
    install from a checkout or a built wheel instead."""
    found = {p: index_installs(p.read_text()) for p in PAGES}
    assert not {p: f for p, f in found.items() if f}
