"""The shared storage and garbage-collection conformance suites, run on GCSStorage
against a real gcp-storage-emulator."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from lakery.core.storage import BlobInfo
from lakery.core.storage import Storage
from lakery.extra.gcs import GCSStorage
from lakery.testing.storage import GarbageCollectionConformance
from lakery.testing.storage import StorageConformance
from tests.extra_gcs.conftest import object_names


class TestGCSStorage(StorageConformance):
    @pytest.fixture
    def storage(self, make_storage: Callable[..., GCSStorage]) -> GCSStorage:
        return make_storage(prefix="conformance")

    async def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, GCSStorage)
        return [n for n in await object_names(storage) if "/sha256/" not in f"/{n}"]


class TestGCSStorageOneShot(TestGCSStorage):
    """Large single uploads and read chunks: values and streams in one request each."""

    @pytest.fixture
    def storage(self, make_storage: Callable[..., GCSStorage]) -> GCSStorage:
        return make_storage(single_put_size=64 << 20, chunk_size=8 << 20, read_chunk_size=8 << 20)


class TestGCSGarbageCollection(GarbageCollectionConformance):
    @pytest.fixture
    def storage(self, make_storage: Callable[..., GCSStorage]) -> GCSStorage:
        return make_storage(prefix="gc")

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        await anyio.sleep(1.1)  # GCS sets `updated` itself; nothing to backdate

    async def test_reuse_makes_a_blob_fresh(self, storage: Storage) -> None:
        await self.put(storage, b"reused")
        [old] = (await self.listed(storage)).values()
        await anyio.sleep(1.1)
        await self.put(storage, b"reused")
        [fresh] = (await self.listed(storage)).values()
        assert fresh.modified > old.modified
        assert not await storage.delete_blob(old, older_than=fresh.modified)
        assert bytes(await storage.get_value(old.locator)) == b"reused"
