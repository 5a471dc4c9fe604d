"""Verification: read every part back and check its size and sha256 against its record.

`verify_manifests` reports, without raising, each part that is

- ``missing``: its storage has no data at the recorded locator;
- ``corrupt``: the data's size or sha256 differs from the record;
- ``unknown component``: its storage or serializer is not in the registry (it could not
  be loaded);
- ``unverifiable``: it was hashed with an algorithm this lakery cannot check;
- ``unreadable``: the storage failed to read it (I/O error, access denied, bad locator);
- ``missing manifest``: a manifest id asked for does not exist.

Lineage edges of the checked manifests whose parent no longer exists are listed in
`VerifyReport.dangling_lineage`: a notice, not a problem (``report.ok`` stays True),
since deleting a parent with ``force=True`` leaves them on purpose.

Nothing is deserialized: verification reads bytes only, so it never runs a serializer on
data it does not trust.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotRegisteredError
from lakery.core.errors import raise_first
from lakery.core.query import ClassFilter
from lakery.core.query import ManifestQuery
from lakery.core.query import as_manifest_id
from lakery.core.query import fetch_contents
from lakery.core.query import select_manifests
from lakery.core.records import ContentRecord
from lakery.core.records import LineageRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.serializer import Buffer
from lakery.core.session import session_lock
from lakery.core.session import use_session
from lakery.core.storage import HASH_ALGORITHM
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.storage import Storage
from lakery.maintenance.progress import Progress
from lakery.maintenance.progress import report

__all__ = ["Problem", "VerifyReport", "verify_manifests"]

_PAGE = 200
"""Manifests whose parts are checked together."""
_READ_BATCH = 128
"""Value parts per `Storage.get_values` call."""
_STREAM_ABOVE = 8 << 20
"""Parts larger than this are read as streams, never whole into memory."""


@dataclass(frozen=True)
class Problem:
    """One part that failed verification.

    Attributes:
        kind: ``"missing"``, ``"corrupt"``, ``"unknown component"``, ``"unverifiable"``,
            ``"unreadable"`` or ``"missing manifest"``.
        manifest_id: the manifest the part belongs to.
        content_key: the part's content key (empty for a missing manifest).
        storage: the name of the part's storage (empty for a missing manifest).
        message: what is wrong, for people.
    """

    kind: str
    manifest_id: uuid.UUID
    content_key: str
    storage: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-able form."""
        return {
            "kind": self.kind,
            "manifest_id": str(self.manifest_id),
            "content_key": self.content_key,
            "storage": self.storage,
            "message": self.message,
        }


@dataclass
class VerifyReport:
    """The result of `verify_manifests`.

    Attributes:
        manifests: manifests checked.
        parts: content parts checked.
        bytes: bytes read and hashed.
        problems: every part that failed, in the order found.
        dangling_lineage: checked manifests derived from a parent that no longer exists
            (deleted with ``force=True``), each with those parents' ids. A notice: it
            does not make the report fail.
    """

    manifests: int = 0
    parts: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    dangling_lineage: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    @property
    def dangling_edges(self) -> int:
        """How many lineage edges name a missing parent."""
        return sum(len(parents) for parents in self.dangling_lineage.values())

    @property
    def ok(self) -> bool:
        """True when no part had a problem."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "ok": self.ok,
            "manifests": self.manifests,
            "parts": self.parts,
            "bytes": self.bytes,
            "problems": [p.to_dict() for p in self.problems],
            "dangling_lineage": {
                "edges": self.dangling_edges,
                "children": {
                    str(c): [str(p) for p in ps] for c, ps in self.dangling_lineage.items()
                },
            },
        }


async def verify_manifests(
    session: AsyncSession,
    registry: Registry,
    *,
    manifests: Iterable[ManifestRecord | uuid.UUID | str] | None = None,
    tags: Mapping[str, str] | None = None,
    cls: ClassFilter | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
    sample: int | None = None,
    max_concurrency: int = 8,
    progress: Progress | None = None,
) -> VerifyReport:
    """Read the parts of manifests back and check their sizes and hashes.

    Without `manifests`, every manifest matching the filters (by default all) is checked,
    or a random `sample` of them.

    Args:
        session: the database session (also used by `DatabaseStorage`).
        registry: the storages to read with, and the serializers that must be known.
        manifests: check these manifests (records or ids) instead of querying.
        tags: only manifests with these tags.
        cls: only manifests of this storable class (or class id).
        since: only manifests created at or after this time (timezone-aware).
        before: only manifests created before this time (timezone-aware).
        sample: check only this many manifests, chosen at random.
        max_concurrency: reads in flight at once.
        progress: called with ``("verify", manifests checked, manifests to check)``.

    Returns:
        What was checked and every problem found; ``report.ok`` is True if none.
    """
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        msg = f"sample must be a positive int or None, got {sample!r}"
        raise ConfigurationError(msg)
    checker = _Checker(session, registry, max(1, max_concurrency))
    with use_session(session):
        if manifests is not None:
            ids = list(dict.fromkeys(_as_id(m) for m in manifests))
            ids = await checker.existing(ids)
            if sample is not None and sample < len(ids):
                ids = random.sample(ids, sample)
        else:
            query: ManifestQuery = {"tags": tags, "cls": cls, "since": since, "before": before}
            ids = await _select_ids(session, query, sample)
        for start in range(0, len(ids), _PAGE):
            await checker.check(ids[start : start + _PAGE])
            report(progress, "verify", min(start + _PAGE, len(ids)), len(ids))
    return checker.report


async def _select_ids(
    session: AsyncSession, query: ManifestQuery, sample: int | None
) -> list[uuid.UUID]:
    dialect = session.get_bind().dialect.name
    manifests = select_manifests(dialect=dialect, **query, limit=None)
    statement = manifests.with_only_columns(ManifestRecord.id).order_by(None)
    if sample is not None:
        statement = statement.order_by(func.random()).limit(sample)
    else:
        statement = statement.order_by(ManifestRecord.created_at, ManifestRecord.id)
    async with session_lock(session):
        ids = list((await session.execute(statement)).scalars())
        await session.commit()
    return ids


class _Checker:
    def __init__(self, session: AsyncSession, registry: Registry, concurrency: int) -> None:
        self.session = session
        self.registry = registry
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.report = VerifyReport()

    async def existing(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """The ids that exist; a problem is reported for each of the others."""
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), _PAGE):
            statement = select(ManifestRecord.id).where(
                ManifestRecord.id.in_(ids[start : start + _PAGE])
            )
            async with session_lock(self.session):
                found.update((await self.session.execute(statement)).scalars())
                await self.session.commit()
        for missing in (i for i in ids if i not in found):
            message = f"manifest {missing} does not exist"
            self.report.problems.append(Problem("missing manifest", missing, "", "", message))
        return [i for i in ids if i in found]

    async def check(self, ids: list[uuid.UUID]) -> None:
        async with session_lock(self.session):
            contents = await fetch_contents(self.session, ids)
            dangling = await self.session.execute(_dangling(ids))
            await self.session.commit()
        for child, parent in dangling.all():
            self.report.dangling_lineage.setdefault(child, []).append(parent)
        values: dict[str, list[ContentRecord]] = {}
        streams: list[tuple[Storage, ContentRecord]] = []
        for manifest_id in ids:
            self.report.manifests += 1
            for row in contents[manifest_id]:
                self.report.parts += 1
                storage = self._components(row)
                if storage is None:
                    continue
                if row.content_hash_algorithm != HASH_ALGORITHM:
                    algorithm = row.content_hash_algorithm
                    detail = f"hashed with {algorithm!r}, which lakery cannot check"
                    self._problem("unverifiable", row, detail)
                elif row.serializer_type == "stream" or row.content_size > _STREAM_ABOVE:
                    streams.append((storage, row))
                else:
                    values.setdefault(storage.name, []).append(row)
        try:
            async with anyio.create_task_group() as group:
                for name, rows in values.items():
                    storage = self.registry.get_storage(name)
                    for start in range(0, len(rows), _READ_BATCH):
                        batch = rows[start : start + _READ_BATCH]
                        group.start_soon(self._check_values, storage, batch)
                for storage, row in streams:
                    group.start_soon(self._check_stream, storage, row)
        except BaseExceptionGroup as group_error:
            raise_first(group_error)

    def _components(self, row: ContentRecord) -> Storage | None:
        """The part's storage, after checking that its serializer is known too."""
        kind = "stream serializer" if row.serializer_type == "stream" else "serializer"
        known = (
            self.registry.stream_serializers
            if row.serializer_type == "stream"
            else self.registry.serializers
        )
        if row.serializer_name not in known:
            detail = f"its {kind} {row.serializer_name!r} is not in the registry"
            self._problem("unknown component", row, detail)
        try:
            return self.registry.get_storage(row.storage_name)
        except NotRegisteredError:
            detail = f"its storage {row.storage_name!r} is not in the registry"
            self._problem("unknown component", row, detail)
            return None

    async def _check_values(self, storage: Storage, rows: list[ContentRecord]) -> None:
        async with self.limiter:
            try:
                results: Sequence[Buffer | BaseException] = await storage.get_values(
                    [row.storage_data for row in rows]
                )
            except (LakeryError, OSError):
                results = [await self._get_one(storage, row) for row in rows]
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                self._read_failed(row, result)
                continue
            size = memoryview(result).nbytes
            if size > THREAD_THRESHOLD:
                digest = await anyio.to_thread.run_sync(_sha256, result)
            else:
                digest = _sha256(result)
            self._compare(row, size, digest)

    async def _get_one(self, storage: Storage, row: ContentRecord) -> Buffer | BaseException:
        try:
            return await storage.get_value(row.storage_data)
        except (LakeryError, OSError) as exc:
            return exc

    async def _check_stream(self, storage: Storage, row: ContentRecord) -> None:
        hasher = hashlib.sha256()
        size = 0
        async with self.limiter:
            try:
                chunks = await storage.get_stream(row.storage_data)
                try:
                    async for chunk in chunks:
                        view = memoryview(chunk)
                        size += view.nbytes
                        if view.nbytes > THREAD_THRESHOLD:
                            await anyio.to_thread.run_sync(hasher.update, view)
                        else:
                            hasher.update(view)
                        if size > row.content_size:
                            break  # more than recorded: corrupt, no need to read on
                finally:
                    close = getattr(chunks, "aclose", None)
                    if close is not None:
                        with anyio.CancelScope(shield=True):
                            await close()
            except (LakeryError, OSError) as exc:
                self._read_failed(row, exc)
                return
        self._compare(row, size, hasher.hexdigest())

    def _compare(self, row: ContentRecord, size: int, digest: str) -> None:
        self.report.bytes += size
        if size > row.content_size:
            self._problem("corrupt", row, f"more than the {row.content_size} bytes recorded")
        elif size != row.content_size:
            self._problem("corrupt", row, f"{size} bytes read, {row.content_size} recorded")
        elif digest != row.content_hash:
            self._problem("corrupt", row, f"sha256 {digest} read, {row.content_hash} recorded")

    def _read_failed(self, row: ContentRecord, error: BaseException) -> None:
        if isinstance(error, FileNotFoundError):
            self._problem("missing", row, f"no data at its locator: {error}")
        else:
            self._problem("unreadable", row, f"{type(error).__name__}: {error}")

    def _problem(self, kind: str, row: ContentRecord, detail: str) -> None:
        message = (
            f"part {row.content_key!r} of manifest {row.manifest_id} in storage "
            f"{row.storage_name!r}: {detail}"
        )
        self.report.problems.append(
            Problem(kind, row.manifest_id, row.content_key, row.storage_name, message)
        )


def _dangling(ids: list[uuid.UUID]) -> Any:
    """The edges of the manifests `ids` whose parent manifest does not exist."""
    parent = select(ManifestRecord.id).where(ManifestRecord.id == LineageRecord.parent_id)
    return (
        select(LineageRecord.child_id, LineageRecord.parent_id)
        .where(LineageRecord.child_id.in_(ids), ~exists(parent))
        .distinct()
        .order_by(LineageRecord.child_id, LineageRecord.parent_id)
    )


def _sha256(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()


def _as_id(item: ManifestRecord | uuid.UUID | str) -> uuid.UUID:
    return item.id if isinstance(item, ManifestRecord) else as_manifest_id(item)
