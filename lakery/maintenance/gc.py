"""Garbage collection: remove blobs that no content record references any more.

Blobs become unreferenced when manifests are deleted, and when a save fails after writing
some of its parts (the parts are written before the records, so a failed save leaves
unreferenced blobs, never records without data). `collect_garbage` lists each storage's
blobs (`Storage.list_blobs`) and deletes (`Storage.delete_blob`) those that are

1. older than the grace period (last written or reused before ``now - grace``), and
2. not referenced: no content record, in any storage, has their hash.

Safety with saves running at the same time rests on one rule: **a save that writes or
reuses a blob makes it fresh before it commits** (files are written or touched, database
rows inserted or their ``created_at`` refreshed, S3 objects PUT), and `delete_blob` checks
the age again at the moment it deletes. A save therefore either refreshed the blob before
that check (the blob is spared) or looks for it after the deletion (and writes it again).
The guarantee holds when the grace period is longer than the longest save, measured from
its first blob write to its commit, plus any clock skew between the machines that write
blobs, the storages' clocks and the one running the collection. See docs/maintenance.md
for what each storage does, and the one narrow window left on S3.

By default nothing is deleted (a dry run); pass ``delete=True``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.core.records import ContentRecord
from lakery.core.records import utc_now
from lakery.core.registry import Registry
from lakery.core.session import session_lock
from lakery.core.session import use_session
from lakery.core.storage import BlobInfo
from lakery.core.storage import Storage
from lakery.maintenance.progress import Progress
from lakery.maintenance.progress import report

__all__ = ["DEFAULT_GRACE", "GarbageReport", "StorageGarbage", "collect_garbage"]

DEFAULT_GRACE = timedelta(hours=24)
"""Blobs written or reused within this period before a collection are always kept."""

_BATCH = 500
"""Blobs whose references are looked up in one query."""


@dataclass
class StorageGarbage:
    """What garbage collection found (and did) in one storage.

    Attributes:
        storage: the storage's component name.
        listed: blobs listed, and `listed_bytes` their total size.
        recent: blobs spared because they were written or reused within the grace period.
        referenced: old blobs that a content record still references.
        garbage: old, unreferenced blobs: deleted, or in a dry run to be deleted.
        deleted: blobs actually deleted, and `deleted_bytes` their total size.
        spared: garbage that was reused by a save while the collection ran, so kept.
        leftovers: temporary objects of interrupted writes removed (or to be removed).
        errors: blobs that could not be deleted, with the reason.
        skipped: why the storage was not collected (e.g. it cannot list its blobs).
    """

    storage: str
    listed: int = 0
    listed_bytes: int = 0
    recent: int = 0
    referenced: int = 0
    garbage: list[BlobInfo] = field(default_factory=list)
    deleted: int = 0
    deleted_bytes: int = 0
    spared: int = 0
    leftovers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def garbage_bytes(self) -> int:
        """The total size of the garbage blobs."""
        return sum(blob.size for blob in self.garbage)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (garbage blobs by sha256 and size)."""
        return {
            "storage": self.storage,
            "skipped": self.skipped,
            "listed": self.listed,
            "listed_bytes": self.listed_bytes,
            "recent": self.recent,
            "referenced": self.referenced,
            "garbage": [{"sha256": b.sha256, "size": b.size} for b in self.garbage],
            "garbage_bytes": self.garbage_bytes,
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "spared": self.spared,
            "leftovers": self.leftovers,
            "errors": self.errors,
        }


@dataclass
class GarbageReport:
    """The result of `collect_garbage`.

    Attributes:
        now: the time the collection took as "now".
        cutoff: ``now - grace``: only blobs last written before it were candidates.
        dry_run: True if nothing was deleted.
        storages: one entry per storage, in the order collected.
    """

    now: datetime
    cutoff: datetime
    dry_run: bool
    storages: list[StorageGarbage] = field(default_factory=list)

    @property
    def garbage(self) -> int:
        """Unreferenced old blobs found, over all storages."""
        return sum(len(s.garbage) for s in self.storages)

    @property
    def deleted(self) -> int:
        """Blobs deleted, over all storages."""
        return sum(s.deleted for s in self.storages)

    @property
    def errors(self) -> list[str]:
        """Every error, prefixed with its storage's name."""
        return [f"{s.storage}: {e}" for s in self.storages for e in s.errors]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "now": self.now.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "garbage": self.garbage,
            "deleted": self.deleted,
            "storages": [s.to_dict() for s in self.storages],
        }


async def collect_garbage(
    session: AsyncSession,
    registry: Registry,
    *,
    grace: timedelta = DEFAULT_GRACE,
    delete: bool = False,
    storages: Sequence[str | Storage] | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> GarbageReport:
    """Find, and with ``delete=True`` delete, blobs that no content record references.

    Args:
        session: the database session with the records (also used by `DatabaseStorage`);
            it is committed after each deletion.
        registry: its storages are collected.
        grace: blobs written or reused more recently than this are kept; it must exceed
            the longest save (see the module docstring).
        delete: really delete; by default only report (a dry run).
        storages: collect only these storages (names or instances of the registry).
        now: the current time (timezone-aware); tests pass a later time instead of
            waiting for the grace period to pass.
        progress: called with ``("gc <storage>", blobs listed, None)``.

    Returns:
        Per storage: what was listed, kept, found to be garbage, and deleted.
    """
    now = utc_now() if now is None else now
    if now.tzinfo is None or now.utcoffset() is None:
        msg = f"now must be timezone-aware, e.g. datetime.now(UTC); got {now!r}"
        raise ConfigurationError(msg)
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        msg = f"grace must be a timedelta of zero or more, got {grace!r}"
        raise ConfigurationError(msg)
    result = GarbageReport(now=now, cutoff=now - grace, dry_run=not delete)
    with use_session(session):
        for storage in _targets(registry, storages):
            collector = _Collector(session, storage, result.cutoff, delete, progress)
            result.storages.append(await collector.run())
    return result


class _Collector:
    def __init__(
        self,
        session: AsyncSession,
        storage: Storage,
        cutoff: datetime,
        delete: bool,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.storage = storage
        self.cutoff = cutoff
        self.delete = delete
        self.progress = progress
        self.report = StorageGarbage(storage.name)

    async def run(self) -> StorageGarbage:
        try:
            blobs = self.storage.list_blobs()
        except NotImplementedError as exc:
            self.report.skipped = str(exc)
            return self.report
        try:
            await self._collect_listed(blobs)
        except NotImplementedError as exc:
            self.report.skipped = str(exc)
            return self.report
        except Exception as exc:  # a storage that fails: report it, go on with the others
            await self.session.rollback()
            self.report.errors.append(f"stopped: {_describe(exc)}")
            return self.report
        try:
            self.report.leftovers = await self.storage.delete_leftovers(
                older_than=self.cutoff, dry_run=not self.delete
            )
        except Exception as exc:
            self.report.errors.append(f"cleaning up temporary objects: {_describe(exc)}")
        await self.session.commit()
        return self.report

    async def _collect_listed(self, blobs: AsyncIterator[BlobInfo]) -> None:
        stage = f"gc {self.storage.name}"
        batch: list[BlobInfo] = []
        async for blob in blobs:
            self.report.listed += 1
            self.report.listed_bytes += blob.size
            if blob.modified >= self.cutoff:
                self.report.recent += 1
            else:
                batch.append(blob)
            if len(batch) >= _BATCH:
                await self._collect(batch)
                batch = []
            if self.report.listed % 100 == 0:
                report(self.progress, stage, self.report.listed, None)
        if batch:
            await self._collect(batch)
        report(self.progress, stage, self.report.listed, self.report.listed)

    async def _collect(self, batch: list[BlobInfo]) -> None:
        referenced = await self._referenced({blob.sha256 for blob in batch})
        for blob in batch:
            if blob.sha256 in referenced:
                self.report.referenced += 1
                continue
            self.report.garbage.append(blob)
            if self.delete and self.report.skipped is None:
                await self._delete(blob)

    async def _referenced(self, hashes: set[str]) -> set[str]:
        """The hashes that some content record (of any storage) has."""
        statement = (
            select(ContentRecord.content_hash)
            .where(ContentRecord.content_hash.in_(sorted(hashes)))
            .distinct()
        )
        async with session_lock(self.session):
            found = set((await self.session.execute(statement)).scalars())
            await self.session.commit()  # no long-lived snapshot or locks
        return found

    async def _delete(self, blob: BlobInfo) -> None:
        try:
            deleted = await self.storage.delete_blob(blob, older_than=self.cutoff)
            await self.session.commit()
        except NotImplementedError as exc:
            self.report.skipped = str(exc)
            return
        except Exception as exc:
            await self.session.rollback()
            self.report.errors.append(f"blob {blob.sha256}: {_describe(exc)}")
            return
        if deleted:
            self.report.deleted += 1
            self.report.deleted_bytes += blob.size
        else:
            self.report.spared += 1


def _targets(registry: Registry, storages: Sequence[str | Storage] | None) -> list[Storage]:
    if storages is None:
        chosen = list(registry.storages.values())
    else:
        chosen = []
        for item in storages:
            chosen.append(registry.get_storage(item if isinstance(item, str) else item.name))
    unique: dict[int, Storage] = {}
    for storage in chosen:
        unique.setdefault(id(storage), storage)
    return list(unique.values())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
