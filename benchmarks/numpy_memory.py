"""Peak memory of saving and loading a large NumPy array through lakery (not a timed test).

    .venv/bin/python benchmarks/numpy_memory.py [--size-mib 512] [--kind model value]

Each phase (save, then load) runs in a fresh subprocess with a FileStorage and an SQLite
database in a temporary directory. The figure reported is the peak resident memory of the
process during the operation above what it held before (for a load, also above the loaded
array itself), read from /proc/self/status (VmHWM, reset through /proc/self/clear_refs when
the kernel allows it). Zero means no copy at all; one full extra copy of the array would
show as 100 %.

Kinds: ``model`` saves a `StorableModel` with the array in a field (the pydantic path),
``value`` a `StorableValue` holding the array.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lakery.extra.pydantic import StorableModel

MiB = 1 << 20


class Weights(StorableModel, class_id="b3e7c1d2a4f54e6b8c9d0e1f2a3b4c5d"):
    name: str
    values: np.ndarray


def _status(field: str) -> int:
    """A memory figure of this process in bytes, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    msg = f"no {field} in /proc/self/status (this benchmark needs Linux)"
    raise RuntimeError(msg)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _setup(directory: Path):  # type: ignore[no-untyped-def]
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlalchemy.ext.asyncio import create_async_engine

    from lakery import Registry
    from lakery.builtin import FileStorage

    engine = create_async_engine(f"sqlite+aiosqlite:///{directory / 'lakery.db'}")
    registry = Registry(
        modules=["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"],
        default_storage=FileStorage(directory / "files"),
    )
    return engine, async_sessionmaker(engine), registry


async def _save(directory: Path, size: int, kind: str) -> dict[str, float]:
    from lakery import BaseRecord
    from lakery import save_one
    from lakery.builtin import StorableValue

    engine, new_session, registry = _setup(directory)
    await BaseRecord.create_all(engine)
    array = np.ones(size // 8, dtype=np.float64)  # touches every page: all resident
    obj = Weights(name="w", values=array) if kind == "model" else StorableValue(array)
    before = _status("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    async with new_session() as session:
        record = await save_one(obj, session=session, registry=registry)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    (directory / "record.json").write_text(json.dumps({"id": str(record.id)}))
    await engine.dispose()
    return {"extra": peak - before, "seconds": seconds, "reset": reset}


async def _load(directory: Path, size: int, kind: str) -> dict[str, float]:
    import uuid

    from sqlalchemy import select

    from lakery import ManifestRecord
    from lakery import load_one
    from lakery.builtin import StorableValue

    engine, new_session, registry = _setup(directory)
    record_id = uuid.UUID(json.loads((directory / "record.json").read_text())["id"])
    async with new_session() as session:
        record = await session.scalar(select(ManifestRecord).where(ManifestRecord.id == record_id))
    cls = Weights if kind == "model" else StorableValue
    before = _status("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    async with new_session() as session:
        obj = await load_one(record, cls, session=session, registry=registry)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    array = obj.values if kind == "model" else obj.value
    assert array.nbytes == size and float(array[-1]) == 1.0
    await engine.dispose()
    return {"extra": peak - before - array.nbytes, "seconds": seconds, "reset": reset}


def _phase(args: argparse.Namespace) -> None:
    run = _save if args.phase == "save" else _load
    result = asyncio.run(run(Path(args.directory), args.size_mib * MiB, args.kind))
    print(json.dumps(result))


def _run_phase(phase: str, directory: Path, size_mib: int, kind: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", phase, "--directory", str(directory)]
    command += ["--size-mib", str(size_mib), "--kind", kind]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--kind", nargs="+", choices=["model", "value"], default=["model", "value"])
    parser.add_argument("--phase", choices=["save", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        args.kind = args.kind[0]
        _phase(args)
        return

    size = args.size_mib * MiB
    print(f"array: {args.size_mib} MiB float64; FileStorage + SQLite; one process per phase")
    print(f"{'kind':<6} {'phase':<5} {'peak above the array':>22} {'of the array':>13} {'time':>8}")
    for kind in args.kind:
        with tempfile.TemporaryDirectory(prefix="lakery-numpy-memory-") as temp:
            for phase in ("save", "load"):
                result = _run_phase(phase, Path(temp), args.size_mib, kind)
                extra = result["extra"]
                note = "" if result["reset"] else "  (peak not resettable: upper bound)"
                print(
                    f"{kind:<6} {phase:<5} {extra / MiB:>18.1f} MiB {100 * extra / size:>12.1f}%"
                    f" {result['seconds']:>7.2f}s{note}"
                )


if __name__ == "__main__":
    main()
