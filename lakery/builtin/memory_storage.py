"""Bytes kept in this process's memory, for tests and scratch work."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

from lakery.common.exceptions import NotFoundError
from lakery.core.serializer import Buffer
from lakery.core.storage import Locator
from lakery.core.storage import Storage

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """A dict of sha256 to bytes. Everything is gone when the process exits."""

    name = "lakery.memory@v1"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.blobs: dict[str, bytes] = {}

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        if sha256 not in self.blobs:
            self.blobs[sha256] = b"".join(data)
        return {"key": sha256}

    async def get_value(self, locator: Locator) -> Buffer:
        try:
            return self.blobs[locator["key"]]
        except KeyError:
            msg = f"no data for {locator!r} in this process's memory storage"
            raise NotFoundError(msg, locator=locator) from None

    async def delete(self, locator: Locator) -> None:
        self.blobs.pop(locator["key"], None)
