"""Bulk save and load of small pydantic storables: objects/s on SQLite and PostgreSQL.

For each database (SQLite, PostgreSQL) and storage (files, the database itself), each
repeat runs, interleaved (the order alternates from one repeat to the next):

- lakery: one `new_saver` block saving `count` small `StorableModel`s, then one
  `new_loader` block loading them back from the records the save returned;
- labox (installed in a throwaway venv, see `labox_env`): the same models, tags, storage
  kind and database (its own tables), in its own process, timed inside that process;
- a plain batched SQLAlchemy insert of the same number of manifest and content rows (no
  serialization, hashing or blobs): the floor a save cannot beat;
- with file storage, also a plain loop writing each model's JSON to a file named by its
  sha256 (``open``/``write``/``close``, no temporary name, no fsync): the rate at which
  this file system creates small files, which no file-per-object design can beat.

Each run starts from empty tables and an empty storage directory. The directories of all
runs are removed only at the end: on a file system without a journal (ext4 as this
benchmark's machine has it) creating a file right after many were deleted is several
times slower (the kernel skips every recently deleted inode one by one when it picks a
new one), so removing each run's files before the next run would slow down whichever
run comes next, and measure the benchmark's own clean-up.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks import labox_env
from benchmarks.common import Row
from benchmarks.labox_driver import CLASS_ID
from benchmarks.labox_driver import reading_fields
from benchmarks.labox_driver import reading_tags
from lakery import BaseRecord
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import new_loader
from lakery import new_saver
from lakery.builtin import FileStorage
from lakery.core.records import utc_now
from lakery.extra.pydantic import StorableModel


class Reading(StorableModel, class_id=CLASS_ID):
    """The benchmark's small model (the same fields as labox's side)."""

    sensor: str
    index: int
    taken_at: str
    values: list[float]
    flags: dict[str, bool]
    note: str


MODULES = ["lakery.builtin", "lakery.extra.pydantic"]


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(BaseRecord.metadata.drop_all)
        await connection.run_sync(BaseRecord.metadata.create_all)


async def lakery_run(url: str, storage: str, root: Path, count: int) -> tuple[float, float]:
    """One timed lakery save and load; (save seconds, load seconds)."""
    if storage == "files":
        registry = Registry(modules=MODULES, default_storage=FileStorage(root))
    else:
        registry = Registry(modules=MODULES)  # the database storage is the default
    engine = create_async_engine(url)
    await reset(engine)
    new_session = async_sessionmaker(engine, expire_on_commit=True)
    objects = [Reading(**reading_fields(i)) for i in range(count)]

    started = time.perf_counter()
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            saved = [saver.save_soon(o, tags=reading_tags(i)) for i, o in enumerate(objects)]
    save_seconds = time.perf_counter() - started
    records = [future.get() for future in saved]

    started = time.perf_counter()
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            loading = [loader.load_soon(record, Reading) for record in records]
    load_seconds = time.perf_counter() - started
    loaded = [future.get() for future in loading]
    assert loaded[-1] == objects[-1] and len(loaded) == count
    await engine.dispose()
    return save_seconds, load_seconds


async def plain_insert(url: str, count: int) -> float:
    """Seconds for one batched SQLAlchemy insert per table of the same rows (no blobs)."""
    engine = create_async_engine(url)
    await reset(engine)
    now = utc_now()
    class_id = uuid.UUID(CLASS_ID)
    manifests, contents = [], []
    started = time.perf_counter()
    for i in range(count):
        manifest_id = uuid.uuid4()
        manifests.append(
            {
                "id": manifest_id,
                "created_at": now,
                "class_id": class_id,
                "unpacker_name": "lakery.pydantic.model@v1",
                "tags": reading_tags(i),
            }
        )
        contents.append(
            {
                "id": uuid.uuid4(),
                "manifest_id": manifest_id,
                "content_key": "model",
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "content_size": 300,
                "content_hash": "0" * 64,
                "content_hash_algorithm": "sha256",
                "serializer_name": "lakery.pydantic.json@v1",
                "serializer_type": "value",
                "storage_name": "lakery.file@v1",
                "storage_data": {"root": "/x", "key": "00/" + "0" * 64},
                "tags": {},
                "created_at": now,
            }
        )
    async with async_sessionmaker(engine)() as session:
        await session.execute(insert(ManifestRecord), manifests)
        await session.execute(insert(ContentRecord), contents)
        await session.commit()
    seconds = time.perf_counter() - started
    await engine.dispose()
    return seconds


def raw_file_writes(root: Path, count: int) -> float:
    """Seconds to write `count` model bodies to content-addressed files, nothing else."""
    import hashlib

    bodies = [Reading(**reading_fields(i)).model_dump_json().encode() for i in range(count)]
    started = time.perf_counter()
    for body in bodies:
        digest = hashlib.sha256(body).hexdigest()
        folder = root / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / digest, "wb") as file:
            file.write(body)
    return time.perf_counter() - started


def run(
    *,
    count: int,
    repeats: int,
    postgres_url: str | None,
    labox_python: Path | None,
    work: Path,
    log: Any = print,
) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    databases: list[tuple[str, str | None]] = [("sqlite", None)]
    if postgres_url is not None:
        databases.append(("postgresql", postgres_url))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=work, prefix="bulk-") as runs:
        for database, url in databases:
            for storage in ("files", "database"):
                case = Case(database, url, storage, count, labox_python, Path(runs))
                rows.extend(case.run(repeats, log))
    return rows


class Case:
    """One database and storage: lakery, labox and the baselines, `repeats` times each."""

    def __init__(
        self,
        database: str,
        url: str | None,
        storage: str,
        count: int,
        labox_python: Path | None,
        runs: Path,
    ) -> None:
        self.database, self.url, self.storage, self.count = database, url, storage, count
        self.labox_python = labox_python
        self.runs = runs
        self.samples: dict[str, list[float]] = {k: [] for k in ("save", "load", "lsave", "lload")}
        self.plain: list[float] = []
        self.raw_files: list[float] = []

    def new_run(self, who: str) -> tuple[str, Path]:
        """A new directory (every run has its own; all are removed at the end) and the
        database URL of a run."""
        temp = Path(tempfile.mkdtemp(dir=self.runs, prefix=f"{who}-"))
        return self.url or f"sqlite+aiosqlite:///{temp / 'bench.db'}", temp

    def run(self, repeats: int, log: Any) -> list[Row]:
        count, samples = self.count, self.samples
        for repeat in range(repeats):
            order = ["lakery", "labox"] if repeat % 2 == 0 else ["labox", "lakery"]
            for who in order:
                db, temp = self.new_run(who)
                files = temp / "files"
                if who == "lakery":
                    save, load = asyncio.run(lakery_run(db, self.storage, files, count))
                    samples["save"].append(count / save)
                    samples["load"].append(count / load)
                elif self.labox_python is not None:
                    config = {"url": db, "storage": self.storage, "root": str(files)}
                    result = labox_env.run_driver(self.labox_python, {**config, "count": count})
                    samples["lsave"].append(count / result["save"])
                    samples["lload"].append(count / result["load"])
            db, temp = self.new_run("plain")
            self.plain.append(count / asyncio.run(plain_insert(db, count)))
            if self.storage == "files":
                self.raw_files.append(count / raw_file_writes(temp / "raw", count))
            log(
                f"  bulk {self.database}/{self.storage} repeat {repeat + 1}/{repeats}: lakery "
                f"save {samples['save'][-1]:,.0f}/s load {samples['load'][-1]:,.0f}/s"
                + (
                    f"; labox save {samples['lsave'][-1]:,.0f}/s load {samples['lload'][-1]:,.0f}/s"
                    if samples["lsave"]
                    else ""
                )
            )
        return self.rows()

    def rows(self) -> list[Row]:
        samples, count = self.samples, self.count
        case = f"{self.database}/{self.storage}"
        extra = {"count": count, "plain_insert_objects_per_s": self.plain}
        rows = [
            Row(
                "bulk",
                f"{verb} {case}",
                "objects/s",
                True,
                samples[ours],
                samples[theirs],
                "labox 0.1.0" if samples[theirs] else "",
                goal=">= 5x labox" if samples[theirs] else "",
                goal_ratio=5.0 if samples[theirs] else None,
                extra=dict(extra),
            )
            for verb, ours, theirs in (("save", "save", "lsave"), ("load", "load", "lload"))
        ]
        rows.append(
            Row(
                "bulk",
                f"save {case} vs plain insert",
                "objects/s",
                True,
                list(samples["save"]),
                self.plain,
                "plain batched insert, 2 rows/object",
                extra={"count": count},
            )
        )
        if self.raw_files:
            rows.append(
                Row(
                    "bulk",
                    f"save {case} vs raw file writes",
                    "objects/s",
                    True,
                    list(samples["save"]),
                    self.raw_files,
                    "raw small-file writes, no fsync",
                    extra={"count": count},
                )
            )
        return rows
