"""Reading objects for `S3Storage`: whole bodies into one buffer, and ranged chunks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from botocore.exceptions import IncompleteReadError

from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import Locator

if TYPE_CHECKING:
    from lakery.extra.aws.storage import S3Storage

__all__ = ["ObjectReader", "read_body"]

_READ_STEP = 1 << 20


async def read_body(response: Mapping[str, Any]) -> bytearray:
    """The whole body of a GetObject response, read into one preallocated buffer."""
    length = int(response["ContentLength"])
    data = bytearray(length)
    view = memoryview(data)
    read = 0
    async with response["Body"] as body:
        while read < length:
            n = await body.readinto(view[read : read + _READ_STEP])
            if not n:
                raise IncompleteReadError(actual_bytes=read, expected_bytes=length)
            read += n
        if await body.read():  # at the end: also lets botocore check a response checksum
            raise IncompleteReadError(actual_bytes=read + 1, expected_bytes=length)
    return data


class ObjectReader:
    """Reads an object in ranged GETs of `read_chunk_size`, one chunk ahead of the reader.

    Nothing is requested before the first `__anext__`. While the reader works on a chunk,
    the next one is fetched in a background task, so the latency of a request overlaps
    with the reader's work; no connection stays open between requests, so an unconsumed
    or paused reader does not hold on to the connection pool. `aclose()` (or exhausting
    the reader) cancels the fetch ahead.
    """

    def __init__(self, storage: S3Storage, locator: Locator, bucket: str, key: str, size: int):
        self._storage = storage
        self._locator = locator
        self._where = f"s3://{bucket}/{key}"
        self._size = size
        self._requested = 0  # bytes requested so far
        self._ahead: asyncio.Task[bytearray] | None = None

    def __aiter__(self) -> ObjectReader:
        return self

    async def __anext__(self) -> Buffer:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            if self._requested >= self._size:
                raise StopAsyncIteration
            chunk = await self._fetch_next()
        else:
            chunk = await ahead
        if self._requested < self._size:
            self._ahead = asyncio.ensure_future(self._fetch_next())
            self._ahead.add_done_callback(_retrieve)
        return chunk

    async def _fetch_next(self) -> bytearray:
        start = self._requested
        end = min(start + self._storage.read_chunk_size, self._size) - 1
        self._requested = end + 1
        chunk = await self._storage.read_range(self._locator, start, end)
        if len(chunk) != end + 1 - start:
            msg = f"{self._where} changed while it was being read; read it again"
            raise StorageError(msg)
        return chunk

    async def aclose(self) -> None:
        """Stop reading: cancel the chunk being fetched ahead, if any."""
        self._requested = self._size
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.done():
            ahead.cancel()
            await asyncio.wait([ahead])  # its outcome is dropped; our own cancellation is not

    def __del__(self) -> None:
        ahead = self._ahead
        if ahead is not None and not ahead.done():
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                ahead.cancel()


def _retrieve(task: asyncio.Task[bytearray]) -> None:
    """Mark a fetch-ahead error as seen: a reader abandoned halfway must not log it."""
    if not task.cancelled():
        task.exception()
