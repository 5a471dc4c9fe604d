"""Shared by the maintenance tests: a two-part storable, and consistency checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ContentRecord
from lakery import Registry
from lakery import Storable
from lakery import find_manifests
from lakery import new_loader
from lakery.builtin import StorableStream
from lakery.core.records import utc_now
from lakery.core.session import use_session
from lakery.core.storage import Storage
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import Unpacker
from lakery.maintenance import GarbageReport
from lakery.maintenance import collect_garbage
from lakery.maintenance import verify_manifests

GRACE = timedelta(hours=1)


class DocUnpacker(Unpacker["Doc"]):
    """``meta`` (JSON) goes to `meta_storage`, ``body`` (bytes) to `body_storage`."""

    name = "test.maintenance.doc@v1"

    def unpack(self, obj: Doc, registry: Registry) -> UnpackedContents:
        return {
            "meta": UnpackedValue(obj.meta, storage=obj.meta_storage),
            "body": UnpackedValue(obj.body, storage=obj.body_storage),
        }

    def repack(self, cls: type[Doc], contents: Mapping[str, Any], registry: Registry) -> Doc:
        return cls(contents["meta"], bytes(contents["body"]))


@dataclass(frozen=True)
class Doc(Storable, class_id="7e57d0c0a11ce0000000000000000001", unpacker=DocUnpacker()):
    """A storable with two parts in two storages (by default the database and "files")."""

    meta: dict[str, Any]
    body: bytes
    meta_storage: str = field(default="lakery.database@v1", compare=False)
    body_storage: str = field(default="files", compare=False)

    def digest(self) -> str:
        """What identifies the content (for comparing across processes)."""
        text = json.dumps(self.meta, sort_keys=True).encode() + b"\0" + self.body
        return hashlib.sha256(text).hexdigest()


async def collect_items(stream: StorableStream[Any]) -> list[Any]:
    return [item async for item in stream]


async def load_all(new_session: async_sessionmaker, registry: Registry) -> dict[Any, Any]:
    """Every visible manifest, loaded (streams consumed, so verified to their end)."""
    async with new_session() as session:
        records = await find_manifests(session, limit=None)
        async with new_loader(session=session, registry=registry) as loader:
            futures = {record.id: loader.load_soon(record) for record in records}
        loaded = {}
        for manifest_id, future in futures.items():
            obj = future.get()
            if isinstance(obj, StorableStream):
                obj = tuple(await collect_items(obj))
            loaded[manifest_id] = obj
    return loaded


async def assert_consistent(new_session: async_sessionmaker, registry: Registry) -> int:
    """No content row points at missing or partial data; every manifest loads. Returns
    the number of manifests checked."""
    async with new_session() as session:
        report = await verify_manifests(session, registry)
    assert report.ok, [p.message for p in report.problems]
    loaded = await load_all(new_session, registry)
    assert len(loaded) == report.manifests
    return report.manifests


async def blobs(session: AsyncSession, storage: Storage) -> dict[str, int]:
    """sha256 → size of every blob the storage holds."""
    with use_session(session):
        found = {blob.sha256: blob.size async for blob in storage.list_blobs()}
    await session.commit()
    return found


async def referenced(session: AsyncSession) -> set[str]:
    hashes = set((await session.execute(select(ContentRecord.content_hash))).scalars())
    await session.commit()
    return hashes


async def gc_after_grace(
    session: AsyncSession, registry: Registry, *, storages: list[Storage] | None = None
) -> GarbageReport:
    """A deleting collection as if the grace period had passed since every write."""
    return await collect_garbage(
        session,
        registry,
        grace=GRACE,
        delete=True,
        storages=storages,
        now=utc_now() + GRACE + timedelta(seconds=5),
    )


async def assert_gc_exact(
    new_session: async_sessionmaker, registry: Registry, storages: list[Storage]
) -> int:
    """gc (after the grace period) deletes exactly the unreferenced blobs and every
    temporary leftover; returns how many blobs it deleted."""
    async with new_session() as session:
        before = {s.name: await blobs(session, s) for s in storages}
        live = await referenced(session)
        report = await gc_after_grace(session, registry, storages=storages)
        after = {s.name: await blobs(session, s) for s in storages}
    assert not report.errors, report.errors
    by_name = {s.storage: s for s in report.storages}
    deleted = 0
    for storage in storages:
        expected_garbage = set(before[storage.name]) - live
        found = by_name[storage.name]
        assert {b.sha256 for b in found.garbage} == expected_garbage
        assert found.deleted == len(expected_garbage)
        assert set(after[storage.name]) == set(before[storage.name]) & live
        deleted += found.deleted
    return deleted


def leftover_files(root: Path) -> list[str]:
    """Temporary files under a FileStorage root."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or p.name.endswith(".gc"))
    )
