"""Screenshots of the viewer for docs/viewer.md, taken with Playwright and Debian's Chromium.

    .venv/bin/python scripts/viewer_screenshots.py

Builds the small demo store of the tests (tests/viewer/demo.py) in a temporary folder,
runs ``lakery serve`` on it, and writes docs/images/viewer-search.png,
viewer-manifest.png and viewer-lineage.png. Installs Chromium with
scripts/ensure_chromium.sh when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.viewer.browser import browser_problem  # noqa: E402
from tests.viewer.browser import chromium_page  # noqa: E402
from tests.viewer.browser import lakery_serve  # noqa: E402
from tests.viewer.demo import fill_store  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def main() -> int:
    problem = browser_problem()
    if problem is not None:
        sys.stderr.write(f"viewer_screenshots: {problem}\n")
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'demo.db'}"
        files = Path(folder) / "files"
        ids = asyncio.run(fill_store(database_url, files)).ids
        extra = ("--dagster-url", "http://127.0.0.1:3000")
        with lakery_serve(database_url, files, extra=extra) as base:
            with chromium_page(base, width=1200, height=760) as page:
                page.goto(f"{base}/?tag=project%3Dalpha")
                page.screenshot(path=str(IMAGES / "viewer-search.png"), full_page=True)
                page.goto(f"{base}/manifests/{ids['raw']}")
                page.screenshot(path=str(IMAGES / "viewer-manifest.png"), full_page=True)
                page.goto(f"{base}/manifests/{ids['table']}")
                graph = page.locator("svg.lineage")
                graph.scroll_into_view_if_needed()
                graph.screenshot(path=str(IMAGES / "viewer-lineage.png"))
    for name in ("viewer-search.png", "viewer-manifest.png", "viewer-lineage.png"):
        print(IMAGES / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
