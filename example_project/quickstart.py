"""lakery from plain async Python, no Dagster: save and load on SQLite and local files.

    python example_project/quickstart.py [--data DIR]

Everything goes under ``.lakery/quickstart/`` (or DIR), so a second run finds the first
run's data: identical content is stored once. The Dagster example is `example_project`
(``bash scripts/example.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue


@dataclass
class Measurement(StorableDataclass, class_id="3f7c1e2a9b8d4c5e8f0a1b2c3d4e5f60"):
    """One sensor's readings for a day."""

    sensor: str
    day: str
    readings: list[float]
    notes: dict[str, str]


async def readings_stream(count: int) -> AsyncIterator[dict[str, float]]:
    """A stream too long to want in memory at once (saved item by item)."""
    for i in range(count):
        yield {"t": float(i), "value": (i * 7919 % 1000) / 10}


async def main(data: Path) -> None:
    """Save, load back and print; `data` is an existing, absolute directory."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{data / 'lakery.db'}")
    new_session = async_sessionmaker(engine, expire_on_commit=True)
    await BaseRecord.create_all(engine)
    files = FileStorage(data / "blobs")
    registry = Registry(modules=["lakery.builtin"], storages=[files])

    measurements = [
        Measurement(f"sensor-{s}", f"2026-11-{d:02d}", [s + d / 10, s * d / 3.0], {"unit": "°C"})
        for s in range(1, 4)
        for d in range(1, 4)
    ]
    async with new_session() as session:
        # One object, kept in the database itself (the registry's default storage).
        summary = await save_one(
            StorableValue({"sensors": 3, "days": 3}),
            session=session,
            registry=registry,
            tags={"kind": "summary"},
        )
        # Many objects in one transaction; the stream goes to local files.
        async with new_saver(session=session, registry=registry) as saver:
            futures = [
                saver.save_soon(m, tags={"sensor": m.sensor, "day": m.day}) for m in measurements
            ]
            stream_future = saver.save_soon(
                StorableStream(readings_stream(10_000), storage=FileStorage),
                tags={"kind": "stream"},
            )
    records = [f.get() for f in futures]

    async with new_session() as session:
        loaded_summary = await load_one(summary, StorableValue, session=session, registry=registry)
        async with new_loader(session=session, registry=registry) as loader:
            loads = [loader.load_soon(r, Measurement) for r in records]
            stream_load = loader.load_soon(stream_future.get(), StorableStream)
        assert [f.get() for f in loads] == measurements
        items = [item async for item in stream_load.get()]
        assert len(items) == 10_000

        manifests = await session.scalar(select(func.count()).select_from(ManifestRecord))
        total = await session.scalar(select(func.sum(ContentRecord.content_size)))

    print(f"lakery quickstart — data in {data}")
    print(f"  summary loaded back: {loaded_summary.value}")
    print(f"  {len(records)} measurements loaded back and equal to what was saved")
    print(f"  stream of {len(items)} readings loaded back and verified")
    print()
    print(f"{'manifest':38} {'class / tags':40} parts")
    for record in [summary, *records[:3], stream_future.get()]:
        tags = ", ".join(f"{k}={v}" for k, v in record.tags.items())
        print(f"{record.id!s:38} {tags:40} {len(record.contents)}")
        for content in record.contents:
            where = content.storage_data.get("key", content.storage_data.get("sha256", ""))
            print(
                f"    {content.content_key:10} {content.content_type:22} "
                f"{content.content_size:>8} B  {content.storage_name:20} {where[:30]}"
            )
    print(f"  ... {manifests} manifests in the database, {total} bytes of content recorded")
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(".lakery/quickstart"), help="where to keep data"
    )
    data = parser.parse_args().data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(data))
