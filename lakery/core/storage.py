"""Storages keep the bytes of content parts and find them again from a locator.

A storage writes bytes (or a byte stream) and returns a JSON-able *locator* that lakery
saves in the content record; given that locator it reads the bytes back. The abstract
core is `put_value` and `get_value`; `put_stream` and `get_stream` have default versions
built on them that a storage overrides to stream without holding everything in memory.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import TypeAlias
from typing import TypeVar

import anyio
import anyio.to_thread

from lakery.common.exceptions import NotFoundError
from lakery.core.component import Component
from lakery.core.component import check_component_name
from lakery.core.errors import raise_first
from lakery.core.serializer import Buffer

__all__ = [
    "HASH_ALGORITHM",
    "BlobInfo",
    "HashingStream",
    "Locator",
    "Storage",
    "ValueWrite",
    "hash_buffers",
]

Locator: TypeAlias = dict[str, Any]
"""JSON-able data saved in a content record that tells a storage where the bytes are."""

Item = TypeVar("Item")

HASH_ALGORITHM = "sha256"
"""The content hash lakery records and checks."""

THREAD_THRESHOLD = 1 << 20
"""Buffers larger than this are hashed in a worker thread, off the event loop."""

READ_CHUNK_SIZE = 1 << 20
"""Default chunk size of streamed reads."""


class Storage(Component, abc.ABC):
    """Where the bytes of content parts live.

    Subclasses set a class-level `name` (e.g. ``"lakery.file@v1"``); an instance may be
    given its own name so that two differently configured storages of one type can be
    registered side by side. Locators record the bucket, root or prefix they were written
    to. `FileStorage` reads only under its own root, whatever root a locator names (and
    says so when the file is only under that other root); `S3Storage` reads the bucket
    and key its locator names, so a reconfigured prefix keeps old objects readable.
    """

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None:
            self.name = check_component_name(name, owner=type(self).__qualname__)

    @abc.abstractmethod
    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        """Durably write the concatenation of `data` and return its locator.

        `sha256` (hex) and `size` are already computed; use them to derive a content
        address so that identical content is stored once and a retried write is harmless.
        The write must be atomic: a reader sees all of the bytes or none of them.
        """

    @abc.abstractmethod
    async def get_value(self, locator: Locator) -> Buffer:
        """Read all the bytes at `locator`; raise `NotFoundError` when they are missing."""

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        """Durably write a byte stream and return its locator.

        `stream.sha256` and `stream.size` are known once the stream is exhausted. On any
        error or cancellation nothing must be left visible under a content address. The
        default collects the stream in memory and calls `put_value`.
        """
        chunks = [chunk async for chunk in stream]
        return await self.put_value(chunks, size=stream.size, sha256=stream.sha256, tags=tags)

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        """Return an iterator over the bytes at `locator`.

        Raise `NotFoundError` here, before iteration, when the data is missing. The default
        reads the whole value and yields it in chunks.
        """
        data = memoryview(await self.get_value(locator))
        return _iter_chunks(data)

    async def delete(self, locator: Locator) -> None:
        """Remove the bytes at `locator` (used by garbage collection). Missing data is fine."""
        msg = f"{type(self).__name__} cannot delete data"
        raise NotImplementedError(msg)

    def uri(self, locator: Locator) -> str | None:
        """A URI for people to find the data (shown in the Dagster UI), if there is one."""
        return None

    def local_path(self, locator: Locator) -> str | None:
        """A file on this machine that holds exactly the bytes at `locator`, or None.

        For readers that need random access (e.g. reading a few columns of a Parquet
        file); they must not write to it. The default is None: the data is not local.
        """
        return None

    # -- maintenance (garbage collection) -----------------------------------------------

    def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Iterate over every blob this storage holds at its content addresses.

        Used by garbage collection. Temporary objects of writes in progress are not blobs
        and are not listed. A blob's `BlobInfo.modified` must be the last time it was
        written *or reused by a save* (a storage that finds identical content already
        present marks it as fresh), so that a collection that spares recent blobs never
        removes one that a save is about to reference.

        The default raises `NotImplementedError`: a storage that cannot list its blobs is
        skipped by garbage collection.
        """
        msg = (
            f"{type(self).__name__} ({self.name!r}) cannot list its blobs, so garbage "
            "collection skips it; implement Storage.list_blobs() and Storage.delete_blob()"
        )
        raise NotImplementedError(msg)

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """Delete a listed blob, but only if it was still last written before `older_than`.

        The age is checked again at the moment of deletion (as atomically as the backend
        allows), so a save that reused the blob since it was listed keeps it. Return
        whether the blob was deleted. The default raises `NotImplementedError`.
        """
        msg = f"{type(self).__name__} ({self.name!r}) cannot delete blobs conditionally"
        raise NotImplementedError(msg)

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Remove what interrupted writes left behind (temporary files, unfinished uploads)
        that was last touched before `older_than`; return descriptions of what was (with
        `dry_run`: would be) removed. The default finds nothing."""
        return []

    async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
        """Write several values and return their locators, in order.

        Savers call this with many small values at once. The default runs `put_value` for
        each, `BATCH_CONCURRENCY` at a time; override it when the backend can batch.
        """
        locators: list[Locator] = [{}] * len(writes)

        async def put(index: int, write: ValueWrite, limiter: anyio.CapacityLimiter) -> None:
            async with limiter:
                locators[index] = await self.put_value(
                    write.data, size=write.size, sha256=write.sha256, tags=write.tags
                )

        await _run_all(put, writes)
        return locators

    async def get_values(self, locators: Sequence[Locator]) -> list[Buffer | NotFoundError]:
        """Read several values, in order; a missing one gives a `NotFoundError` in its place.

        Loaders call this with many small values at once. The default runs `get_value` for
        each, `BATCH_CONCURRENCY` at a time; override it when the backend can batch.
        """
        results: list[Buffer | NotFoundError] = [b""] * len(locators)

        async def get(index: int, locator: Locator, limiter: anyio.CapacityLimiter) -> None:
            async with limiter:
                try:
                    results[index] = await self.get_value(locator)
                except NotFoundError as exc:
                    results[index] = exc

        await _run_all(get, locators)
        return results


@dataclass(frozen=True)
class BlobInfo:
    """One blob found by `Storage.list_blobs`.

    Attributes:
        locator: the blob's locator, as a save would have recorded it.
        sha256: the hex sha256 of the blob's content (from its content address).
        size: its size in bytes, as the storage reports it.
        modified: when it was last written or reused by a save (timezone-aware).
    """

    locator: Locator
    sha256: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class ValueWrite:
    """One value for `Storage.put_values`: the arguments of `Storage.put_value`."""

    data: Sequence[Buffer]
    size: int
    sha256: str
    tags: Mapping[str, str]


BATCH_CONCURRENCY = 16
"""How many single reads or writes the default batch methods run at once."""


async def _run_all(
    function: Callable[[int, Item, anyio.CapacityLimiter], Coroutine[Any, Any, None]],
    items: Sequence[Item],
) -> None:
    limiter = anyio.CapacityLimiter(BATCH_CONCURRENCY)
    try:
        async with anyio.create_task_group() as group:
            for index, item in enumerate(items):
                group.start_soon(function, index, item, limiter)
    except BaseExceptionGroup as group_error:
        raise_first(group_error)


async def _iter_chunks(data: memoryview) -> AsyncIterator[Buffer]:
    for start in range(0, len(data), READ_CHUNK_SIZE):
        yield data[start : start + READ_CHUNK_SIZE]


def hash_buffers(buffers: Sequence[Buffer]) -> tuple[int, str]:
    """Return the total size and sha256 hex digest of the concatenated buffers."""
    hasher = hashlib.sha256()
    size = 0
    for buffer in buffers:
        hasher.update(buffer)
        size += memoryview(buffer).nbytes
    return size, hasher.hexdigest()


class HashingStream:
    """An async iterator over byte chunks that counts and hashes them as they pass.

    `size` and `sha256` are available once the stream has been fully consumed.
    """

    def __init__(self, chunks: AsyncIterator[Buffer]) -> None:
        self._chunks = chunks
        self._hasher = hashlib.sha256()
        self._size = 0
        self._done = False

    def __aiter__(self) -> HashingStream:
        return self

    async def __anext__(self) -> Buffer:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        view = memoryview(chunk)
        if view.nbytes > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(self._hasher.update, view)
        else:
            self._hasher.update(view)
        self._size += view.nbytes
        return chunk

    @property
    def size(self) -> int:
        """Number of bytes that passed through."""
        self._check_done()
        return self._size

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes that passed through."""
        self._check_done()
        return self._hasher.hexdigest()

    def _check_done(self) -> None:
        if not self._done:
            msg = "the stream's size and hash are known only after it is fully consumed"
            raise RuntimeError(msg)
