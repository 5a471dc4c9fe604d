"""Content-addressed files on a local (or mounted) file system."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO
from typing import Any

import anyio
import anyio.to_thread

from lakery.builtin.file_maintenance import delete_if_older
from lakery.builtin.file_maintenance import delete_leftovers
from lakery.builtin.file_maintenance import fan_out_folders
from lakery.builtin.file_maintenance import scan_folder
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.errors import first_error
from lakery.core.serializer import Buffer
from lakery.core.session import add_before_commit
from lakery.core.session import saving_session
from lakery.core.storage import READ_CHUNK_SIZE
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.core.storage import ValueWrite

__all__ = ["FileStorage"]

_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}$")
_WRITE_BUFFER = 4 << 20
_CHUNK = 256
_THREADS = 2


class FileStorage(Storage):
    """Files under `root`, named by their sha256 (``ab/abcd…``: 256 subfolders).

    Writes go to a temporary file that is fsynced, then renamed into place, so a reader
    sees a whole file or none; identical content is written once. The locator records the
    root it was written under and a key that cannot point outside it.

    Args:
        root: the directory to keep files in (created when first needed).
        name: the component name, to register several file storages side by side.
        fsync: flush each file (and its directory) to disk before the save commits.
            Turn off only for scratch data.
    """

    name = "lakery.file@v1"

    def __init__(
        self, root: str | os.PathLike[str], *, name: str | None = None, fsync: bool = True
    ):
        super().__init__(name=name)
        self.root = Path(root).expanduser().resolve()
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r}, name={self.name!r})"

    # -- writing ------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        key = _key_for(sha256)
        await anyio.to_thread.run_sync(self._write_file, self.root / key, data, size)
        return {"root": self.root.as_posix(), "key": key}

    async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
        """Write many values, one worker-thread call per chunk of them, chunks in parallel.

        Inside a save, files are written to temporary names and moved into place just
        before the save commits, after one flush of the whole file system (instead of an
        fsync per file); a failed save removes them.
        """
        keys = [_key_for(write.sha256) for write in writes]
        session = saving_session()
        pending = None
        if session is not None and self.fsync:
            pending = add_before_commit(session, f"lakery.file:{self.root}", self._pending_files)

        def write_chunk(indexes: range) -> None:
            for i in indexes:
                path, write = self.root / keys[i], writes[i]
                if pending is None:
                    self._write_file(path, write.data, write.size)
                else:
                    temp = self._write_temp(path, write.data, write.size, sync=False)
                    if temp is not None:
                        pending.moves.append((temp, path))

        await _in_thread_chunks(write_chunk, len(writes))
        return [{"root": self.root.as_posix(), "key": key} for key in keys]

    def _pending_files(self) -> _PendingFiles:
        return _PendingFiles(self)

    def _write_file(self, path: Path, data: Sequence[Buffer], size: int) -> None:
        temp = self._write_temp(path, data, size, sync=True)
        if temp is not None:
            self._move_into_place(temp, path)

    def _write_temp(
        self, path: Path, data: Sequence[Buffer], size: int, *, sync: bool
    ) -> Path | None:
        """Write `data` next to `path` under a temporary name; None if `path` already has it."""
        if _has_size(path, size):
            return None  # identical content is already there
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as file:
                for buffer in data:
                    file.write(buffer)
                if sync:
                    self._sync(file)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        temp_dir = self.root / "tmp"
        await anyio.to_thread.run_sync(lambda: temp_dir.mkdir(parents=True, exist_ok=True))
        temp = temp_dir / f"{uuid.uuid4().hex}.tmp"
        file: IO[bytes] = await anyio.to_thread.run_sync(open, temp, "wb")
        try:
            try:
                pending: list[Buffer] = []
                pending_size = 0
                async for chunk in stream:
                    pending.append(chunk)
                    pending_size += memoryview(chunk).nbytes
                    if pending_size >= _WRITE_BUFFER:
                        await anyio.to_thread.run_sync(_write_all, file, pending)
                        pending, pending_size = [], 0
                await anyio.to_thread.run_sync(_write_all, file, pending)
                await anyio.to_thread.run_sync(self._sync, file)
            finally:
                await _shielded(file.close)
            key = _key_for(stream.sha256)
            await anyio.to_thread.run_sync(self._move_into_place, temp, self.root / key)
        except BaseException:
            await _shielded(lambda: temp.unlink(missing_ok=True))
            raise
        return {"root": self.root.as_posix(), "key": key}

    def _move_into_place(self, temp: Path, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, path)
        self._sync_dir(path.parent)

    def _sync(self, file: IO[bytes]) -> None:
        if self.fsync:
            file.flush()
            os.fsync(file.fileno())

    def _sync_dir(self, directory: Path) -> None:
        if self.fsync and os.name == "posix":
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- reading ------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        path = self._path(locator)
        return await anyio.to_thread.run_sync(_read_file, path, locator)

    async def get_values(self, locators: Sequence[Locator]) -> list[Buffer | NotFoundError]:
        """Read small values in chunks, one worker-thread call per chunk, chunks in parallel."""
        paths = [self._path(locator) for locator in locators]
        results: list[Buffer | NotFoundError] = [b""] * len(paths)

        def read_chunk(indexes: range) -> None:
            for i in indexes:
                try:
                    results[i] = _read_file(paths[i], locators[i])
                except NotFoundError as exc:
                    results[i] = exc

        await _in_thread_chunks(read_chunk, len(paths))
        return results

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        path = self._path(locator)
        file = await anyio.to_thread.run_sync(_open_for_reading, path, locator)
        return _iter_file(file)

    async def delete(self, locator: Locator) -> None:
        path = self._path(locator)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    def uri(self, locator: Locator) -> str | None:
        return self._path(locator).as_uri()

    # -- maintenance ----------------------------------------------------------------------

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every file at a content address (``ab/<sha256>``) under `root`, one folder at a
        time. Temporary files of writes in progress, symbolic links and files with other
        names are not listed; the modification time is refreshed when a save reuses a file."""
        folders = await anyio.to_thread.run_sync(fan_out_folders, self.root)
        root = self.root.as_posix()
        for folder in folders:
            entries = await anyio.to_thread.run_sync(scan_folder, self.root / folder)
            for name, size, modified in entries:
                yield BlobInfo({"root": root, "key": f"{folder}/{name}"}, name, size, modified)

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """Delete a file under `root` if it is still older than `older_than`.

        The file is first renamed away (atomically), then its age checked again: a save
        that reused it until that moment made it fresh, and it is put back. A save that
        looks for it afterwards does not find it and writes it anew.
        """
        path = self._own_path(blob.locator)
        return await anyio.to_thread.run_sync(delete_if_older, path, older_than.timestamp())

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Remove temporary files of interrupted writes last modified before `older_than`."""
        return await anyio.to_thread.run_sync(
            delete_leftovers, self.root, older_than.timestamp(), dry_run
        )

    def _own_path(self, locator: Locator) -> Path:
        """The file of a locator that must be under this storage's own root."""
        key = locator.get("key") if isinstance(locator, Mapping) else None
        root = locator.get("root") if isinstance(locator, Mapping) else None
        if not isinstance(key, str) or not _KEY.match(key) or root != self.root.as_posix():
            msg = f"{locator!r} is not a blob under the root {self.root} of {self.name!r}"
            raise StorageError(msg)
        return self.root / key

    def _path(self, locator: Locator) -> Path:
        """The file for a locator: under the root it was written to, else under this root."""
        key = locator.get("key") if isinstance(locator, Mapping) else None
        if not isinstance(key, str) or not _KEY.match(key):
            msg = f"invalid FileStorage locator {locator!r}: the key must be 'ab/<sha256>'"
            raise StorageError(msg)
        root = locator.get("root")
        if isinstance(root, str) and root != self.root.as_posix():
            written_to = Path(root) / key
            if written_to.exists() or not (self.root / key).exists():
                return written_to
        return self.root / key


async def _in_thread_chunks(function: Any, count: int) -> None:
    """Run `function(range)` over 0..count in worker threads, a few chunks at a time."""
    size = max(1, min(_CHUNK, -(-count // _THREADS)))
    try:
        async with anyio.create_task_group() as group:
            for start in range(0, count, size):
                indexes = range(start, min(start + size, count))
                group.start_soon(anyio.to_thread.run_sync, function, indexes)
    except BaseExceptionGroup as group_error:
        raise first_error(group_error) from None


class _PendingFiles:
    """Files of one save, moved into place (durably) just before the save commits."""

    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage
        self.moves: list[tuple[Path, Path]] = []

    async def __call__(self, session: object) -> None:
        await anyio.to_thread.run_sync(self._commit)

    def _commit(self) -> None:
        if not self.moves:
            return
        _flush_to_disk(self.storage.root, [temp for temp, _ in self.moves])
        directories = set()
        for temp, path in self.moves:
            os.replace(temp, path)
            directories.add(path.parent)
        self.moves = []
        _flush_to_disk(self.storage.root, sorted(directories))

    async def discard(self) -> None:
        moves, self.moves = self.moves, []
        await anyio.to_thread.run_sync(lambda: [temp.unlink(missing_ok=True) for temp, _ in moves])


def _flush_to_disk(root: Path, paths: list[Path]) -> None:
    """Make `paths` (files or directories under `root`) durable: one syncfs on Linux."""
    if _syncfs is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:  # no syncfs (or it failed): fsync one by one
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def _key_for(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        msg = f"expected a sha256 hex digest, got {sha256!r}"
        raise StorageError(msg)
    return f"{sha256[:2]}/{sha256}"


def _has_size(path: Path, size: int) -> bool:
    """Whether `path` already holds `size` bytes; if so, mark it as just written, so that
    garbage collection (which spares recent files) leaves it to the save that reuses it."""
    try:
        if path.stat().st_size != size:
            return False
        os.utime(path)
        return True
    except FileNotFoundError:
        return False


def _write_all(file: IO[bytes], buffers: list[Buffer]) -> None:
    for buffer in buffers:
        file.write(buffer)


def _open_for_reading(path: Path, locator: Locator) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        msg = f"no file at {path}"
        raise NotFoundError(msg, locator=locator) from None


def _read_file(path: Path, locator: Locator) -> bytearray:
    with _open_for_reading(path, locator) as file:
        size = os.fstat(file.fileno()).st_size
        data = bytearray(size)
        view = memoryview(data)
        read = 0
        while read < size:
            n = file.readinto(view[read:])
            if not n:
                break
            read += n
        if read < size:
            del data[read:]
        else:
            data.extend(file.read())  # the file grew while being read: keep all bytes
        return data


async def _iter_file(file: IO[bytes]) -> AsyncIterator[Buffer]:
    try:
        while chunk := await anyio.to_thread.run_sync(file.read, READ_CHUNK_SIZE):
            yield chunk
    finally:
        await _shielded(file.close)


async def _shielded(function: Any) -> None:
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(function)
