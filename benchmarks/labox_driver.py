"""Bulk save and load of small pydantic models with labox, timed; run inside labox's venv.

    <labox venv>/bin/python benchmarks/labox_driver.py '{"url": ..., "storage": "files",
        "root": "/tmp/x", "count": 10000}'

This file imports neither lakery nor anything of this repository except `reading_fields`
below (the workload, shared with lakery's side of the benchmark), and uses only labox's
public API: `labox.core` (`Registry`, `new_saver`, `new_loader`, `BaseRecord`),
`labox.extra.pydantic` and the built-in storages. It prints one JSON line: the seconds of
the save and of the load, and labox's version.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

CLASS_ID = "5be1d0c4e2a94f7c9a1b3c5d7e9f0a2b"
"""The class id both libraries give the benchmark model."""


def reading_fields(index: int) -> dict[str, Any]:
    """The fields of the `index`-th small model of the workload (about 300 bytes of JSON)."""
    return {
        "sensor": f"sensor-{index % 97:02d}",
        "index": index,
        "taken_at": f"2024-01-{1 + index % 28:02d}T{index % 24:02d}:00:00+00:00",
        "values": [round(index * 0.001 + k * 0.25, 6) for k in range(8)],
        "flags": {"valid": index % 7 != 0, "calibrated": index % 3 == 0},
        "note": "small pydantic storable for the bulk benchmark",
    }


def reading_tags(index: int) -> dict[str, str]:
    return {"workload": "bulk", "index": str(index)}


async def main(config: dict[str, Any]) -> dict[str, Any]:
    import labox
    from labox.builtin import DatabaseStorage
    from labox.builtin import FileStorage
    from labox.core import BaseRecord
    from labox.core import Registry
    from labox.core import new_loader
    from labox.core import new_saver
    from labox.extra.pydantic import StorableModel
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlalchemy.ext.asyncio import create_async_engine

    class Reading(StorableModel, class_id=CLASS_ID):
        sensor: str
        index: int
        taken_at: str
        values: list[float]
        flags: dict[str, bool]
        note: str

    if config["storage"] == "files":
        storage: Any = FileStorage(config["root"], mkdir=True)
    else:
        storage = DatabaseStorage()
    registry = Registry(
        modules=["labox.builtin", "labox.extra.pydantic"],
        storables=[Reading],
        default_storage=storage,
    )
    engine = create_async_engine(config["url"])
    async with engine.begin() as connection:
        await connection.run_sync(BaseRecord.metadata.drop_all)
        await connection.run_sync(BaseRecord.metadata.create_all)
    new_session = async_sessionmaker(engine, expire_on_commit=False)
    count = config["count"]
    objects = [Reading(**reading_fields(i)) for i in range(count)]

    started = time.perf_counter()
    async with new_session() as session:
        async with new_saver(registry, session) as saver:
            saved = [saver.save_soon(o, tags=reading_tags(i)) for i, o in enumerate(objects)]
    save_seconds = time.perf_counter() - started
    records = [future.value for future in saved]

    started = time.perf_counter()
    async with new_session() as session:
        async with new_loader(registry, session) as loader:
            loading = [loader.load_soon(record, Reading) for record in records]
    load_seconds = time.perf_counter() - started
    loaded = [future.value for future in loading]
    assert loaded[-1] == objects[-1] and len(loaded) == count

    async with engine.begin() as connection:
        await connection.run_sync(BaseRecord.metadata.drop_all)
    await engine.dispose()
    return {"save": save_seconds, "load": load_seconds, "version": labox.__version__}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
