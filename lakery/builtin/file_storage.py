"""Content-addressed files on a local (or mounted) file system."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import itertools
import os
import re
import stat
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

    Writes go to a temporary file that is made durable, then renamed into place (and the
    folder made durable too), so a reader sees a whole file or none, and a file is in place
    before any record that points at it commits; identical content is written once. Inside
    a save, the files are made durable together just before it commits (see
    `_PendingFiles`). The locator records the root it was written under and a key that
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
        `_PendingFiles`); a failed save removes them. A call with up to `FEW_FILES` values
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
            pending = add_before_commit(session, f"lakery.file:{self.root}", self._pending_files)
        checked: set[str] = set()

        def write_chunk(indexes: range) -> None:
            _check_folders(self, keys, indexes, checked)
            for i in indexes:
                path, write = f"{root}/{keys[i]}", writes[i]
                if pending is None:
                    self._write_file(path, write.data, write.size)
                elif not _holds(path, write.size):
                    temp, created = _write_temp(path, write.data, sync=False)
                    pending.add(temp, path, created)

        await _in_thread_chunks(write_chunk, len(writes))
        return [{"root": root, "key": key} for key in keys]

    def _pending_files(self) -> _PendingFiles:
        return _PendingFiles(self)

    def _write_few_durably(
        self, keys: list[str], paths: list[str], writes: Sequence[ValueWrite]
    ) -> None:
        _check_folders(self, keys, range(len(keys)), set())
        _write_few_durably(paths, writes)

    def _write_file(self, path: str, data: Sequence[Buffer], size: int) -> None:
        """Write `path` durably (temporary file, fsync, rename, fsync of its folder)."""
        if _holds(path, size):
            return  # identical content is already there
        temp, created = _write_temp(path, data, sync=self.fsync)
        try:
            os.replace(temp, path)
        except BaseException:
            _remove(temp)
            raise
        if self.fsync:
            _sync_folders(_folders_to_sync([path], created))

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
                await anyio.to_thread.run_sync(self._sync, file)
            finally:
                await _shielded(file.close)
            key = _key_for(stream.sha256)
            await anyio.to_thread.run_sync(self._move_into_place, temp, self.root / key, created)
        except BaseException:
            await _shielded(lambda: temp.unlink(missing_ok=True))
            raise
        return {"root": self._root, "key": key}

    def _make_temp_folder(self, folder: str) -> list[str]:
        created = _make_folders(folder)
        _check_folder(self, "tmp")
        return created

    def _move_into_place(self, temp: Path, path: Path, created: list[str]) -> None:
        created = created + _make_folders(str(path.parent))
        _check_folder(self, path.parent.name)
        os.replace(temp, path)
        if self.fsync:
            _sync_folders(_folders_to_sync([str(path)], created))

    def _sync(self, file: IO[bytes]) -> None:
        if self.fsync:
            file.flush()
            os.fsync(file.fileno())

    # -- reading ------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        path = self._path_of(locator)
        return await anyio.to_thread.run_sync(self._read_one, path, locator)

    def _read_one(self, path: str, locator: Locator) -> Buffer:
        _check_folder(self, path[-67:-65])
        return _read_file(path, locator, self)

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
                    results[i] = _read_file(paths[i], locators[i], self)
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
        fd, _ = _open_blob(path, locator, self)
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
        _remove(path)

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


class _PendingFiles:
    """Files of one save, moved into place (durably) just before the save commits.

    Many files are made durable with one ``syncfs`` of their file system before they are
    moved into place, and their folders with another one after: measured on ext4, 2,000
    small files commit at about the rate at which they can be written at all, while an
    fdatasync per file from 8 to 128 threads (the file system merges concurrent flushes)
    was 25-45% slower, also next to a program writing 128 MiB again and again. But
    ``syncfs`` also writes what other programs left unwritten on the file system (next to
    one writing 1 GiB, a save of one file took up to half a second instead of 8 ms), so
    fewer than `SYNCFS_MIN_FILES` files are fsynced one by one (in parallel), then their
    folders. If ``syncfs`` is missing or reports an error (a failed write-back anywhere
    on the file system), each file is fsynced, which says whether it was one of ours.
    """

    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage
        self.moves: list[tuple[str, str]] = []
        self.created: list[str] = []

    def add(self, temp: str, path: str, created: list[str]) -> None:
        """Called from worker threads (list.append and .extend hold the GIL)."""
        self.moves.append((temp, path))
        if created:
            self.created.extend(created)

    async def __call__(self, session: object) -> None:
        moves = self.moves
        if not moves:
            return
        if len(moves) >= SYNCFS_MIN_FILES and _syncfs is not None:
            await anyio.to_thread.run_sync(self._commit_with_syncfs)
        else:
            await _in_threads(_fsync_path, [temp for temp, _ in moves])
            await anyio.to_thread.run_sync(_rename_all, moves)
            self.moves = []
            await _in_threads(_fsync_path, _folders_to_sync([p for _, p in moves], self.created))

    def _commit_with_syncfs(self) -> None:
        root = self.storage._root
        moves = self.moves
        if not _flush_file_system(root):
            for temp, _ in moves:
                _fsync_path(temp)
        _rename_all(moves)
        self.moves = []
        if not _flush_file_system(root):
            for folder in _folders_to_sync([path for _, path in moves], self.created):
                _fsync_path(folder)

    async def discard(self) -> None:
        moves, self.moves = self.moves, []
        await anyio.to_thread.run_sync(lambda: list(map(_remove, [temp for temp, _ in moves])))


SYNCFS_MIN_FILES = 16
"""From how many files a save flushes the whole file system once instead of each file."""

FEW_FILES = 3
"""Up to how many files a `put_values` call inside a save writes durably and moves into
place at once, in one worker-thread call (see `_write_few_durably`), instead of leaving
them to `_PendingFiles`: a save of one small object then costs one thread hand-off for its
files instead of four or more."""


def _write_few_durably(paths: list[str], writes: Sequence[ValueWrite]) -> None:
    """Write a few files as `_PendingFiles` commits them, in the calling thread.

    Each file goes to a temporary file; all are fsynced before any is renamed into place,
    then the folders that changed are fsynced. On an error before the renames, no file is
    left behind; one after them leaves whole files at content addresses, which nothing
    references until the save commits (garbage collection removes them if it fails).
    """
    moves: list[tuple[str, str]] = []
    created: list[str] = []
    try:
        for path, write in zip(paths, writes, strict=True):
            if _holds(path, write.size):
                continue  # identical content is already there
            temp, made = _write_temp(path, write.data, sync=False)
            moves.append((temp, path))
            created.extend(made)
        for temp, _ in moves:
            _fsync_path(temp)
        moved = [path for _, path in moves]
        while moves:
            temp, path = moves[0]
            os.replace(temp, path)
            del moves[0]
    finally:
        for temp, _ in moves:
            _remove(temp)
    for folder in _folders_to_sync(moved, created):
        _fsync_path(folder)


def _rename_all(moves: list[tuple[str, str]]) -> None:
    for temp, path in moves:
        os.replace(temp, path)


async def _in_threads(function: Any, items: list[str]) -> None:
    """`function(item)` for each item, each in its own worker thread, all at once."""
    try:
        async with anyio.create_task_group() as group:
            for item in items:
                group.start_soon(anyio.to_thread.run_sync, function, item)
    except BaseExceptionGroup as group_error:
        raise first_error(group_error) from None


def _flush_file_system(root: str) -> bool:
    """One syncfs of the file system that holds `root`; False when it is not available or
    failed (a write error anywhere on the file system fails it: each file is then fsynced,
    which tells whether the error was one of ours)."""
    if _syncfs is None:
        return False
    fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return bool(_syncfs(fd) == 0)
    finally:
        os.close(fd)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _folders_to_sync(paths: list[str], created: list[str]) -> list[str]:
    """The folders whose entries changed: those of `paths`, and the parents of folders
    that were created for them (none where folders cannot be fsynced)."""
    if os.name != "posix":
        return []
    folders = {os.path.dirname(path) for path in paths}
    folders.update(os.path.dirname(folder) for folder in created)
    return sorted(folders)


def _sync_folders(folders: list[str]) -> None:
    for folder in folders:
        _fsync_path(folder)


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)  # a symbolic link at a content address is not followed
    | getattr(os, "O_NONBLOCK", 0)  # a named pipe there does not block (no effect on files)
)
"""How content files are opened to be read or checked for reuse."""
_NOT_A_FILE = {errno.ELOOP, errno.EMLINK, errno.ENXIO}
"""What opening with `_READ_FLAGS` fails with at a symbolic link (ELOOP; EMLINK on some
BSDs) or a socket (ENXIO)."""


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


def _open_blob(path: str, locator: Locator, storage: FileStorage) -> tuple[int, int]:
    """A descriptor on the regular file at `path` (never through a link there) and its
    size."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise storage._not_found(path, locator) from None
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            raise _not_a_blob(path, "a symbolic link" if os.path.islink(path) else None) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_a_blob(path, None)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _not_a_blob(path: str, what: str | None) -> StorageError:
    msg = (
        f"{path} is {what or 'not a regular file'}, not a blob FileStorage wrote: it is "
        "not read (FileStorage never follows links out of its root); remove it, and a save "
        "of the same content writes the file anew"
    )
    return StorageError(msg)


def _write_temp(path: str, data: Sequence[Buffer], *, sync: bool) -> tuple[str, list[str]]:
    """Write `data` to a new temporary file next to `path`, with os-level calls only.

    Returns its name and the folders that had to be created for it. On any error, nothing
    is left behind.
    """
    folder, _, name = path.rpartition("/")
    temp = f"{folder}/.{name}.{_temp_id()}.tmp"
    created: list[str] = []
    try:
        fd = os.open(temp, _WRITE_FLAGS, 0o666)
    except FileNotFoundError:
        created = _make_folders(folder)
        fd = os.open(temp, _WRITE_FLAGS, 0o666)
    try:
        try:
            for buffer in data:
                _write_buffer(fd, buffer)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(temp)
        raise
    return temp, created


def _write_buffer(fd: int, buffer: Buffer) -> None:
    written = os.write(fd, buffer)
    view = None
    while True:
        if view is None:
            view = memoryview(buffer)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
        if written >= view.nbytes:
            return
        view = view[written:]
        written = os.write(fd, view)


def _make_folders(folder: str) -> list[str]:
    """Create `folder` and any missing parents; return those this call created."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        created.append(folder)
    return created


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _TempIds:
    """Unique names for temporary files: process id, a random part, a counter.

    Cheaper than a uuid4 per file (no system call); renewed in a forked child.
    """

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = f"{os.getpid() & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08x}"


_temp_id = _TempIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_temp_id.renew)


def _key_for(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        msg = f"expected a sha256 hex digest, got {sha256!r}"
        raise StorageError(msg)
    return f"{sha256[:2]}/{sha256}"


def _holds(path: str, size: int) -> bool:
    """Whether `path` already holds the `size` bytes whose sha256 is its name; if so, mark
    it as just written, so that garbage collection (which spares recent files) leaves it
    to the save that reuses it. A damaged file (other bytes) is not reused: the save
    writes the content anew over it."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            return False  # a symbolic link (or a socket): written anew, replacing it
        raise
    try:
        info = os.fstat(fd)
        if info.st_size != size or not stat.S_ISREG(info.st_mode):
            return False
        digest = hashlib.sha256()
        while chunk := os.read(fd, _REHASH_CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    if digest.hexdigest() != os.path.basename(path):
        return False
    try:
        # By path, not by descriptor: garbage collection renames a file aside before it
        # checks its age again, and the rename must make this fail. Never follows a link
        # that replaced the file meanwhile.
        _touch(path)
    except FileNotFoundError:  # garbage collection moved it aside meanwhile
        return False
    return True


if os.utime in os.supports_follow_symlinks:

    def _touch(path: str) -> None:
        os.utime(path, follow_symlinks=False)

else:  # pragma: no cover - platforms without utimensat's AT_SYMLINK_NOFOLLOW

    def _touch(path: str) -> None:
        if not os.path.islink(path):
            os.utime(path)


_REHASH_CHUNK = 1 << 20
"""Bytes per read when an existing file is checked before it is reused."""


def _write_all(file: IO[bytes], buffers: list[Buffer]) -> None:
    for buffer in buffers:
        file.write(buffer)


_SMALL_FILE = 1 << 20
"""Files up to this size are read with one read call into bytes; larger ones into a
preallocated bytearray."""


def _read_file(path: str, locator: Locator, storage: FileStorage) -> Buffer:
    """All the bytes of the regular file at `path`, also if it grew while being read."""
    fd, size = _open_blob(path, locator, storage)
    try:
        if size <= _SMALL_FILE:
            data = os.read(fd, size + 1)
            if len(data) == size:
                return data  # asked for one byte more: this is all of it
            chunks = [data]
            while chunk := os.read(fd, READ_CHUNK_SIZE):
                chunks.append(chunk)
            return b"".join(chunks)
        buffer = bytearray(size)
        with memoryview(buffer) as view:
            done = 0
            while done < size and (n := os.readv(fd, [view[done:]])):
                done += n
        if done < size:
            del buffer[done:]
            return buffer
        while chunk := os.read(fd, READ_CHUNK_SIZE):
            buffer += chunk
        return buffer
    finally:
        os.close(fd)


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
