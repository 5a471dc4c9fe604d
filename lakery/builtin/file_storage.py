"""Content-addressed files on a local (or mounted) file system."""

from __future__ import annotations

import contextlib
import os
import re
import stat
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

from lakery.builtin.file_blobs import holds
from lakery.builtin.file_blobs import open_blob
from lakery.builtin.file_blobs import read_blob
from lakery.builtin.file_durability import FEW_FILES
from lakery.builtin.file_durability import PendingFiles
from lakery.builtin.file_durability import flush_file
from lakery.builtin.file_durability import make_folders
from lakery.builtin.file_durability import move_into_place
from lakery.builtin.file_durability import write_few_durably
from lakery.builtin.file_durability import write_file
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

    Writes go to a temporary file that is made durable, then renamed into place (and the
    folder made durable too), so a reader sees a whole file or none, and a file is in place
    before any record that points at it commits; identical content is written once. Inside
    a save, the files are made durable together just before it commits (see
    `PendingFiles`). The locator records the root it was written under and a key that
    cannot point outside it.

    A storage reads, writes, touches and deletes files under its own `root` only: a
    locator is always resolved to ``<root>/<key>``, whatever root it names (a moved store
    keeps working; a record whose blob is only under another root fails with a
    `NotFoundError` that says which storage to configure). Symbolic links are never
    followed: one at a content address counts as absent when a save looks for identical
    content (the save replaces it with a real file) and fails a read with a
    `StorageError`; a fan-out folder (or ``tmp``) that is a link fails reads and writes.

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
        self._root = self.root.as_posix()
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r}, name={self.name!r})"

    # -- writing ------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        key = _key_for(sha256)
        await anyio.to_thread.run_sync(self._write_one, key, data, size)
        return {"root": self._root, "key": key}

    def _write_one(self, key: str, data: Sequence[Buffer], size: int) -> None:
        _check_folder(self, key[:2])
        self._write_file(f"{self._root}/{key}", data, size)

    async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
        """Write many values, one worker-thread call per chunk of them, chunks in parallel.

        Inside a save, files are written under temporary names and moved into place just
        before the save commits, after they were all made durable at once (see
        `PendingFiles`); a failed save removes them. A call with up to `FEW_FILES` values
        (a save of one small object) makes them durable and moves them into place at once,
        in the same worker-thread call.
        """
        keys = [_key_for(write.sha256) for write in writes]
        root = self._root
        session = saving_session()
        if session is not None and self.fsync and len(writes) <= FEW_FILES:
            # A small save: write, flush and move its few files into place in one
            # worker-thread call now, rather than deferring them to the commit.
            paths = [f"{root}/{key}" for key in keys]
            await anyio.to_thread.run_sync(self._write_few_durably, keys, paths, writes)
            return [{"root": root, "key": key} for key in keys]
        pending = None
        if session is not None and self.fsync:
            pending = add_before_commit(
                session, f"lakery.file:{self.root}", lambda: PendingFiles(self, root)
            )
        checked: set[str] = set()

        def write_chunk(indexes: range) -> None:
            _check_folders(self, keys, indexes, checked)
            for i in indexes:
                path, write = f"{root}/{keys[i]}", writes[i]
                if pending is None:
                    self._write_file(path, write.data, write.size)
                elif not holds(path, write.size):
                    pending.write(path, write.data)

        await _in_thread_chunks(write_chunk, len(writes))
        return [{"root": root, "key": key} for key in keys]

    def _write_few_durably(
        self, keys: list[str], paths: list[str], writes: Sequence[ValueWrite]
    ) -> None:
        _check_folders(self, keys, range(len(keys)), set())
        files = zip(paths, writes, strict=True)
        write_few_durably([(path, w.data) for path, w in files if not holds(path, w.size)])

    def _write_file(self, path: str, data: Sequence[Buffer], size: int) -> None:
        """Write `path` (durably if `fsync`), unless identical content is already there."""
        if not holds(path, size):
            write_file(path, data, fsync=self.fsync)

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        temp_dir = self.root / "tmp"
        created = await anyio.to_thread.run_sync(self._make_temp_folder, str(temp_dir))
        temp = temp_dir / f"{uuid.uuid4().hex}.tmp"
        file: IO[bytes] = await anyio.to_thread.run_sync(open, temp, "xb")
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
                if self.fsync:
                    await anyio.to_thread.run_sync(flush_file, file)
            finally:
                await _shielded(file.close)
            key = _key_for(stream.sha256)
            await anyio.to_thread.run_sync(self._move_into_place, temp, self.root / key, created)
        except BaseException:
            await _shielded(lambda: temp.unlink(missing_ok=True))
            raise
        return {"root": self._root, "key": key}

    def _make_temp_folder(self, folder: str) -> list[str]:
        created = make_folders(folder)
        _check_folder(self, "tmp")
        return created

    def _move_into_place(self, temp: Path, path: Path, created: list[str]) -> None:
        created = created + make_folders(str(path.parent))
        _check_folder(self, path.parent.name)
        move_into_place(str(temp), str(path), created, fsync=self.fsync)

    # -- reading ------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        path = self._path_of(locator)
        return await anyio.to_thread.run_sync(self._read_one, path, locator)

    def _read_one(self, path: str, locator: Locator) -> Buffer:
        _check_folder(self, path[-67:-65])
        return self._read_file(path, locator)

    def _read_file(self, path: str, locator: Locator) -> Buffer:
        try:
            return read_blob(path)
        except FileNotFoundError:
            raise self._not_found(path, locator) from None

    async def get_values(self, locators: Sequence[Locator]) -> list[Buffer | NotFoundError]:
        """Read small values in chunks, one worker-thread call per chunk, chunks in parallel
        (each file: open, fstat, one read, close; each fan-out folder: one lstat)."""
        paths = [self._path_of(locator) for locator in locators]
        results: list[Buffer | NotFoundError] = [b""] * len(paths)
        keys = [path[-67:] for path in paths]
        checked: set[str] = set()

        def read_chunk(indexes: range) -> None:
            _check_folders(self, keys, indexes, checked)
            for i in indexes:
                try:
                    results[i] = self._read_file(paths[i], locators[i])
                except NotFoundError as exc:
                    results[i] = exc

        await _in_thread_chunks(read_chunk, len(paths))
        return results

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        path = self._path_of(locator)
        file = await anyio.to_thread.run_sync(self._open_for_reading, path, locator)
        return _iter_file(file)

    def _open_for_reading(self, path: str, locator: Locator) -> IO[bytes]:
        _check_folder(self, path[-67:-65])
        try:
            fd, _ = open_blob(path)
        except FileNotFoundError:
            raise self._not_found(path, locator) from None
        try:
            return open(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    async def delete(self, locator: Locator) -> None:
        """Remove the file under this storage's root (a link there: the link itself)."""
        path = self._path_of(locator)
        await anyio.to_thread.run_sync(self._delete_file, path)

    def _delete_file(self, path: str) -> None:
        _check_folder(self, path[-67:-65])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def uri(self, locator: Locator) -> str | None:
        return Path(self._path_of(locator)).as_uri()

    def local_path(self, locator: Locator) -> str | None:
        """The blob's file under this storage's root (the one reads use); None where reads
        would fail with a clear error instead: a symbolic link or another odd file there
        (or as its folder), or no file while the locator names another root."""
        path = self._path_of(locator)
        try:
            _check_folder(self, path[-67:-65])
            mode = os.lstat(path).st_mode
        except StorageError:
            return None
        except FileNotFoundError:
            return path if locator.get("root") in (self._root, None) else None
        return path if stat.S_ISREG(mode) else None

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
        return await anyio.to_thread.run_sync(self._delete_if_older, path, older_than.timestamp())

    def _delete_if_older(self, path: Path, cutoff: float) -> bool:
        _check_folder(self, path.parent.name)
        return delete_if_older(path, cutoff)

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Remove temporary files of interrupted writes last modified before `older_than`.

        Refused (a `StorageError`) while ``root/tmp`` is a symbolic link: what it points to
        is not this storage's to clean up."""
        return await anyio.to_thread.run_sync(self._delete_leftovers, older_than, dry_run)

    def _delete_leftovers(self, older_than: datetime, dry_run: bool) -> list[str]:
        _check_folder(self, "tmp")
        return delete_leftovers(self.root, older_than.timestamp(), dry_run)

    def _own_path(self, locator: Locator) -> Path:
        """The file of a locator that must be under this storage's own root."""
        key = locator.get("key") if isinstance(locator, Mapping) else None
        root = locator.get("root") if isinstance(locator, Mapping) else None
        if not isinstance(key, str) or not _KEY.match(key) or root != self.root.as_posix():
            msg = f"{locator!r} is not a blob under the root {self.root} of {self.name!r}"
            raise StorageError(msg)
        return self.root / key

    def _path_of(self, locator: Locator) -> str:
        """The file of a locator: ``<root>/<key>`` under this storage's own root, whatever
        root the locator names (the file is content addressed, and every read is checked
        against the record's sha256); a file under another root is never looked at."""
        key = locator.get("key") if isinstance(locator, Mapping) else None
        if type(key) is not str or not _KEY.match(key):
            msg = f"invalid FileStorage locator {locator!r}: the key must be 'ab/<sha256>'"
            raise StorageError(msg)
        return f"{self._root}/{key}"

    def _not_found(self, path: str, locator: Locator) -> NotFoundError:
        """No file at `path`; if the locator names another root, say how to read there."""
        root = locator.get("root") if isinstance(locator, Mapping) else None
        msg = f"no file at {path}"
        if isinstance(root, str) and root != self._root:
            msg += (
                f": the record was written under the root {root!r}, and storage "
                f"{self.name!r} (root {self._root!r}) reads only under its own root. If the "
                f"data is there, configure FileStorage(root={root!r}) as storage "
                f"{self.name!r}, or move its files under {self._root!r}"
            )
        return NotFoundError(msg, locator=locator)


async def _in_thread_chunks(function: Any, count: int) -> None:
    """Run `function(range)` over 0..count in worker threads, a few chunks at a time."""
    size = max(1, min(_CHUNK, -(-count // _THREADS)))
    if count <= size:  # one chunk: no task group
        if count:
            await anyio.to_thread.run_sync(function, range(count))
        return
    try:
        async with anyio.create_task_group() as group:
            for start in range(0, count, size):
                indexes = range(start, min(start + size, count))
                group.start_soon(anyio.to_thread.run_sync, function, indexes)
    except BaseExceptionGroup as group_error:
        raise first_error(group_error) from None


def _check_folders(
    storage: FileStorage, keys: list[str], indexes: range, checked: set[str]
) -> None:
    """`_check_folder` for the fan-out folders of ``keys[i]`` not yet in `checked` (one
    lstat per folder and call, not per file)."""
    for folder in {keys[i][:2] for i in indexes} - checked:
        _check_folder(storage, folder)
        checked.add(folder)


def _check_folder(storage: FileStorage, folder: str) -> None:
    """Refuse a folder right under the root that is a symbolic link (or not a folder):
    files through it would be outside the root. A missing folder is fine."""
    path = f"{storage._root}/{folder}"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        return
    what = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
    msg = (
        f"{path} is {what}, not a folder of storage {storage.name!r}: FileStorage reads and "
        f"writes only under its root {storage._root} and never follows links out of it; "
        "replace it with a real folder holding its files"
    )
    raise StorageError(msg)


def _key_for(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        msg = f"expected a sha256 hex digest, got {sha256!r}"
        raise StorageError(msg)
    return f"{sha256[:2]}/{sha256}"


def _write_all(file: IO[bytes], buffers: list[Buffer]) -> None:
    for buffer in buffers:
        file.write(buffer)


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
