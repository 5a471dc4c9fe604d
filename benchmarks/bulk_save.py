"""Bulk save and load of small StorableValues: objects/s on SQLite and PostgreSQL.

Prints lakery's rate next to a plain batched SQLAlchemy insert of the same number of
manifest and content rows (the floor a save cannot beat), measured side by side.

    python benchmarks/bulk_save.py [--count 10000] [--repeats 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import new_loader
from lakery import new_saver
from lakery.builtin import FileStorage
from lakery.builtin import StorableValue
from lakery.core.records import utc_now


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(BaseRecord.metadata.drop_all)
        await connection.run_sync(BaseRecord.metadata.create_all)


async def lakery_save(engine: AsyncEngine, registry: Registry, count: int) -> list[ManifestRecord]:
    new_session = async_sessionmaker(engine, expire_on_commit=True)
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [
                saver.save_soon(StorableValue({"i": i, "name": f"item-{i}"}), tags={"n": str(i)})
                for i in range(count)
            ]
    return [f.get() for f in futures]


async def lakery_load(engine: AsyncEngine, registry: Registry, records: list) -> None:  # type: ignore[type-arg]
    new_session = async_sessionmaker(engine, expire_on_commit=True)
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            futures = [loader.load_soon(r, StorableValue) for r in records]
    assert futures[-1].get().value["i"] == len(records) - 1


async def plain_insert(engine: AsyncEngine, count: int) -> None:
    """The same rows through one batched SQLAlchemy insert per table, no blobs."""
    now = utc_now()
    manifests, contents = [], []
    for i in range(count):
        manifest_id = uuid.uuid4()
        manifests.append(
            {
                "id": manifest_id,
                "created_at": now,
                "class_id": uuid.uuid4(),
                "unpacker_name": "u",
                "tags": {"n": str(i)},
            }
        )
        contents.append(
            {
                "id": uuid.uuid4(),
                "manifest_id": manifest_id,
                "content_key": "value",
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "content_size": 10,
                "content_hash": "0" * 64,
                "content_hash_algorithm": "sha256",
                "serializer_name": "s",
                "serializer_type": "value",
                "storage_name": "x",
                "storage_data": {"sha256": "0" * 64},
                "tags": {},
                "created_at": now,
            }
        )
    async with async_sessionmaker(engine)() as session:
        await session.execute(insert(ManifestRecord), manifests)
        await session.execute(insert(ContentRecord), contents)
        await session.commit()


async def timed(function: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    start = time.perf_counter()
    result = await function()
    return time.perf_counter() - start, result


async def run(url: str, label: str, count: int, repeats: int, root: Path) -> None:
    engine = create_async_engine(url)
    storages = {
        "database": Registry(modules=["lakery.builtin"]),
        "files": Registry(modules=["lakery.builtin"], default_storage=FileStorage(root / label)),
    }
    rates: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved, so machine noise hits every variant alike
        await reset(engine)
        seconds, _ = await timed(lambda: plain_insert(engine, count))
        rates.setdefault("plain insert", []).append(count / seconds)
        for name, registry in storages.items():
            await reset(engine)
            seconds, records = await timed(lambda r=registry: lakery_save(engine, r, count))
            rates.setdefault(f"save ({name})", []).append(count / seconds)
            seconds, _ = await timed(
                lambda r=registry, saved=records: lakery_load(engine, r, saved)  # type: ignore[arg-type]
            )
            rates.setdefault(f"load ({name})", []).append(count / seconds)
    await engine.dispose()
    floor = statistics.median(rates["plain insert"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{label:10} {name:18} {median:10,.0f} objects/s  {median / floor:6.2f}x plain insert"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await run(
            f"sqlite+aiosqlite:///{root / 'bench.db'}", "sqlite", args.count, args.repeats, root
        )
        try:
            engine = create_async_engine(args.postgres)
            async with engine.connect() as connection:
                await connection.execute(text("select 1"))
            await engine.dispose()
        except Exception as exc:
            print(f"postgresql skipped: {exc!r}")
            return
        await run(args.postgres, "postgresql", args.count, args.repeats, root)


if __name__ == "__main__":
    asyncio.run(main())
