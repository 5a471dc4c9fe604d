"""What `FileStorage` does for garbage collection: list blobs, delete old ones, clean up.

All functions are blocking; `FileStorage` runs them in worker threads.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

__all__ = ["delete_if_older", "delete_leftovers", "fan_out_folders", "scan_folder"]

_FAN_OUT = re.compile(r"^[0-9a-f]{2}$")
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")
_LEFTOVER_NAME = re.compile(r"^\.[0-9a-f]{64}\.[0-9a-f]{32}\.(?:tmp|gc)$")
"""Temporary files next to blobs: writes before their rename, and blobs moved aside by gc."""
_STREAM_TEMP_NAME = re.compile(r"^[0-9a-f]{32}\.tmp$")
"""Temporary files of streams (in ``root/tmp``)."""


def fan_out_folders(root: Path) -> list[str]:
    try:
        with os.scandir(root) as entries:
            return sorted(
                e.name
                for e in entries
                if _FAN_OUT.match(e.name) and e.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def scan_folder(folder: Path) -> list[tuple[str, int, datetime]]:
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not _BLOB_NAME.match(name) or name[:2] != folder.name:
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while listing
                found.append((name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
    except FileNotFoundError:
        return []
    found.sort()
    return found


def delete_if_older(path: Path, cutoff: float) -> bool:
    """Move `path` aside, check its age again, then unlink it (or put it back if fresh)."""
    try:
        if path.lstat().st_mtime >= cutoff:
            return False
    except FileNotFoundError:
        return False
    trash = path.with_name(f".{path.name}.{uuid.uuid4().hex}.gc")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return False
    try:
        fresh = trash.lstat().st_mtime >= cutoff  # reused by a save just before the rename
    except BaseException:
        _put_back(trash, path)
        raise
    if fresh:
        _put_back(trash, path)
        return False
    trash.unlink(missing_ok=True)
    return True


def _put_back(trash: Path, path: Path) -> None:
    """Restore a file moved aside, unless a save has written it anew meanwhile."""
    try:
        os.link(trash, path)
    except FileExistsError:
        pass  # a save wrote the same content again: keep that copy
    except OSError:  # no hard links on this file system
        if not path.exists():
            os.replace(trash, path)
            return
    trash.unlink(missing_ok=True)


def delete_leftovers(root: Path, cutoff: float, dry_run: bool) -> list[str]:
    """Temporary files (``ab/.<sha256>.<id>.tmp``, ``.gc``, ``tmp/<id>.tmp``) older than
    `cutoff`, removed unless `dry_run`; their paths relative to `root`."""
    candidates: list[Path] = []
    for folder in fan_out_folders(root):
        with contextlib.suppress(FileNotFoundError), os.scandir(root / folder) as entries:
            candidates.extend(Path(e.path) for e in entries if _LEFTOVER_NAME.match(e.name))
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        with os.scandir(root / "tmp") as entries:
            candidates.extend(Path(e.path) for e in entries if _STREAM_TEMP_NAME.match(e.name))
    removed = []
    for path in sorted(candidates):
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path.relative_to(root).as_posix())
    return removed
