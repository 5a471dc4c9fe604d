"""Garbage collection: what it deletes, what it spares, and saves racing with it."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import BlobRecord
from lakery import ConfigurationError
from lakery import Registry
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.core.records import utc_now
from lakery.core.storage import BlobInfo
from lakery.core.storage import Storage
from lakery.maintenance import collect_garbage
from lakery.maintenance import delete_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import assert_consistent
from tests.maintenance.helpers import assert_gc_exact
from tests.maintenance.helpers import blobs
from tests.maintenance.helpers import gc_after_grace

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def save_docs(new_session: async_sessionmaker, registry: Registry, docs: list[Doc]) -> list:
    records = []
    async with new_session() as session:
        for doc in docs:
            records.append(await save_one(doc, session=session, registry=registry))
    return records


def docs(count: int, tag: str = "x") -> list[Doc]:
    return [Doc({"n": i, "tag": tag}, f"body {tag} {i}".encode()) for i in range(count)]


async def test_dry_run_by_default_and_recent_blobs_are_spared(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    records = await save_docs(new_session, store, docs(4))
    async with new_session() as session:
        await delete_manifests(session, ids=[records[0].id, records[1].id])
        spared = await collect_garbage(session, store, delete=True)  # nothing is old enough
        assert spared.garbage == 0 and spared.deleted == 0
        by_name = {s.storage: s for s in spared.storages}
        assert by_name["files"].recent == 4 and by_name["lakery.database@v1"].recent == 4
        later = utc_now() + timedelta(days=2)
        dry = await collect_garbage(session, store, now=later)
        assert dry.dry_run and dry.garbage == 4 and dry.deleted == 0
        assert len(await blobs(session, files)) == 4
    assert (
        await assert_gc_exact(new_session, store, [files, store.get_storage("lakery.database@v1")])
        == 4
    )
    assert await assert_consistent(new_session, store) == 2


async def test_shared_content_stays_while_any_record_references_it(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    same = Doc({"shared": True}, b"shared body")
    first, second = await save_docs(new_session, store, [same, same])
    async with new_session() as session:
        await delete_manifests(session, ids=[first.id])
        report = await gc_after_grace(session, store)
        assert report.deleted == 0
        assert {s.storage: s.referenced for s in report.storages}["files"] == 1
        assert await load_one(second, Doc, session=session, registry=store) == same
        await delete_manifests(session, ids=[second.id])
        assert (await gc_after_grace(session, store)).deleted == 2


async def test_a_blob_referenced_from_another_storage_is_kept(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    """gc spares a blob whose hash any content record has, whatever storage it names (the
    same directory may be registered under two names)."""
    body = b'{"same": "bytes"}'
    # the body (bytes) in the database storage has the same hash as a file with that content
    await save_docs(new_session, store, [Doc({"x": 1}, body, body_storage="lakery.database@v1")])
    data_hash = hashlib.sha256(body).hexdigest()
    await files.put_value([body], size=len(body), sha256=data_hash, tags={})
    async with new_session() as session:
        report = await gc_after_grace(session, store, storages=[files])
    assert report.deleted == 0 and report.storages[0].referenced == 1


class HookedFiles(FileStorage):
    """A file storage that runs `before_delete` (e.g. a save) inside `delete_blob`."""

    before_delete: Any = None

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        if self.before_delete is not None:
            hook, self.before_delete = self.before_delete, None
            await hook()
        return await super().delete_blob(blob, older_than=older_than)


async def test_save_reusing_garbage_between_listing_and_deleting_keeps_it(
    new_session: async_sessionmaker, tmp_path: Any
) -> None:
    files = HookedFiles(tmp_path / "hooked", name="files")
    registry = Registry(modules=["lakery.builtin"], storages=[files], default_storage=files)
    doc = Doc({"reuse": 1}, b"reused body", meta_storage="files")
    [record] = await save_docs(new_session, registry, [doc])
    async with new_session() as session:
        await delete_manifests(session, ids=[record.id])
    for blob in [b async for b in files.list_blobs()]:
        os.utime(files.root / blob.locator["key"], (LONG_AGO.timestamp(),) * 2)
    saved: list[Any] = []

    async def save_again() -> None:
        saved.extend(await save_docs(new_session, registry, [doc]))

    files.before_delete = save_again
    async with new_session() as session:
        report = await collect_garbage(session, registry, delete=True, grace=timedelta(hours=1))
    [result] = [s for s in report.storages if s.storage == "files"]
    assert len(result.garbage) == 2  # both parts were old and unreferenced when listed
    assert result.deleted == 0 and result.spared == 2  # the save made both fresh again
    async with new_session() as session:
        assert await load_one(saved[0], Doc, session=session, registry=registry) == doc


class GatedSession(AsyncSession):
    """A session whose commit waits for `gate` (so a save stays open mid-transaction)."""

    reached: anyio.Event
    gate: anyio.Event

    async def commit(self) -> None:
        if getattr(self, "gate", None) is not None:
            self.reached.set()
            await self.gate.wait()
        await super().commit()


async def test_database_blob_reused_by_an_uncommitted_save_is_spared(
    engine: AsyncEngine, new_session: async_sessionmaker, registry: Registry
) -> None:
    """A save upserts the blob (refreshing created_at, holding its row lock) and waits to
    commit; gc lists the blob as old and unreferenced and tries to delete it: its DELETE
    waits for the save and then spares the blob."""
    doc = Doc({"db": 1}, b"db body", body_storage="lakery.database@v1")
    [record] = await save_docs(new_session, registry, [doc])
    async with new_session() as session:
        await delete_manifests(session, ids=[record.id])
        await session.execute(update(BlobRecord).values(created_at=LONG_AGO))
        await session.commit()
    gated = async_sessionmaker(engine, class_=GatedSession)()
    gated.reached, gated.gate = anyio.Event(), anyio.Event()
    results: dict[str, Any] = {}

    async def save() -> None:
        results["record"] = await save_one(doc, session=gated, registry=registry)

    async def collect() -> None:
        await gated.reached.wait()  # the save holds the fresh, locked blob rows
        async with new_session() as session:
            results["gc"] = await collect_garbage(
                session, registry, delete=True, grace=timedelta(hours=1)
            )

    async def release() -> None:
        await gated.reached.wait()
        await anyio.sleep(0.5)  # let gc list the blobs and block on the locked rows
        gated.gate.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(save)
            group.start_soon(collect)
            group.start_soon(release)
    await gated.close()
    [db] = [s for s in results["gc"].storages if s.storage == "lakery.database@v1"]
    assert len(db.garbage) == 2  # listed while old and unreferenced (the save not committed)
    assert db.deleted == 0 and db.spared == 2
    async with new_session() as session:
        assert await load_one(results["record"], Doc, session=session, registry=registry) == doc
    await assert_consistent(new_session, registry)


async def test_storages_that_cannot_list_are_skipped(
    new_session: async_sessionmaker,
) -> None:
    class Opaque(Storage):
        name = "test.opaque@v1"

        async def put_value(self, data: Any, *, size: int, sha256: str, tags: Any) -> Any:
            return {}

        async def get_value(self, locator: Any) -> bytes:
            return b""

    registry = Registry(modules=["lakery.builtin"], storages=[Opaque()])
    async with new_session() as session:
        report = await collect_garbage(session, registry, delete=True)
    [opaque] = [s for s in report.storages if s.storage == "test.opaque@v1"]
    assert opaque.skipped and "cannot list" in opaque.skipped
    assert report.to_dict()["storages"]


async def test_arguments_are_checked(new_session: async_sessionmaker, store: Registry) -> None:
    async with new_session() as session:
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            await collect_garbage(session, store, now=datetime(2030, 1, 1))
        with pytest.raises(ConfigurationError, match="grace"):
            await collect_garbage(session, store, grace=timedelta(seconds=-1))
        report = await collect_garbage(session, store, storages=["files"])
        assert [s.storage for s in report.storages] == ["files"]
