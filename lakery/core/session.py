"""What the save/load API shares with storages about the current database session.

A saver or loader makes its session current (a context variable, inherited by the tasks it
starts) so that storages that keep data in the database can use it. Such storages may
register work to run inside the saver's transaction right before its rows are inserted.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol
from typing import TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.core.boundaries import database_error
from lakery.core.boundaries import is_database_failure
from lakery.core.boundaries import storage_error

__all__ = [
    "add_before_commit",
    "current_session",
    "discard_before_commit",
    "has_before_commit",
    "run_before_commit",
    "saving_session",
    "session_lock",
    "use_session",
]

H = TypeVar("H", bound="BeforeCommit")


class BeforeCommit(Protocol):
    """Work a storage defers to the saver's transaction (e.g. inserting buffered rows).

    A hook may also define `async discard()`, called instead when the save fails.
    """

    async def __call__(self, session: AsyncSession) -> None: ...


_SESSION: ContextVar[AsyncSession | None] = ContextVar("lakery_session", default=None)
_LOCK_KEY = "lakery.lock"
_HOOKS_KEY = "lakery.before_commit"


@contextmanager
def use_session(session: AsyncSession) -> Iterator[None]:
    """Make `session` current for the code in the block and the tasks it starts."""
    if not isinstance(session, AsyncSession):
        msg = (
            f"session must be an sqlalchemy AsyncSession, got {type(session).__name__}; "
            "create one with async_sessionmaker(create_async_engine(url))()"
        )
        raise ConfigurationError(msg)
    token = _SESSION.set(session)
    try:
        yield
    finally:
        _SESSION.reset(token)


def saving_session() -> AsyncSession | None:
    """The session of the running save or load, or None outside of one."""
    return _SESSION.get()


def current_session() -> AsyncSession:
    """The session of the running save or load."""
    session = _SESSION.get()
    if session is None:
        msg = "no lakery session is current: use this storage through save/load functions"
        raise ConfigurationError(msg)
    return session


def session_lock(session: AsyncSession) -> anyio.Lock:
    """A lock that serializes use of `session` by concurrent tasks (sessions are not safe
    for concurrent use)."""
    lock = session.info.get(_LOCK_KEY)
    if lock is None:
        lock = session.info[_LOCK_KEY] = anyio.Lock()
    return lock


def add_before_commit(session: AsyncSession, key: str, factory: Callable[[], H]) -> H:
    """Return the hook registered under `key`, creating it with `factory()` if needed.

    The saver calls each hook once, inside its transaction, before inserting its rows; a
    failed save discards them.
    """
    hooks = session.info.setdefault(_HOOKS_KEY, {})
    if key not in hooks:
        hooks[key] = factory()
    hook: H = hooks[key]  # what `factory` made for this key
    return hook


def has_before_commit(session: AsyncSession) -> bool:
    """Whether any hook is registered (the saver skips the hook step when none is)."""
    return bool(session.info.get(_HOOKS_KEY))


async def run_before_commit(session: AsyncSession) -> None:
    """Run the registered hooks, then forget them (on failure they stay, to be discarded)."""
    for hook in list(session.info.get(_HOOKS_KEY, {}).values()):
        try:
            await hook(session)
        except Exception as exc:
            storage = getattr(hook, "storage", None)
            doing = "making the blobs of a save durable"
            if storage is not None and isinstance(exc, OSError):
                raise storage_error(exc, storage, doing) from exc
            if is_database_failure(exc):
                raise database_error(exc, session, doing) from exc
            raise
    session.info.pop(_HOOKS_KEY, None)


async def discard_before_commit(session: AsyncSession) -> None:
    """Forget the registered hooks (the save failed and is rolled back), cleaning up."""
    for hook in session.info.pop(_HOOKS_KEY, {}).values():
        discard = getattr(hook, "discard", None)
        if discard is not None:
            await discard()
