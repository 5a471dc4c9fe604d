"""Bytes kept in this process's memory, for tests and scratch work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

from lakery.common.exceptions import NotFoundError
from lakery.core.serializer import Buffer
from lakery.core.storage import BlobInfo
from lakery.core.storage import Locator
from lakery.core.storage import Storage

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """A dict of sha256 to bytes. Everything is gone when the process exits."""

    name = "lakery.memory@v1"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.blobs: dict[str, bytes] = {}
        self.modified: dict[str, datetime] = {}
        """When each blob was last written or reused (for garbage collection)."""

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        if sha256 not in self.blobs:
            self.blobs[sha256] = b"".join(data)
        self.modified[sha256] = datetime.now(UTC)  # also when reused: gc spares it
        return {"key": sha256}

    async def get_value(self, locator: Locator) -> Buffer:
        try:
            return self.blobs[locator["key"]]
        except KeyError:
            msg = f"no data for {locator!r} in this process's memory storage"
            raise NotFoundError(msg, locator=locator) from None

    async def delete(self, locator: Locator) -> None:
        self.blobs.pop(locator["key"], None)

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every blob; one put into `blobs` directly (not by `put_value`) counts as new."""
        now = datetime.now(UTC)
        for sha256, data in list(self.blobs.items()):
            modified = self.modified.setdefault(sha256, now)
            yield BlobInfo({"key": sha256}, sha256, len(data), modified)

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        sha256 = blob.locator.get("key")
        modified = self.modified.get(sha256) if isinstance(sha256, str) else None
        if modified is None or modified >= older_than or sha256 not in self.blobs:
            return False
        del self.blobs[sha256]
        del self.modified[sha256]
        return True
