"""The shared storage and garbage-collection conformance suites, run on AzureBlobStorage
against a real Azurite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lakery.core.storage import BlobInfo
from lakery.core.storage import Storage
from lakery.extra.azure import AzureBlobStorage
from lakery.testing.storage import GarbageCollectionConformance
from lakery.testing.storage import StorageConformance
from tests.extra_azure.conftest import blob_names


class TestAzureBlobStorage(StorageConformance):
    @pytest.fixture
    def storage(
        self, make_storage: Callable[..., AzureBlobStorage], tmp_path: Path
    ) -> AzureBlobStorage:
        self.spool_dir = tmp_path
        return make_storage(prefix="conformance", stream_spool_dir=tmp_path)

    async def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, AzureBlobStorage)
        names = [n for n in await blob_names(storage) if "/sha256/" not in f"/{n}"]
        return names + [f"spool:{p.name}" for p in self.spool_dir.iterdir()]


class TestAzureBlobStorageOneShot(TestAzureBlobStorage):
    """Large single puts and read chunks: values and streams in one request each."""

    @pytest.fixture
    def storage(
        self, make_storage: Callable[..., AzureBlobStorage], tmp_path: Path
    ) -> AzureBlobStorage:
        self.spool_dir = tmp_path
        return make_storage(
            single_put_size=64 << 20,
            block_size=8 << 20,
            read_chunk_size=8 << 20,
            stream_spool_dir=tmp_path,
        )


class TestAzureGarbageCollection(GarbageCollectionConformance):
    @pytest.fixture
    def storage(self, make_storage: Callable[..., AzureBlobStorage]) -> AzureBlobStorage:
        return make_storage(prefix="gc")

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        await anyio.sleep(1.1)  # Last-Modified has one-second resolution; nothing to backdate

    async def test_reuse_makes_a_blob_fresh(self, storage: Storage) -> None:
        await self.put(storage, b"reused")
        [old] = (await self.listed(storage)).values()
        await anyio.sleep(1.1)
        await self.put(storage, b"reused")
        [fresh] = (await self.listed(storage)).values()
        assert fresh.modified > old.modified
        assert not await storage.delete_blob(old, older_than=fresh.modified)
        assert bytes(await storage.get_value(old.locator)) == b"reused"
