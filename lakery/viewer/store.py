"""What the viewer reads from a store: manifest pages, one manifest, verified part bytes.

Every read of a part's bytes is checked against its record (size and sha256), as
`lakery verify` checks them: `read_part` checks the whole value before anything is shown,
`stream_part` checks while streaming and raises `CorruptPart` (after logging it) at the end
of a stream whose bytes differ from the record, so a client never gets a complete, wrong
download. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery.common.exceptions import LakeryError
from lakery.core.query import fetch_contents
from lakery.core.query import get_manifests
from lakery.core.query import select_manifests
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.session import use_session
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import normalize_class_id
from lakery.core.storage import HASH_ALGORITHM

__all__ = ["CorruptPart", "ManifestPage", "SearchQuery", "ViewerStore"]

logger = logging.getLogger("lakery.viewer")


class CorruptPart(LakeryError):
    """A part's bytes differ from its record (size or sha256), or cannot be checked."""


@dataclass(frozen=True)
class SearchQuery:
    """The search form: every given filter must match.

    Attributes:
        tags: tags with these exact values.
        class_ids: manifests of any of these classes (None: any class).
        since: created at or after this time (timezone-aware).
        before: created before this time (timezone-aware).
        page: the page number, from 1.
        page_size: manifests per page.
    """

    tags: dict[str, str] = field(default_factory=dict)
    class_ids: tuple[uuid.UUID, ...] | None = None
    since: datetime | None = None
    before: datetime | None = None
    page: int = 1
    page_size: int = 25


@dataclass(frozen=True)
class ManifestPage:
    """One page of search results, newest first."""

    records: list[ManifestRecord]
    page: int
    has_next: bool


class ViewerStore:
    """Read-only access to the records database and the storages of a registry."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], registry: Registry) -> None:
        self.sessions = sessions
        self.registry = registry

    async def search(self, query: SearchQuery) -> ManifestPage:
        """The manifests on page `query.page` of the matches, newest first."""
        if query.class_ids is not None and not query.class_ids:
            return ManifestPage([], query.page, has_next=False)
        async with self.sessions() as session:
            statement = select_manifests(
                dialect=session.get_bind().dialect.name,
                tags=query.tags or None,
                since=query.since,
                before=query.before,
                limit=query.page_size + 1,
            )
            if query.class_ids is not None:
                statement = statement.where(ManifestRecord.class_id.in_(query.class_ids))
            statement = statement.offset((query.page - 1) * query.page_size)
            records = list((await session.execute(statement)).scalars().all())
            for record in records:
                session.expunge(record)
        has_next = len(records) > query.page_size
        return ManifestPage(records[: query.page_size], query.page, has_next)

    async def manifest(self, manifest_id: uuid.UUID) -> ManifestRecord | None:
        """The manifest with its content records, or None when there is none."""
        async with self.sessions() as session:
            found = await get_manifests(session, [manifest_id])
            record = found.get(manifest_id)
            if record is not None:
                await fetch_contents(session, [record])
        return record

    def class_name(self, record: ManifestRecord) -> str:
        """``module.QualName`` of the manifest's class if it is known here, else ""."""
        try:
            cls = self.registry.get_storable(record.class_id)
        except LakeryError:
            return ""
        return f"{cls.__module__}.{cls.__qualname__}"

    def class_ids_named(self, text: str) -> tuple[uuid.UUID, ...]:
        """The class ids that `text` names: a class id, or (case-insensitively) the
        qualified or plain name of a registered or imported storable class."""
        text = text.strip()
        try:
            return (normalize_class_id(text, owner="the class filter"),)
        except LakeryError:
            pass
        wanted = text.lower()
        found = []
        for class_id, cls in _known_storables(self.registry).items():
            full = f"{cls.__module__}.{cls.__qualname__}".lower()
            if wanted in (full, cls.__qualname__.lower(), cls.__name__.lower()):
                found.append(class_id)
        return tuple(found)

    async def read_part(self, row: ContentRecord) -> bytes:
        """All the bytes of a part, checked against its record (`CorruptPart` if not)."""
        chunks = [bytes(chunk) async for chunk in self.stream_part(row)]
        return b"".join(chunks)

    async def stream_part(self, row: ContentRecord) -> AsyncGenerator[bytes, None]:
        """The bytes of a part as they are read, hashed on the way.

        Raises `CorruptPart` before the first chunk when the part cannot be checked, and
        instead of the last chunk when the bytes differ from the record: the chunk that
        would complete a wrong download is never yielded.
        """
        if row.content_hash_algorithm != HASH_ALGORITHM:
            raise self._corrupt(row, f"hashed with {row.content_hash_algorithm!r}, unverifiable")
        storage = self.registry.get_storage(row.storage_name)
        hasher = hashlib.sha256()
        size = 0
        async with self.sessions() as session:
            # The session is made current around each read only, never across a `yield`:
            # the chunks may be consumed from another task (and so another context).
            with use_session(session):  # for storages that keep bytes in the database
                chunks = await storage.get_stream(row.storage_data)
            try:
                held: bytes | None = None
                while True:
                    try:
                        with use_session(session):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    data = bytes(chunk)
                    size += len(data)
                    hasher.update(data)
                    if size > row.content_size:
                        raise self._corrupt(row, f"more than the {row.content_size} bytes")
                    if held is not None:
                        yield held
                    held = data
                if size != row.content_size:
                    raise self._corrupt(row, f"{size} bytes read, {row.content_size} recorded")
                digest = hasher.hexdigest()
                if digest != row.content_hash:
                    detail = f"sha256 {digest} read, {row.content_hash} recorded"
                    raise self._corrupt(row, detail)
                if held is not None:
                    yield held
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()

    def _corrupt(self, row: ContentRecord, detail: str) -> CorruptPart:
        message = (
            f"part {row.content_key!r} of manifest {row.manifest_id} in storage "
            f"{row.storage_name!r}: {detail}"
        )
        logger.error("refusing corrupt content: %s", message)
        return CorruptPart(message)


def _known_storables(registry: Registry) -> dict[uuid.UUID, type[Storable]]:
    found: dict[uuid.UUID, type[Storable]] = {}
    pending = list(Storable.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "__lakery_class_id__" in cls.__dict__:
            found.setdefault(get_class_id(cls), cls)
    found.update(registry.storables)
    return found
