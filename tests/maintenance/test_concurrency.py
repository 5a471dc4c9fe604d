"""Several processes save, load back and delete into one database (one SQLite file, one
PostgreSQL database) and one directory, while garbage collection deletes concurrently
with a short grace period; nothing any of them saved is lost."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import BaseRecord
from lakery import get_manifests
from lakery import new_loader
from lakery.maintenance import collect_garbage
from lakery.maintenance import verify_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import assert_gc_exact
from tests.maintenance.helpers import leftover_files
from tests.maintenance.workers import make_engine
from tests.maintenance.workers import registry_for

ROOT = Path(__file__).parents[2]
WORKERS = 3
OBJECTS = 1000
"""Objects each worker saves."""
GRACE = timedelta(seconds=1.5)
"""Far longer than any save of a batch here (tens of milliseconds), as gc requires."""


@pytest.mark.slow
async def test_processes_save_while_gc_runs(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = await anyio.to_thread.run_sync(new_database)
    engine = make_engine(url)
    await BaseRecord.create_all(engine)
    root = tmp_path / "files"
    registry = registry_for(str(root))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    outputs = [tmp_path / f"worker{i}.json" for i in range(WORKERS)]
    errors = tmp_path / "workers.err"
    with open(errors, "w") as stderr:
        processes = [
            await anyio.open_process(
                [
                    sys.executable,
                    "-m",
                    "tests.maintenance.workers",
                    "worker",
                    url,
                    str(root),
                    str(i),
                    str(OBJECTS),
                    str(out),
                ],
                cwd=ROOT,
                stdin=None,
                stdout=None,
                stderr=stderr,
            )
            for i, out in enumerate(outputs)
        ]
    collections = deleted = spared = 0
    try:
        with anyio.fail_after(240):
            while any(p.returncode is None for p in processes):
                async with sessions() as session:
                    report = await collect_garbage(session, registry, delete=True, grace=GRACE)
                assert not report.errors, report.errors
                collections += 1
                deleted += report.deleted
                spared += sum(s.spared for s in report.storages)
                await anyio.sleep(0.05)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
    assert [p.returncode for p in processes] == [0] * WORKERS, errors.read_text()

    expected: dict[str, str] = {}
    checked = reused = 0
    seconds = 0.0
    for out in outputs:
        result = json.loads(out.read_text())
        expected.update(result["expected"])
        checked += result["checked"]
        reused += result["reused"]
        seconds = max(seconds, result["seconds"])
    async with sessions() as session:
        found = await get_manifests(session, list(expected), with_contents=True)
        lost = sorted(set(expected) - {str(i) for i in found})
        async with new_loader(session=session, registry=registry) as loader:
            futures = {str(i): loader.load_soon(record, Doc) for i, record in found.items()}
        changed = [i for i, f in futures.items() if f.get().digest() != expected[i]]
        report = await verify_manifests(session, registry)
    assert lost == [] and changed == []
    assert report.ok, [p.message for p in report.problems]
    storages = [registry.get_storage("files"), registry.get_storage("lakery.database@v1")]
    deleted += await assert_gc_exact(sessions, registry, storages)
    assert leftover_files(root) == []
    await engine.dispose()
    print(
        f"\nconcurrency on {url.split(':')[0]}: {WORKERS} writers, {checked} objects saved and "
        f"loaded back, {len(expected)} kept and re-checked, {reused} re-saves of deleted "
        f"content, {collections} collections deleted {deleted} blobs (spared {spared} reused "
        f"between listing and deleting); lost: {len(lost)} "
        f"(workers ran {seconds:.1f}s)"
    )
    assert checked == WORKERS * OBJECTS and deleted > 0 and reused > 0
