"""How `FileStorage` opens the file at a content address: a regular file, never through a
symbolic link (``O_NOFOLLOW``), to read it or to check it before a save reuses it.

All functions are blocking (`FileStorage` runs them in worker threads). A missing file
raises `FileNotFoundError`; the caller says which record it missed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import READ_CHUNK_SIZE

__all__ = ["holds", "open_blob", "read_blob"]

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
_SMALL_FILE = 1 << 20
"""Files up to this size are read with one read call into bytes; larger ones into a
preallocated bytearray."""
_REHASH_CHUNK = 1 << 20
"""Bytes per read when an existing file is checked before it is reused."""


def open_blob(path: str) -> tuple[int, int]:
    """A descriptor on the regular file at `path` (never through a link there) and its
    size; a `StorageError` for anything else there."""
    try:
        fd = os.open(path, _READ_FLAGS)
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


def read_blob(path: str) -> Buffer:
    """All the bytes of the regular file at `path`, also if it grew while being read."""
    fd, size = open_blob(path)
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


def holds(path: str, size: int) -> bool:
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
