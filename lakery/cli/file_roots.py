"""One storage name whose records name several file roots: a `FileStorage` per root.

Made by `lakery.cli.discovery` when, for example, two applications registered file
storages with different roots under the same (default) name. Each locator is read, and
each blob collected, by the `FileStorage` of the root it names; the command line never
writes with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lakery.builtin import FileStorage
from lakery.common.exceptions import NotFoundError
from lakery.core.serializer import Buffer
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage

__all__ = ["FileRoots"]


class FileRoots(Storage):
    """File storages of one name at several roots (the first one is the main one)."""

    def __init__(self, roots: Sequence[str], *, name: str) -> None:
        super().__init__(name=name)
        self.storages = {root: FileStorage(root, name=name) for root in roots}
        self.main = next(iter(self.storages.values()))

    def __repr__(self) -> str:
        return f"FileRoots({list(self.storages)!r}, name={self.name!r})"

    def _for(self, locator: Locator) -> FileStorage:
        root = locator.get("root") if isinstance(locator, Mapping) else None
        return self.storages.get(root, self.main) if isinstance(root, str) else self.main

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        raise NotImplementedError(f"{self!r} only reads and collects")

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        raise NotImplementedError(f"{self!r} only reads and collects")

    async def get_value(self, locator: Locator) -> Buffer:
        return await self._for(locator).get_value(locator)

    async def get_values(self, locators: Sequence[Locator]) -> list[Buffer | NotFoundError]:
        groups: dict[int, tuple[FileStorage, list[int]]] = {}
        for i, locator in enumerate(locators):
            storage = self._for(locator)
            groups.setdefault(id(storage), (storage, []))[1].append(i)
        results: list[Any] = [None] * len(locators)
        for storage, indexes in groups.values():
            found = await storage.get_values([locators[i] for i in indexes])
            for i, value in zip(indexes, found, strict=True):
                results[i] = value
        return results

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        return await self._for(locator).get_stream(locator)

    async def delete(self, locator: Locator) -> None:
        await self._for(locator).delete(locator)

    def uri(self, locator: Locator) -> str | None:
        return self._for(locator).uri(locator)

    def local_path(self, locator: Locator) -> str | None:
        return self._for(locator).local_path(locator)

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """The blobs of every root (their locators name their root)."""
        for storage in self.storages.values():
            async for blob in storage.list_blobs():
                yield blob

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        return await self._for(blob.locator).delete_blob(blob, older_than=older_than)

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        removed: list[str] = []
        for storage in self.storages.values():
            removed += await storage.delete_leftovers(older_than=older_than, dry_run=dry_run)
        return removed
