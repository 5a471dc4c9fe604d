"""Fault injection: a storage wrapper that fails on purpose, and a session whose commit fails."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.builtin import FileStorage
from lakery.core.serializer import Buffer
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.core.storage import ValueWrite

MODES = ("error", "truncate", "cancel")
"""error: raise OSError. truncate: a write leaves half the bytes at the content address
(as a non-atomic backend torn by a crash would) and fails; a read returns half the bytes.
cancel: a stream write hangs mid-stream (the caller's cancel scope ends it)."""


class InjectedFault(OSError):
    """The error a fault raises."""


@dataclass
class Armed:
    op: str  # "write", "read" or "delete"
    at: int  # fire on this count of `op`
    mode: str


class FaultyStorage(Storage):
    """Wraps a `FileStorage`; fails the Nth write, read or delete as armed.

    Locators are the inner storage's, so the data stays readable without the wrapper.
    """

    def __init__(self, inner: FileStorage, *, name: str = "faulty") -> None:
        super().__init__(name=name)
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self.armed: list[Armed] = []
        self.injected = 0

    def arm(self, op: str, nth: int = 1, mode: str = "error") -> None:
        """Fail the `nth` next `op` in `mode`: "write" (values and streams), "stream"
        (streams only), "read" or "delete"."""
        assert op in {"write", "stream", "read", "delete"} and mode in MODES and nth >= 1
        self.armed.append(Armed(op, self.counts[op] + nth, mode))

    def disarm(self) -> None:
        self.armed.clear()

    def _next(self, *ops: str) -> str | None:
        for op in ops:
            self.counts[op] += 1
        for armed in self.armed:
            if armed.op in ops and armed.at == self.counts[armed.op]:
                self.armed.remove(armed)
                self.injected += 1
                return armed.mode
        return None

    # -- writes ------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        [locator] = await self.put_values([ValueWrite(data, size, sha256, tags)])
        return locator

    async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
        for index, write in enumerate(writes):
            mode = self._next("write")
            if mode is None:
                continue
            if index:  # the writes before the failing one do happen
                await self.inner.put_values(writes[:index])
            if mode == "truncate":
                await self._torn(write.sha256, b"".join(bytes(b) for b in write.data))
            raise InjectedFault(f"injected write failure ({mode})")
        return await self.inner.put_values(writes)

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        mode = self._next("write", "stream")
        if mode is None:
            return await self.inner.put_stream(stream, tags=tags)
        if mode == "truncate":
            data = b"".join([bytes(chunk) async for chunk in stream])
            await self._torn(stream.sha256, data)
            raise InjectedFault("injected stream write failure (truncate)")
        return await self.inner.put_stream(
            HashingStream(_broken(stream, hang=mode == "cancel")), tags=tags
        )

    async def _torn(self, sha256: str, data: bytes) -> None:
        """Half the bytes at the content address, as if written in place and cut short."""
        path = self.inner.root / sha256[:2] / sha256
        await anyio.to_thread.run_sync(_write_partial, path, data[: len(data) // 2])

    # -- reads ---------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        mode = self._next("read")
        data = await self.inner.get_value(locator)
        return self._bad_read(mode, data)

    async def get_values(self, locators: Sequence[Locator]) -> list[Any]:
        results = await self.inner.get_values(locators)
        return [
            r if isinstance(r, BaseException) else self._bad_read(self._next("read"), r)
            for r in results
        ]

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        mode = self._next("read")
        if mode is None:
            return await self.inner.get_stream(locator)
        data = await self.inner.get_value(locator)
        return _one_chunk(self._bad_read(mode, data))

    def _bad_read(self, mode: str | None, data: Buffer) -> Buffer:
        if mode is None:
            return data
        if mode == "truncate":
            return bytes(data)[: len(data) // 2]
        raise InjectedFault(f"injected read failure ({mode})")

    # -- maintenance ---------------------------------------------------------------------

    def list_blobs(self) -> AsyncIterator[BlobInfo]:
        return self.inner.list_blobs()

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        if self._next("delete") is not None:
            raise InjectedFault("injected delete failure")
        return await self.inner.delete_blob(blob, older_than=older_than)

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        return await self.inner.delete_leftovers(older_than=older_than, dry_run=dry_run)

    async def delete(self, locator: Locator) -> None:
        await self.inner.delete(locator)

    def uri(self, locator: Locator) -> str | None:
        return self.inner.uri(locator)


async def _broken(stream: HashingStream, *, hang: bool) -> AsyncIterator[Buffer]:
    """Pass the first chunk, then fail (or hang until cancelled)."""
    async for chunk in stream:
        yield chunk
        break
    if hang:
        await anyio.sleep_forever()
    raise InjectedFault("injected failure in the middle of a stream")


async def _one_chunk(data: Buffer) -> AsyncIterator[Buffer]:
    yield data


def _write_partial(path: Any, data: bytes) -> None:
    """A write torn halfway, at a content address that held nothing yet (a storage must
    never write in place over existing content: that is what makes its writes atomic)."""
    if path.exists():
        return
    os.makedirs(path.parent, exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


class FailingCommitSession(AsyncSession):
    """Its next `fail_commits` commits fail: before reaching the database ("before") or
    after the database committed but before the caller heard back ("after")."""

    fail_commits = 0
    when = "before"
    injected = 0

    async def commit(self) -> None:
        if self.fail_commits > 0:
            self.fail_commits -= 1
            type(self).injected += 1
            if self.when == "after":
                await super().commit()
            raise OperationalError("COMMIT", {}, InjectedFault("injected commit failure"))
        await super().commit()
