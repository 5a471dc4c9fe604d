"""A conformance suite every storage must pass, including third-party ones.

```python
class TestMyStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path):
        return MyStorage(...)
```

Run with pytest and the anyio plugin (`anyio_backend` fixture returning "asyncio").
Override `commit` for a storage whose writes become visible only when a save commits,
and `leftovers` to let the suite check that failed streams leave nothing behind.

A storage that `lakery gc` can clean also passes `GarbageCollectionConformance` (provide
`age`, which makes a blob look old).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

from lakery.common.exceptions import NotFoundError
from lakery.core.records import utc_now
from lakery.core.serializer import Buffer
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage

__all__ = ["GarbageCollectionConformance", "StorageConformance"]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(parts: list[bytes], *, fail_after: int | None = None) -> AsyncIterator[Buffer]:
    for index, part in enumerate(parts):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("stream failed on purpose")
        yield part
        await anyio.lowlevel.checkpoint()


class StorageConformance:
    """Tests every storage must pass. Subclasses provide a `storage` fixture."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("provide a `storage` fixture")

    async def commit(self, storage: Storage) -> None:
        """Make finished writes visible (a no-op for storages that write immediately)."""

    async def leftovers(self, storage: Storage) -> list[str] | None:
        """Temporary or partial objects left in the storage, or None if it cannot tell."""
        return None

    # -- helpers --------------------------------------------------------------------------

    async def put_value(self, storage: Storage, data: bytes, **tags: str) -> Locator:
        locator = await storage.put_value([data], size=len(data), sha256=_digest(data), tags=tags)
        await self.commit(storage)
        return locator

    async def put_stream(self, storage: Storage, parts: list[bytes]) -> Locator:
        stream = HashingStream(_chunks(parts))
        locator = await storage.put_stream(stream, tags={})
        assert stream.size == sum(map(len, parts)), "put_stream must consume the whole stream"
        await self.commit(storage)
        return locator

    async def read_stream(self, storage: Storage, locator: Locator) -> bytes:
        chunks = await storage.get_stream(locator)
        return b"".join([bytes(chunk) async for chunk in chunks])

    # -- tests ----------------------------------------------------------------------------

    async def test_value_round_trip(self, storage: Storage) -> None:
        data = b"hello lakery" * 100
        locator = await self.put_value(storage, data, kind="test")
        assert bytes(await storage.get_value(locator)) == data

    async def test_value_from_several_buffers(self, storage: Storage) -> None:
        parts: list[Buffer] = [b"head-", memoryview(b"body" * 1000), bytearray(b"-tail")]
        data = b"".join(bytes(p) for p in parts)
        locator = await storage.put_value(parts, size=len(data), sha256=_digest(data), tags={})
        await self.commit(storage)
        assert bytes(await storage.get_value(locator)) == data

    async def test_locator_is_json(self, storage: Storage) -> None:
        locator = await self.put_value(storage, b"json locator")
        copied = json.loads(json.dumps(locator))
        assert bytes(await storage.get_value(copied)) == b"json locator"

    async def test_identical_content_same_locator(self, storage: Storage) -> None:
        first = await self.put_value(storage, b"same bytes")
        second = await self.put_value(storage, b"same bytes")
        assert first == second
        assert bytes(await storage.get_value(second)) == b"same bytes"

    async def test_empty_value(self, storage: Storage) -> None:
        locator = await self.put_value(storage, b"")
        assert bytes(await storage.get_value(locator)) == b""

    async def test_stream_round_trip(self, storage: Storage) -> None:
        rng = random.Random(7)
        parts = [rng.randbytes(rng.randint(0, 70_000)) for _ in range(40)]
        locator = await self.put_stream(storage, parts)
        assert await self.read_stream(storage, locator) == b"".join(parts)

    async def test_empty_stream(self, storage: Storage) -> None:
        locator = await self.put_stream(storage, [])
        assert await self.read_stream(storage, locator) == b""
        assert bytes(await storage.get_value(locator)) == b""

    async def test_value_read_as_stream(self, storage: Storage) -> None:
        data = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
        locator = await self.put_value(storage, data)
        assert await self.read_stream(storage, locator) == data

    async def test_stream_read_as_value(self, storage: Storage) -> None:
        parts = [b"a" * 1000, b"b" * 5000, b"", b"c"]
        locator = await self.put_stream(storage, parts)
        assert bytes(await storage.get_value(locator)) == b"".join(parts)

    async def test_stream_and_value_of_same_bytes_agree(self, storage: Storage) -> None:
        data = b"0123456789" * 5000
        by_value = await self.put_value(storage, data)
        by_stream = await self.put_stream(storage, [data[:777], data[777:]])
        assert bytes(await storage.get_value(by_value)) == data
        assert bytes(await storage.get_value(by_stream)) == data

    async def test_missing_value_raises_not_found(self, storage: Storage) -> None:
        locator = await self.put_value(storage, b"soon gone")
        await storage.delete(locator)
        await self.commit(storage)
        with pytest.raises(NotFoundError):
            await storage.get_value(locator)
        with pytest.raises(FileNotFoundError):  # NotFoundError is also a FileNotFoundError
            await storage.get_stream(locator)

    async def test_delete_is_idempotent(self, storage: Storage) -> None:
        locator = await self.put_value(storage, b"delete twice")
        await storage.delete(locator)
        await storage.delete(locator)

    async def test_failed_stream_leaves_nothing(self, storage: Storage) -> None:
        parts = [b"x" * 10_000] * 5
        stream = HashingStream(_chunks(parts, fail_after=3))
        with pytest.raises(RuntimeError, match="on purpose"):
            await storage.put_stream(stream, tags={})
        await self.commit(storage)
        assert await self.leftovers(storage) in (None, [])

    async def test_cancelled_stream_leaves_nothing(self, storage: Storage) -> None:
        async def slow() -> AsyncIterator[Buffer]:
            yield b"y" * 10_000
            await anyio.sleep(30)
            yield b"never"

        with anyio.move_on_after(0.2):
            await storage.put_stream(HashingStream(slow()), tags={})
        await self.commit(storage)
        assert await self.leftovers(storage) in (None, [])

    async def test_concurrent_writes_of_same_content(self, storage: Storage) -> None:
        data = b"race" * 10_000
        locators: list[Any] = []

        async def write() -> None:
            locators.append(
                await storage.put_value([data], size=len(data), sha256=_digest(data), tags={})
            )

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(write)
        await self.commit(storage)
        for locator in locators:
            assert bytes(await storage.get_value(locator)) == data


class GarbageCollectionConformance:
    """What garbage collection (`lakery gc`) needs from a storage: `list_blobs`,
    `delete_blob` with its age re-check, and a re-write that makes a blob fresh.
    Subclasses provide a `storage` fixture and `age`; `delete_leftovers` is
    storage-specific: test it yourself."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("provide a `storage` fixture")

    async def commit(self, storage: Storage) -> None:
        """Make finished writes visible."""

    async def age(self, storage: Storage, blob: BlobInfo) -> None:
        """Make a blob look written long ago (e.g. set its file time to the year 2000)."""
        raise NotImplementedError("override `age` for your storage")

    async def put(self, storage: Storage, data: bytes) -> Any:
        locator = await storage.put_value([data], size=len(data), sha256=_digest(data), tags={})
        await self.commit(storage)
        return locator

    async def listed(self, storage: Storage) -> dict[str, BlobInfo]:
        return {blob.sha256: blob async for blob in storage.list_blobs()}

    async def test_lists_what_was_written(self, storage: Storage) -> None:
        started = utc_now() - timedelta(seconds=2)
        datas = [b"one", b"two" * 100, b""]
        locators = [await self.put(storage, data) for data in datas]
        stream_data = b"streamed" * 1000
        stream_locator = await storage.put_stream(
            HashingStream(_chunks([stream_data[:100], stream_data[100:]])), tags={}
        )
        await self.commit(storage)
        found = await self.listed(storage)
        assert set(found) == {_digest(d) for d in [*datas, stream_data]}
        for data, locator in zip([*datas, stream_data], [*locators, stream_locator], strict=True):
            blob = found[_digest(data)]
            assert blob.size == len(data)
            assert blob.locator == locator
            assert blob.modified.tzinfo is not None
            assert started <= blob.modified <= utc_now() + timedelta(seconds=2)

    async def test_delete_blob_only_when_old(self, storage: Storage) -> None:
        locator = await self.put(storage, b"garbage")
        [blob] = (await self.listed(storage)).values()
        assert not await storage.delete_blob(blob, older_than=utc_now() - timedelta(hours=1))
        await self.commit(storage)
        assert bytes(await storage.get_value(locator)) == b"garbage"
        assert await storage.delete_blob(blob, older_than=utc_now() + timedelta(hours=1))
        await self.commit(storage)
        with pytest.raises(NotFoundError):
            await storage.get_value(locator)
        assert await self.listed(storage) == {}
        # already gone: nothing to do
        assert not await storage.delete_blob(blob, older_than=utc_now() + timedelta(hours=1))

    async def test_reuse_makes_a_blob_fresh(self, storage: Storage) -> None:
        await self.put(storage, b"reused")
        [blob] = (await self.listed(storage)).values()
        await self.age(storage, blob)
        [old] = (await self.listed(storage)).values()
        cutoff = utc_now() - timedelta(minutes=1)
        assert old.modified < cutoff
        await self.put(storage, b"reused")  # a save writes the same content again
        [fresh] = (await self.listed(storage)).values()
        assert fresh.modified >= cutoff
        # gc listed it when it was old, then a save reused it: the re-check spares it
        assert not await storage.delete_blob(old, older_than=cutoff)
        await self.commit(storage)
        assert bytes(await storage.get_value(old.locator)) == b"reused"
