"""How `FileStorage` makes a write durable: temporary files, fsync or syncfs, renames
into place, fsync of the folders they changed.

A file is written under a temporary name next to its place, flushed, renamed into place,
and then the folders whose entries changed are flushed: a reader (or a restart after a
crash) finds the whole file or none. The caller checks the folders and whether the
content is already there first. All functions are blocking (`FileStorage` runs them in
worker threads); `PendingFiles` is the hook that commits the files of a save.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import sys
from collections.abc import Sequence
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

import anyio
import anyio.to_thread

from lakery.core.errors import first_error
from lakery.core.serializer import Buffer

if TYPE_CHECKING:
    from lakery.core.storage import Storage

__all__ = [
    "FEW_FILES",
    "SYNCFS_MIN_FILES",
    "PendingFiles",
    "flush_file",
    "make_folders",
    "move_into_place",
    "write_few_durably",
    "write_file",
]

SYNCFS_MIN_FILES = 16
"""From how many files a save flushes the whole file system once instead of each file."""

FEW_FILES = 3
"""Up to how many files a `put_values` call inside a save writes durably and moves into
place at once, in one worker-thread call (see `write_few_durably`), instead of leaving
them to `PendingFiles`: a save of one small object then costs one thread hand-off for its
files instead of four or more."""


class PendingFiles:
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

    Args:
        storage: the storage the files are of (the saver names it when this fails).
        root: its folder, on the file system that ``syncfs`` flushes.
    """

    def __init__(self, storage: Storage, root: str) -> None:
        self.storage = storage
        self.root = root
        self.moves: list[tuple[str, str]] = []
        self.created: list[str] = []

    def write(self, path: str, data: Sequence[Buffer]) -> None:
        """Write `data` to a temporary file next to `path`, moved there at the commit.

        Called from worker threads (list.append and .extend hold the GIL)."""
        temp, created = _write_temp(path, data, sync=False)
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
        moves = self.moves
        if not _flush_file_system(self.root):
            for temp, _ in moves:
                _fsync_path(temp)
        _rename_all(moves)
        self.moves = []
        if not _flush_file_system(self.root):
            for folder in _folders_to_sync([path for _, path in moves], self.created):
                _fsync_path(folder)

    async def discard(self) -> None:
        moves, self.moves = self.moves, []

        def remove_all() -> None:
            for temp, _ in moves:
                _remove(temp)

        await anyio.to_thread.run_sync(remove_all)


def write_file(path: str, data: Sequence[Buffer], *, fsync: bool) -> None:
    """Write `path` whole or not at all: a temporary file, renamed into place; with
    `fsync`, the file is flushed before the rename and its folders after."""
    temp, created = _write_temp(path, data, sync=fsync)
    move_into_place(temp, path, created, fsync=fsync)


def write_few_durably(files: Sequence[tuple[str, Sequence[Buffer]]]) -> None:
    """Write a few files (path, data) as `PendingFiles` commits them, in the calling thread.

    Each file goes to a temporary file; all are fsynced before any is renamed into place,
    then the folders that changed are fsynced. On an error before the renames, no file is
    left behind; one after them leaves whole files at content addresses, which nothing
    references until the save commits (garbage collection removes them if it fails).
    """
    moves: list[tuple[str, str]] = []
    created: list[str] = []
    try:
        for path, data in files:
            temp, made = _write_temp(path, data, sync=False)
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


def move_into_place(temp: str, path: str, created: list[str], *, fsync: bool) -> None:
    """Rename `temp` to `path` (removing `temp` if that fails); with `fsync`, then flush
    the folders whose entries changed (`created`: the folders made for the file)."""
    try:
        os.replace(temp, path)
    except BaseException:
        _remove(temp)
        raise
    if fsync:
        for folder in _folders_to_sync([path], created):
            _fsync_path(folder)


def flush_file(file: IO[bytes]) -> None:
    """Flush an open file to disk."""
    file.flush()
    os.fsync(file.fileno())


def make_folders(folder: str) -> list[str]:
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


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


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
        created = make_folders(folder)
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
