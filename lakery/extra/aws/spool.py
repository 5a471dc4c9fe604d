"""A local spool file for `S3Storage.put_stream`: the stream is written to disk while it is
hashed, so that it can be uploaded straight to its content address once the hash is known.

The file is anonymous: `tempfile.TemporaryFile` has no name on Linux (``O_TMPFILE``) and is
unlinked at once elsewhere on POSIX, so the operating system reclaims its space when it is
closed, whatever happens, even when the process is killed. Every file operation runs in a
worker thread; the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import tempfile
import threading
import zlib
from typing import IO

import anyio
import anyio.to_thread

__all__ = ["SpoolFile", "crc32_b64", "spool_directory"]

logger = logging.getLogger("lakery.extra.aws")

CLOSE_TIMEOUT = 60.0
"""Seconds that closing the file may take, shielded from cancellation."""


def spool_directory(configured: str | os.PathLike[str] | None) -> str:
    """The directory to spool to: the configured one, else the system's temporary one."""
    return os.fspath(configured) if configured is not None else tempfile.gettempdir()


def crc32_b64(data: bytes | memoryview) -> str:
    """The CRC32 of `data` as S3's ``ChecksumCRC32`` wants it (base64, big-endian)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


class SpoolFile:
    """An anonymous temporary file, appended to and read back at offsets.

    `write_soon` starts writing a buffer in a worker thread and returns at once, so that
    the next buffer can be produced (read from the stream, hashed) while this one goes to
    disk; `settle` waits for that write. `size` counts the bytes of completed writes only:
    after a failed write (a full disk) the bytes before it are still there, and nothing
    after them is ever read.
    """

    def __init__(self, file: IO[bytes], free: int) -> None:
        self._file = file
        self._lock = threading.Lock()  # a close waits for a write or read in progress
        self._pending: tuple[bytes, asyncio.Future[None]] | None = None
        self.size = 0
        self.free_at_start = free
        """Free bytes on the spool's file system when the file was created."""

    @classmethod
    async def create(cls, directory: str) -> SpoolFile:
        def create() -> SpoolFile:
            # closed by `close()`, which put_stream calls in a finally clause
            file = tempfile.TemporaryFile(dir=directory, prefix="lakery-spool-", buffering=0)  # noqa: SIM115
            try:
                free = shutil.disk_usage(directory).free
            except OSError:  # pragma: no cover - the file was just created there
                free = 0
            return cls(file, free)

        return await anyio.to_thread.run_sync(create)

    def write_soon(self, data: bytes) -> None:
        """Start appending `data` in a worker thread; call `settle` before the next one."""
        if self._pending is not None:
            raise RuntimeError("settle() the previous write first")
        write = anyio.to_thread.run_sync(self._write_at, data, self.size)
        self._pending = (data, asyncio.ensure_future(write))

    async def settle(self) -> list[bytes]:
        """Wait for the write under way; return what it could not write ([] if all went
        well, else its buffer, after logging why)."""
        if self._pending is None:
            return []
        data, writing = self._pending
        await asyncio.wait([writing])  # a cancellation here leaves the write to `close`
        self._pending = None
        if writing.cancelled():  # pragma: no cover - the event loop is shutting down
            raise anyio.get_cancelled_exc_class()
        problem = writing.exception()
        if isinstance(problem, OSError):
            logger.warning("could not write to the spool file (%s)", problem)
            return [data]
        if problem is not None:
            raise problem
        self.size += len(data)
        return []

    async def read(self, offset: int, length: int) -> bytes:
        """`length` bytes (fewer at the end) from `offset` of what was written."""
        return await anyio.to_thread.run_sync(self._read_at, offset, length)

    async def close(self) -> None:
        """Close (and so delete) the file; shielded, waits for a read or write under way."""
        pending, self._pending = self._pending, None
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            if pending is not None:
                writing = pending[1]
                await asyncio.wait([writing])
                if not writing.cancelled():
                    writing.exception()  # seen: an error of an abandoned write is not logged
            await anyio.to_thread.run_sync(self._close)

    def _write_at(self, data: bytes, offset: int) -> None:
        with self._lock:
            file = self._file
            file.seek(offset)
            view = memoryview(data)
            while view.nbytes:
                written = file.write(view)
                if not written:  # pragma: no cover - raw files raise on errors instead
                    raise OSError("the spool file accepted no bytes")
                view = view[written:]

    def _read_at(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        with self._lock:
            self._file.seek(offset)
            data = self._file.read(length)
            while len(data) < length:  # a read of a regular file is short above 2 GiB
                more = self._file.read(length - len(data))
                if not more:
                    raise OSError("the spool file is shorter than what was written to it")
                data += more
        return data

    def _close(self) -> None:
        with self._lock:
            self._file.close()
