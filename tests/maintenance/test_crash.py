"""A process saving a stream of objects is killed with SIGKILL at random moments, over and
over; afterwards nothing it reported saved is lost and the store verifies."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import get_manifests
from lakery import new_loader
from lakery.builtin import StorableStream
from lakery.maintenance import verify_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import assert_consistent
from tests.maintenance.helpers import assert_gc_exact
from tests.maintenance.helpers import collect_items
from tests.maintenance.helpers import leftover_files
from tests.maintenance.workers import digest_of
from tests.maintenance.workers import registry_for

ROOT = Path(__file__).parents[2]
KILLS = 20
"""Kills per database."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def read_log(path: Path) -> tuple[dict[uuid.UUID, str], set[uuid.UUID]]:
    """Saved ids with their digests, and ids that a delete was started for. A line cut
    short by the kill (no newline) is ignored."""
    saved: dict[uuid.UUID, str] = {}
    deleting: set[uuid.UUID] = set()
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        words = line.split()
        if words[0] == "saved":
            saved[uuid.UUID(words[1])] = words[2]
        elif words[0] == "deleting":
            deleting.add(uuid.UUID(words[1]))
    return saved, deleting


def wait_for_growth(log: Path, size: int, errors: Path, timeout: float = 60.0) -> None:
    """Wait until the log is longer than `size` bytes (a child logged a save)."""
    deadline = time.monotonic() + timeout
    while not (log.exists() and log.stat().st_size > size):
        assert time.monotonic() < deadline, f"no save logged in {timeout} s: {errors.read_text()}"
        time.sleep(0.005)


def kill_repeatedly(url: str, root: Path, log: Path, kills: int) -> int:
    """Start the zygote, fork saving children and SIGKILL each at a random moment."""
    rng = random.Random(4242)
    errors = root.parent / "children.err"
    with open(errors, "w") as stderr:
        zygote = subprocess.Popen(
            [sys.executable, "-m", "tests.maintenance.workers", "zygote", url, str(root), str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
        )
    assert zygote.stdin is not None and zygote.stdout is not None
    killed = 0
    try:
        for seed in range(kills):
            zygote.stdin.write(f"go {seed}\n")
            zygote.stdin.flush()
            size = log.stat().st_size if log.exists() else 0
            pid = int(zygote.stdout.readline())
            if seed % 2:  # every other child first logs a save: saves are seen between kills
                wait_for_growth(log, size, errors)  # (however slow a busy machine is)
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.stdout.readline().split()[1])
            assert os.WIFSIGNALED(status), errors.read_text()
            assert os.WTERMSIG(status) == signal.SIGKILL
            killed += 1
        zygote.stdin.write("quit\n")
        zygote.stdin.flush()
        assert zygote.wait(timeout=30) == 0
    finally:
        if zygote.poll() is None:
            zygote.kill()
            zygote.wait()
    return killed


async def check(url: str, root: Path, log: Path) -> dict[str, int]:
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=True)
    registry = registry_for(str(root))
    saved, deleting = read_log(log)
    try:
        async with sessions() as session:
            found = await get_manifests(session, list(saved), with_contents=True)
            expected = {i: d for i, d in saved.items() if i not in deleting}
            lost = sorted(str(i) for i in expected if i not in found)
            async with new_loader(session=session, registry=registry) as loader:
                futures = {i: loader.load_soon(found[i]) for i in expected if i in found}
            for manifest_id, future in futures.items():
                obj = future.get()
                if isinstance(obj, StorableStream):
                    obj = await collect_items(obj)
                assert isinstance(obj, Doc | list)
                assert digest_of(obj) == expected[manifest_id], manifest_id
            report = await verify_manifests(session, registry)
        assert lost == [], f"{len(lost)} saved objects lost"
        assert report.ok, [p.message for p in report.problems]
        storages = [registry.get_storage("files"), registry.get_storage("lakery.database@v1")]
        collected = await assert_gc_exact(sessions, registry, storages)
        assert leftover_files(root) == []
        manifests = await assert_consistent(sessions, registry)
    finally:
        await engine.dispose()
    return {"logged": len(saved), "checked": len(futures), "gc": collected, "all": manifests}


def test_sigkill_while_saving(new_database: Callable[[], str], tmp_path: Path) -> None:
    url = new_database()

    async def create() -> None:
        engine = create_async_engine(url)
        await BaseRecord.create_all(engine)
        await engine.dispose()

    asyncio.run(create())
    root, log = tmp_path / "files", tmp_path / "saved.log"
    assert kill_repeatedly(url, root, log, KILLS) == KILLS
    stats: dict[str, Any] = asyncio.run(check(url, root, log))
    print(f"\ncrash test on {url.split(':')[0]}: {KILLS} kills, {stats}")
    assert stats["logged"] >= KILLS // 2  # every other child saved before its kill
