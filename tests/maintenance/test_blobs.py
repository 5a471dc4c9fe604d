"""`Storage.list_blobs`, `delete_blob` and `delete_leftovers` on every built-in storage and S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import update

from lakery import BlobRecord
from lakery import StorageError
from lakery.builtin import DatabaseStorage
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.builtin import file_maintenance
from lakery.core.records import utc_now
from lakery.core.storage import BlobInfo
from lakery.core.storage import Storage
from lakery.extra.aws import S3Storage
from lakery.testing.storage import GarbageCollectionConformance
from tests.builtin.test_storages import DatabaseStorageSetup

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class TestMemoryStorage(GarbageCollectionConformance):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        assert isinstance(storage, MemoryStorage)
        storage.modified[blob.sha256] = LONG_AGO


class TestFileStorage(GarbageCollectionConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FileStorage:
        return FileStorage(tmp_path / "blobs")

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        assert isinstance(storage, FileStorage)
        past = LONG_AGO.timestamp()
        os.utime(storage.root / blob.locator["key"], (past, past))

    async def test_lists_only_content_addresses(self, storage: FileStorage) -> None:
        await self.put(storage, b"real")
        digest = sha(b"other")
        (storage.root / "notes.txt").write_text("not a blob")
        (storage.root / digest[:2]).mkdir(exist_ok=True)
        (storage.root / digest[:2] / f".{digest}.{'0' * 32}.tmp").write_bytes(b"partial")
        (storage.root / digest[:2] / "readme").write_text("x")
        wrong_folder = sha(b"misplaced")
        (storage.root / "00").mkdir(exist_ok=True)
        (storage.root / "00" / wrong_folder).write_bytes(b"misplaced")
        (storage.root / "tmp").mkdir(exist_ok=True)
        (storage.root / "tmp" / f"{'1' * 32}.tmp").write_bytes(b"stream")
        outside = storage.root.parent / "outside"
        outside.write_bytes(b"outside")
        (storage.root / digest[:2] / digest).symlink_to(outside)
        assert set(await self.listed(storage)) == {sha(b"real")}

    async def test_listing_an_empty_or_missing_root(self, tmp_path: Path) -> None:
        assert await self.listed(FileStorage(tmp_path / "never-written")) == {}

    async def test_delete_blob_refuses_other_roots(self, storage: FileStorage) -> None:
        await self.put(storage, b"mine")
        [blob] = (await self.listed(storage)).values()
        elsewhere = BlobInfo({**blob.locator, "root": "/tmp"}, blob.sha256, 4, LONG_AGO)
        with pytest.raises(StorageError, match="not a blob under the root"):
            await storage.delete_blob(elsewhere, older_than=utc_now())
        bad = BlobInfo({**blob.locator, "key": "../../etc/passwd"}, blob.sha256, 4, LONG_AGO)
        with pytest.raises(StorageError):
            await storage.delete_blob(bad, older_than=utc_now())

    async def test_a_save_touching_the_file_while_gc_deletes_it_keeps_it(
        self, storage: FileStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The save's touch lands after gc's first age check but before the rename: gc sees
        the fresh time on the file it moved aside and puts it back."""
        await self.put(storage, b"contended")
        [blob] = (await self.listed(storage)).values()
        await self.age(storage, blob)
        path = storage.root / blob.locator["key"]
        real_rename = os.rename

        def rename_after_a_save_touched_it(source: Any, target: Any) -> None:
            os.utime(source)  # what FileStorage does when it finds the content present
            real_rename(source, target)

        monkeypatch.setattr(file_maintenance.os, "rename", rename_after_a_save_touched_it)
        cutoff = utc_now() - timedelta(minutes=1)
        assert not file_maintenance.delete_if_older(path, cutoff.timestamp())
        assert path.read_bytes() == b"contended"
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]

    async def test_a_save_rewriting_the_file_while_gc_deletes_it_keeps_it(
        self, storage: FileStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A save that found the file gone (moved aside) writes it anew; gc then finds its
        moved copy fresh or not, and the new file stays either way."""
        await self.put(storage, b"rewritten")
        [blob] = (await self.listed(storage)).values()
        await self.age(storage, blob)
        path = storage.root / blob.locator["key"]
        real_rename = os.rename

        def rename_then_save_writes_again(source: Any, target: Any) -> None:
            real_rename(source, target)
            path.write_bytes(b"rewritten")  # the save's own (fresh) copy

        monkeypatch.setattr(file_maintenance.os, "rename", rename_then_save_writes_again)
        cutoff = utc_now() - timedelta(minutes=1)
        assert file_maintenance.delete_if_older(path, cutoff.timestamp())  # the old copy
        assert path.read_bytes() == b"rewritten"

    async def test_delete_leftovers(self, storage: FileStorage) -> None:
        await self.put(storage, b"kept")
        digest = sha(b"kept")
        folder = storage.root / digest[:2]
        old_temp = folder / f".{digest}.{'a' * 32}.tmp"
        new_temp = folder / f".{digest}.{'b' * 32}.tmp"
        moved_aside = folder / f".{digest}.{'c' * 32}.gc"
        (storage.root / "tmp").mkdir()
        stream_temp = storage.root / "tmp" / f"{'d' * 32}.tmp"
        foreign = folder / ".hidden"
        for path in (old_temp, new_temp, moved_aside, stream_temp, foreign):
            path.write_bytes(b"x")
        past = LONG_AGO.timestamp()
        for path in (old_temp, moved_aside, stream_temp, foreign):
            os.utime(path, (past, past))
        cutoff = utc_now() - timedelta(minutes=1)
        expected = sorted(
            str(p.relative_to(storage.root)) for p in (old_temp, moved_aside, stream_temp)
        )
        assert sorted(await storage.delete_leftovers(older_than=cutoff, dry_run=True)) == expected
        assert old_temp.exists()
        assert sorted(await storage.delete_leftovers(older_than=cutoff)) == expected
        assert not old_temp.exists() and not moved_aside.exists() and not stream_temp.exists()
        assert new_temp.exists() and foreign.exists()
        assert (folder / digest).read_bytes() == b"kept"


@pytest.mark.usefixtures("database_url")
class TestDatabaseStorage(DatabaseStorageSetup, GarbageCollectionConformance):
    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        await self.session.execute(
            update(BlobRecord).where(BlobRecord.sha256 == blob.sha256).values(created_at=LONG_AGO)
        )
        await self.session.commit()

    async def test_pages_through_many_blobs(self, storage: DatabaseStorage) -> None:
        datas = [f"blob {i}".encode() for i in range(2500)]
        for data in datas:
            await storage.put_value([data], size=len(data), sha256=sha(data), tags={})
        await self.commit(storage)
        assert set(await self.listed(storage)) == {sha(d) for d in datas}


class TestS3Storage(GarbageCollectionConformance):
    @pytest.fixture
    def storage(self, make_storage: Callable[..., S3Storage]) -> S3Storage:
        return make_storage(prefix="gc/test")

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        await anyio.sleep(1.1)  # S3 times have one-second resolution; nothing to backdate

    async def test_reuse_makes_a_blob_fresh(self, storage: Storage) -> None:
        await self.put(storage, b"reused")
        [old] = (await self.listed(storage)).values()
        await anyio.sleep(1.1)
        await self.put(storage, b"reused")
        [fresh] = (await self.listed(storage)).values()
        assert fresh.modified > old.modified
        assert not await storage.delete_blob(old, older_than=fresh.modified)
        assert bytes(await storage.get_value(old.locator)) == b"reused"

    async def test_lists_only_its_prefix_and_content_keys(
        self, storage: S3Storage, make_storage: Callable[..., S3Storage], raw_s3: Any
    ) -> None:
        await self.put(storage, b"mine")
        neighbour = make_storage(prefix="gc/test2")
        await self.put(neighbour, b"theirs")
        digest = sha(b"foreign")
        for key in (
            "gc/test/sha256/zz/" + digest,
            f"gc/test/sha256/{digest[:2]}/{digest}/extra",
            f"gc/test/sha256/00/{digest}",
            "gc/test/tmp/" + "1" * 32,
            "gc/test/readme.txt",
        ):
            await raw_s3.put_object(Bucket=storage.bucket, Key=key, Body=b"x")
        assert set(await self.listed(storage)) == {sha(b"mine")}
        assert set(await self.listed(neighbour)) == {sha(b"theirs")}
        [blob] = (await self.listed(neighbour)).values()
        with pytest.raises(StorageError):
            await storage.delete_blob(blob, older_than=utc_now() + timedelta(hours=1))

    async def test_delete_leftovers(self, storage: S3Storage, raw_s3: Any) -> None:
        await raw_s3.put_object(Bucket=storage.bucket, Key="gc/test/tmp/" + "2" * 32, Body=b"x")
        upload = await raw_s3.create_multipart_upload(
            Bucket=storage.bucket, Key="gc/test/tmp/" + "3" * 32
        )
        await raw_s3.put_object(Bucket=storage.bucket, Key="other/tmp/" + "4" * 32, Body=b"x")
        recent = await storage.delete_leftovers(
            older_than=utc_now() - timedelta(hours=1), dry_run=True
        )
        # moto reports every multipart upload as initiated in 2010, so only the temporary
        # object shows that recent leftovers are kept
        assert not [item for item in recent if "2222" in item]
        later = utc_now() + timedelta(hours=1)
        found = await storage.delete_leftovers(older_than=later, dry_run=True)
        assert len(found) == 2
        assert any(upload["UploadId"] in item for item in found)
        assert sorted(await storage.delete_leftovers(older_than=later)) == sorted(found)
        assert await storage.delete_leftovers(older_than=later) == []
        listing = await raw_s3.list_objects_v2(Bucket=storage.bucket)
        assert [o["Key"] for o in listing.get("Contents", [])] == ["other/tmp/" + "4" * 32]


def test_default_storage_cannot_list() -> None:
    class Minimal(Storage):
        name = "test.minimal@v1"

        async def put_value(self, data: Any, *, size: int, sha256: str, tags: Any) -> Any:
            return {}

        async def get_value(self, locator: Any) -> bytes:
            return b""

    with pytest.raises(NotImplementedError, match="cannot list its blobs"):
        Minimal().list_blobs()
