"""A real ``lakery serve`` process and Debian's Chromium driven by Playwright.

Shared by tests/viewer/test_browser.py and scripts/viewer_screenshots.py. Playwright never
downloads a browser here: it drives /usr/bin/chromium (``scripts/ensure_chromium.sh``
installs it with apt-get when it is missing), and every request of the page to anything
but the viewer on 127.0.0.1 is refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_problem() -> str | None:
    """Why the browser cannot run here (after trying to install Chromium), or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: run bash scripts/bootstrap.sh"
    if not CHROMIUM.exists():
        script = ROOT / "scripts" / "ensure_chromium.sh"
        result = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False
        )
        if not CHROMIUM.exists():
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            return f"no Chromium at {CHROMIUM}, and {script.name} failed: {detail[0]}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def lakery_serve(database_url: str, files: Path, *, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``lakery serve`` on a free 127.0.0.1 port; yield its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "lakery",
        "serve",
        "--database-url",
        database_url,
        "--storage-url",
        f"files={files}",
        "--registry-module",
        "tests.viewer.demo",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKERY_")}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_until_up(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"lakery serve exited with {process.returncode}: {err}")
        try:
            with urllib.request.urlopen(base + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"lakery serve did not answer at {base} within 60 s")


@contextmanager
def chromium_page(base: str, *, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium that may reach only `base`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(base + "/") else route.abort()
                ),
            )
            yield context.new_page()
        finally:
            browser.close()
