"""Saving storables: `save_one` and `new_saver`.

A saver is one transaction. When its block exits it unpacks and serializes every object
(in worker threads), writes each part to its storage under a content address, and only
when every blob is durable inserts all manifest and content rows and commits. If any
object fails, nothing of the saver is committed, the block raises the first error, and
blobs already written are left unreferenced (garbage collection removes them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import set_committed_value

from lakery.common.exceptions import StorableTypeError
from lakery.common.tags import validate_tags
from lakery.core.errors import first_error
from lakery.core.future import Future
from lakery.core.gcpause import gc_paused
from lakery.core.parts import Part
from lakery.core.parts import StreamPart
from lakery.core.parts import ValuePart
from lakery.core.parts import prepare_parts
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.records import utc_now
from lakery.core.registry import Registry
from lakery.core.session import discard_before_commit
from lakery.core.session import run_before_commit
from lakery.core.session import use_session
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import get_unpacker
from lakery.core.storage import HASH_ALGORITHM
from lakery.core.storage import Locator
from lakery.core.storage import ValueWrite

__all__ = ["Saver", "new_saver", "save_one"]

logger = logging.getLogger(__name__)

R = TypeVar("R", ManifestRecord, ContentRecord)

BATCH_SIZE = 64
"""Objects unpacked and serialized per worker-thread call."""


async def save_one(
    obj: Storable,
    *,
    session: AsyncSession,
    registry: Registry,
    tags: dict[str, str] | None = None,
) -> ManifestRecord:
    """Save one storable and commit; return its manifest record (with its contents)."""
    async with new_saver(session=session, registry=registry) as saver:
        future = saver.save_soon(obj, tags=tags)
    return future.get()


@asynccontextmanager
async def new_saver(
    *, session: AsyncSession, registry: Registry, max_concurrency: int = 16
) -> AsyncIterator[Saver]:
    """Collect storables with `saver.save_soon(obj)`; all are saved when the block exits.

    Args:
        session: the database session; the saver commits it.
        registry: the components to save with.
        max_concurrency: how many streams and batches of values are written at once.
    """
    saver = Saver(session, registry, max_concurrency=max_concurrency)
    try:
        yield saver
    except BaseException as exc:
        saver._abandon(exc)
        raise
    await saver._run()


@dataclass
class _Pending:
    obj: Storable
    tags: dict[str, str]
    future: Future[ManifestRecord]
    manifest_id: uuid.UUID = field(default_factory=uuid.uuid4)
    parts: list[Part] = field(default_factory=list)
    locators: dict[str, Locator] = field(default_factory=dict)


class Saver:
    """Collects storables to save; see `new_saver`."""

    def __init__(self, session: AsyncSession, registry: Registry, *, max_concurrency: int):
        if not isinstance(registry, Registry):
            msg = f"registry must be a lakery Registry, got {type(registry).__name__}"
            raise StorableTypeError(msg)
        self._session = session
        self._registry = registry
        self._limiter = anyio.CapacityLimiter(max(1, max_concurrency))
        self._pending: list[_Pending] = []
        self._written: dict[tuple[str, str], Locator] = {}
        self._closed = False

    def save_soon(
        self, obj: Storable, *, tags: dict[str, str] | None = None
    ) -> Future[ManifestRecord]:
        """Queue `obj` to be saved when the block exits; the future then holds its record.

        Raises at once (before anything is written) for a non-storable or invalid tags.
        """
        if self._closed:
            msg = "this saver's block has exited; start a new one with new_saver(...)"
            raise StorableTypeError(msg)
        _check_storable(obj)
        future: Future[ManifestRecord] = Future()
        self._pending.append(_Pending(obj, validate_tags(tags), future))
        return future

    def _abandon(self, error: BaseException) -> None:
        self._closed = True
        for item in self._pending:
            item.future.set_exception(_not_saved(error))

    async def _run(self) -> None:
        self._closed = True
        if not self._pending:
            return
        try:
            with use_session(self._session):
                await self._write_all()
                with gc_paused():
                    records = await self._insert_rows()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._clean_up_after(exc)
            for item in self._pending:
                if not item.future.done():
                    item.future.set_exception(_not_saved(exc))
            raise
        for item, record in zip(self._pending, records, strict=True):
            item.future.set_result(record)

    async def _clean_up_after(self, error: BaseException) -> None:
        """Drop deferred writes and roll back; a failure here must not hide `error`."""
        for step in (discard_before_commit, _rollback):
            try:
                await step(self._session)
            except Exception as cleanup_error:
                logger.warning(
                    "lakery: cleaning up after a failed save (%r) failed too: %r",
                    error,
                    cleanup_error,
                )

    async def _write_all(self) -> None:
        batches = [
            self._pending[i : i + BATCH_SIZE] for i in range(0, len(self._pending), BATCH_SIZE)
        ]
        batch_slots = anyio.Semaphore(2)
        try:
            async with anyio.create_task_group() as group:
                for batch in batches:
                    await batch_slots.acquire()
                    group.start_soon(self._write_batch, batch, batch_slots)
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None

    async def _write_batch(self, batch: list[_Pending], slots: anyio.Semaphore) -> None:
        try:
            await anyio.to_thread.run_sync(self._prepare_batch, batch)
            values: dict[int, list[tuple[_Pending, ValuePart]]] = {}
            streams: list[tuple[_Pending, StreamPart]] = []
            for item in batch:
                for part in item.parts:
                    if isinstance(part, ValuePart):
                        values.setdefault(id(part.storage), []).append((item, part))
                    else:
                        streams.append((item, part))
            async with anyio.create_task_group() as group:
                for entries in values.values():
                    group.start_soon(self._write_values, entries)
                for item, part in streams:
                    group.start_soon(self._write_stream, item, part)
        finally:
            slots.release()

    def _prepare_batch(self, batch: list[_Pending]) -> None:
        for item in batch:
            unpacker = get_unpacker(type(item.obj))
            contents = unpacker.unpack(item.obj, self._registry)
            item.parts = prepare_parts(contents, self._registry, owner=type(item.obj))

    async def _write_values(self, entries: list[tuple[_Pending, ValuePart]]) -> None:
        """Write the value parts of a batch that go to one storage, each content once."""
        storage = entries[0][1].storage
        new: dict[str, ValueWrite] = {}
        for item, part in entries:
            if (storage.name, part.sha256) not in self._written and part.sha256 not in new:
                tags = {**item.tags, **part.tags}
                new[part.sha256] = ValueWrite(part.buffers, part.size, part.sha256, tags)
        if new:
            async with self._limiter:
                locators = await storage.put_values(list(new.values()))
            for sha256, locator in zip(new, locators, strict=True):
                self._written[(storage.name, sha256)] = locator
        for item, part in entries:
            item.locators[part.key] = self._written[(storage.name, part.sha256)]
            part.buffers = ()  # free the serialized bytes early

    async def _write_stream(self, item: _Pending, part: StreamPart) -> None:
        async with self._limiter:
            item.locators[part.key] = await part.write(tags={**item.tags, **part.tags})

    async def _insert_rows(self) -> list[ManifestRecord]:
        now = utc_now()
        manifests: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for item in self._pending:
            obj_type = type(item.obj)
            manifests.append(
                {
                    "id": item.manifest_id,
                    "created_at": now,
                    "class_id": get_class_id(obj_type),
                    "unpacker_name": get_unpacker(obj_type).name,
                    "tags": item.tags,
                }
            )
            contents.extend(_content_row(item, part, now) for part in item.parts)
        await run_before_commit(self._session)
        await self._session.execute(insert(ManifestRecord.__table__), manifests)
        if contents:
            await self._session.execute(insert(ContentRecord.__table__), contents)
        await self._session.commit()
        return _detached_records(manifests, contents)


def _content_row(item: _Pending, part: Part, now: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "manifest_id": item.manifest_id,
        "content_key": part.key,
        "content_type": part.serializer.content_type,
        "content_encoding": part.serializer.content_encoding,
        "content_size": part.size,
        "content_hash": part.sha256,
        "content_hash_algorithm": HASH_ALGORITHM,
        "serializer_name": part.serializer.name,
        "serializer_type": part.serializer_type,
        "storage_name": part.storage.name,
        "storage_data": item.locators[part.key],
        "tags": part.tags,
        "created_at": now,
    }


def _detached_records(
    manifests: Sequence[dict[str, Any]], contents: Sequence[dict[str, Any]]
) -> list[ManifestRecord]:
    """Records that belong to no session, so they stay usable after it closes or expires.

    Built straight from the inserted rows (no ORM events: they are never flushed).
    """
    configure_mappers()  # what a mapped class's constructor would otherwise trigger
    by_manifest: dict[uuid.UUID, list[ContentRecord]] = {}
    for row in contents:
        by_manifest.setdefault(row["manifest_id"], []).append(_transient(ContentRecord, row))
    records = []
    for row in manifests:
        record = _transient(ManifestRecord, row)
        parts = sorted(by_manifest.get(row["id"], []), key=lambda c: c.content_key)
        set_committed_value(record, "contents", parts)
        records.append(record)
    return records


def _transient(model: type[R], row: dict[str, Any]) -> R:
    instance: R = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(row)
    return instance


async def _rollback(session: AsyncSession) -> None:
    await session.rollback()


def _check_storable(obj: object) -> None:
    if isinstance(obj, Storable):
        return
    if isinstance(obj, type) and issubclass(obj, Storable):
        msg = f"save_soon got the class {obj.__qualname__}; pass an instance of it"
    else:
        msg = (
            f"{type(obj).__qualname__} is not a storable; wrap the value "
            "(e.g. StorableValue(value)) or subclass a storable base such as "
            "StorableDataclass or StorableModel"
        )
    raise StorableTypeError(msg)


def _not_saved(error: BaseException) -> BaseException:
    if isinstance(error, Exception):
        return error
    return StorableTypeError(f"not saved: the saver was interrupted by {error!r}")
