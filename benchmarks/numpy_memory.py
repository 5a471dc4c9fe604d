"""A large NumPy array to FileStorage and back: GB/s and peak extra memory.

lakery saves a `StorableValue` holding a float64 array (the ``.npy`` serializer; FileStorage
on the local disk; records in SQLite) and loads it back. The baseline is the practical
limit of the machine for the same durable, verified write: ``np.save`` to a temporary
file, sha256 of the array's bytes, fsync, rename into place (and fsync of the folder); and
for the read, ``np.load`` and a sha256 of what was read.

Each phase (lakery save, lakery load, baseline save, baseline load) runs in a fresh
process, interleaved within each repeat, and reports its time and its peak resident memory
above what it held before (for a load, also above the loaded array itself), read from
/proc/self/status (VmHWM, reset through /proc/self/clear_refs). Every repeat writes to a
new folder, so content deduplication never skips a write. Run one phase by hand with:

    python -m benchmarks.numpy_memory --phase lakery-save --directory DIR --size-mib 64
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import MiB
from benchmarks.common import Row
from benchmarks.common import proc_status
from benchmarks.common import reset_peak_rss

PHASES = ("lakery-save", "baseline-save", "lakery-load", "baseline-load")


def _array(size: int, seed: int) -> Any:
    import numpy as np

    array = np.ones(size // 8, dtype=np.float64)  # touches every page: all resident
    array[0] = seed  # new content (a new hash) for every repeat
    return array


def _setup(directory: Path) -> tuple[Any, Any, Any]:
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlalchemy.ext.asyncio import create_async_engine

    from lakery import Registry
    from lakery.builtin import FileStorage

    engine = create_async_engine(f"sqlite+aiosqlite:///{directory / 'lakery.db'}")
    registry = Registry(
        modules=["lakery.builtin", "lakery.extra.numpy"],
        default_storage=FileStorage(directory / "files"),
    )
    return engine, async_sessionmaker(engine), registry


async def _lakery_save(directory: Path, size: int, seed: int) -> dict[str, Any]:
    from lakery import BaseRecord
    from lakery import save_one
    from lakery.builtin import StorableValue

    engine, new_session, registry = _setup(directory)
    await BaseRecord.create_all(engine)
    obj = StorableValue(_array(size, seed))
    before = proc_status("VmRSS")
    reset = reset_peak_rss()
    started = time.perf_counter()
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry)
    seconds = time.perf_counter() - started
    peak = proc_status("VmHWM")
    (directory / "record.json").write_text(json.dumps({"id": str(record.id)}))
    await engine.dispose()
    return {"seconds": seconds, "extra": peak - before, "reset": reset}


async def _lakery_load(directory: Path, size: int, seed: int) -> dict[str, Any]:
    import uuid

    from sqlalchemy import select

    from lakery import ManifestRecord
    from lakery import load_one
    from lakery.builtin import StorableValue

    engine, new_session, registry = _setup(directory)
    record_id = uuid.UUID(json.loads((directory / "record.json").read_text())["id"])
    async with new_session() as session:
        record = await session.scalar(select(ManifestRecord).where(ManifestRecord.id == record_id))
    before = proc_status("VmRSS")
    reset = reset_peak_rss()
    started = time.perf_counter()
    async with new_session() as session:
        obj = await load_one(record, StorableValue, session=session, registry=registry)
    seconds = time.perf_counter() - started
    peak = proc_status("VmHWM")
    array = obj.value
    assert array.nbytes == size and float(array[0]) == seed and float(array[-1]) == 1.0
    await engine.dispose()
    return {"seconds": seconds, "extra": peak - before - array.nbytes, "reset": reset}


def _baseline_save(directory: Path, size: int, seed: int) -> dict[str, Any]:
    import numpy as np

    array = _array(size, seed)
    before = proc_status("VmRSS")
    reset = reset_peak_rss()
    started = time.perf_counter()
    digest = hashlib.sha256(memoryview(array).cast("B")).hexdigest()
    folder = directory / "baseline" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{digest}.tmp"
    with open(temp, "wb") as file:
        np.save(file, array, allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())
    final = folder / f"{digest}.npy"
    os.replace(temp, final)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - started
    peak = proc_status("VmHWM")
    (directory / "baseline.json").write_text(json.dumps({"path": str(final), "sha256": digest}))
    return {"seconds": seconds, "extra": peak - before, "reset": reset}


def _baseline_load(directory: Path, size: int, seed: int) -> dict[str, Any]:
    import numpy as np

    saved = json.loads((directory / "baseline.json").read_text())
    before = proc_status("VmRSS")
    reset = reset_peak_rss()
    started = time.perf_counter()
    array = np.load(saved["path"], allow_pickle=False)
    digest = hashlib.sha256(memoryview(array).cast("B")).hexdigest()
    seconds = time.perf_counter() - started
    peak = proc_status("VmHWM")
    assert digest == saved["sha256"] and array.nbytes == size
    return {"seconds": seconds, "extra": peak - before - array.nbytes, "reset": reset}


def _phase(phase: str, directory: Path, size: int, seed: int) -> dict[str, Any]:
    if phase == "lakery-save":
        return asyncio.run(_lakery_save(directory, size, seed))
    if phase == "lakery-load":
        return asyncio.run(_lakery_load(directory, size, seed))
    if phase == "baseline-save":
        return _baseline_save(directory, size, seed)
    return _baseline_load(directory, size, seed)


def _run_phase(phase: str, directory: Path, size: int, seed: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.numpy_memory", "--phase", phase]
    command += ["--directory", str(directory), "--size-bytes", str(size), "--seed", str(seed)]
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root, env=env)
    if done.returncode != 0:
        msg = f"numpy benchmark phase {phase} failed:\n{done.stderr[-4000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(*, size: int, repeats: int, work: Path, log: Any = print) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    results: dict[str, list[dict[str, Any]]] = {phase: [] for phase in PHASES}
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory(dir=work, prefix="numpy-") as temp:
            # Alternate who goes first, so that page-cache and disk state favour no one.
            order = PHASES if repeat % 2 == 0 else (PHASES[1], PHASES[0], PHASES[3], PHASES[2])
            for phase in order:
                results[phase].append(_run_phase(phase, Path(temp), size, seed=repeat + 2))
        log(
            f"  numpy {size // MiB} MiB repeat {repeat + 1}/{repeats}: "
            + ", ".join(
                f"{phase} {size / results[phase][-1]['seconds'] / 1e9:.2f} GB/s" for phase in PHASES
            )
        )
    rows = []
    for verb in ("save", "load"):
        ours, theirs = results[f"lakery-{verb}"], results[f"baseline-{verb}"]
        peak = max(r["extra"] for r in ours)
        resettable = all(r["reset"] for r in ours + theirs)
        fraction = peak / size
        rows.append(
            Row(
                "numpy",
                f"{verb} {size // MiB} MiB array, FileStorage",
                "GB/s",
                True,
                [size / r["seconds"] / 1e9 for r in ours],
                [size / r["seconds"] / 1e9 for r in theirs],
                f"np.{verb} + sha256" + (" + fsync + rename" if verb == "save" else ""),
                goal=">= 0.7x, peak extra RSS < 10%",
                goal_ratio=0.7,
                checks={"peak extra RSS < 10%": fraction < 0.10},
                extra={
                    "array_bytes": size,
                    "lakery_peak_extra_rss_bytes": [r["extra"] for r in ours],
                    "baseline_peak_extra_rss_bytes": [r["extra"] for r in theirs],
                    "peak_extra_rss_fraction": fraction,
                    "peak_resettable": resettable,
                },
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=PHASES, required=True)
    parser.add_argument("--directory", required=True)
    parser.add_argument("--size-bytes", type=int)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    size = args.size_bytes or args.size_mib * MiB
    print(json.dumps(_phase(args.phase, Path(args.directory), size, args.seed)))


if __name__ == "__main__":
    main()
