"""Failures of the database and of storages, turned into LakeryErrors where lakery calls them.

The original error stays the ``__cause__``; the message names the database (password
hidden) or the storage, and what lakery was doing.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import CommitUnknownError
from lakery.common.exceptions import DatabaseError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import StorageError

if TYPE_CHECKING:
    from lakery.core.storage import Storage

__all__ = [
    "commit",
    "database_calls",
    "database_error",
    "database_name",
    "is_database_failure",
    "storage_calls",
    "storage_error",
]

_DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlite3", "psycopg")

Doing = str | Callable[[], str]
"""What lakery was doing, for the message (a callable is called only on failure)."""


def database_name(session: AsyncSession) -> str:
    """The session's database URL with the password hidden."""
    try:
        bind = session.get_bind()
        if isinstance(bind, Engine):  # a Connection has no URL of its own
            return bind.url.render_as_string(hide_password=True)
    except Exception:  # an unbound session
        pass
    return "the session's database"


def is_database_failure(error: BaseException) -> bool:
    """Whether `error` came from SQLAlchemy or the database driver (not from lakery)."""
    if isinstance(error, LakeryError):
        return False
    if isinstance(error, SQLAlchemyError | OSError):  # OSError: connect refused, timeouts
        return True
    return type(error).__module__.split(".")[0] in _DRIVER_MODULES


def database_error(error: BaseException, session: AsyncSession, doing: Doing) -> DatabaseError:
    """A `DatabaseError` for a failure of the database while `doing` something."""
    name = database_name(session)
    msg = f"{_text(doing)}: the database {name} failed: {_summary(error)}"
    return DatabaseError(msg, database=name)


@contextmanager
def database_calls(session: AsyncSession, doing: Doing) -> Iterator[None]:
    """Turn a failure of the database inside the block into a `DatabaseError`."""
    try:
        yield
    except Exception as exc:
        if not is_database_failure(exc):
            raise
        raise database_error(exc, session, doing) from exc


async def commit(
    session: AsyncSession, doing: Doing, manifest_ids: Callable[[], tuple[uuid.UUID, ...]]
) -> None:
    """Commit; a connection lost during the commit raises `CommitUnknownError` carrying
    the ids the save gave its manifests."""
    try:
        await session.commit()
    except Exception as exc:
        if not is_database_failure(exc):
            raise
        if not _connection_lost(exc):
            raise database_error(exc, session, doing) from exc
        name, ids, doing = database_name(session), manifest_ids(), _text(doing)
        msg = (
            f"{doing}: the connection to the database {name} was lost during COMMIT, so the "
            f"save may or may not be stored ({_summary(exc)}). Look up its "
            f"{len(ids)} manifest id(s) to tell (the first is {ids[0]}), e.g. with "
            "`lakery show ID`; saving again is safe (content is stored once)."
            if ids
            else f"{doing}: the connection to {name} was lost during COMMIT: {_summary(exc)}"
        )
        raise CommitUnknownError(msg, database=name, manifest_ids=ids) from exc


def _connection_lost(error: BaseException) -> bool:
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or _connection_lost_cause(error.orig)
    return isinstance(error, OSError) or _connection_lost_cause(error)


def _connection_lost_cause(error: BaseException | None) -> bool:
    """asyncpg's errors for a connection that went away (they are not OSErrors)."""
    name = type(error).__name__
    return isinstance(error, OSError) or name in {
        "ConnectionDoesNotExistError",
        "ConnectionResetError",
        "InterfaceError",
    }


def storage_error(error: BaseException, storage: Storage, doing: Doing) -> StorageError:
    """A `StorageError` for an `OSError` (a full disk, say) of `storage` while `doing`."""
    if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}:
        detail = (
            f"no space is left on its device ({_summary(error)}): free space, or point "
            "the storage elsewhere"
        )
    else:
        detail = _summary(error)
    return StorageError(f"{_text(doing)}: storage {storage!r} failed: {detail}")


@contextmanager
def storage_calls(storage: Storage, doing: Doing) -> Iterator[None]:
    """Turn an `OSError` of `storage` inside the block into a `StorageError`."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, LakeryError):
            raise
        raise storage_error(exc, storage, doing) from exc


def _text(doing: Doing) -> str:
    return doing if isinstance(doing, str) else doing()


def _summary(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
