"""Saving storables: `save_one` and `new_saver`.

A saver is one transaction. When its block exits it unpacks and serializes every object
(in worker threads), writes each part to its storage under a content address, and only
when every blob is durable inserts all manifest and content rows and commits. If any
object fails, nothing of the saver is committed, the block raises the first error, and
blobs already written are left unreferenced (garbage collection removes them).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import instance_state

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorableTypeError
from lakery.common.exceptions import StorageError
from lakery.common.tags import validate_tags
from lakery.core.boundaries import commit
from lakery.core.boundaries import database_calls
from lakery.core.boundaries import storage_calls
from lakery.core.errors import raise_first
from lakery.core.future import Future
from lakery.core.gcpause import gc_paused
from lakery.core.lineage import DerivedFrom
from lakery.core.lineage import Edge
from lakery.core.lineage import check_parents
from lakery.core.lineage import insert_edges
from lakery.core.lineage import parent_edges
from lakery.core.parts import Part
from lakery.core.parts import Resolver
from lakery.core.parts import StreamPart
from lakery.core.parts import ValuePart
from lakery.core.parts import prepare_parts
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.records import utc_now
from lakery.core.registry import Registry
from lakery.core.serializer import describe
from lakery.core.session import discard_before_commit
from lakery.core.session import has_before_commit
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

BATCH_SIZE = 64
"""Objects unpacked and serialized per worker-thread call."""


async def save_one(
    obj: Storable,
    *,
    session: AsyncSession,
    registry: Registry,
    tags: dict[str, str] | None = None,
    derived_from: DerivedFrom | None = None,
) -> ManifestRecord:
    """Save one storable and commit; return its manifest record (with its contents).

    `derived_from` records the manifests it was made from (see `Saver.save_soon`).
    """
    async with new_saver(session=session, registry=registry) as saver:
        future = saver.save_soon(obj, tags=tags, derived_from=derived_from)
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


class _Pending:
    """One object to save: its future, then its parts and where they were written."""

    __slots__ = ("future", "obj", "parents", "parts", "tags")

    def __init__(
        self,
        obj: Storable,
        tags: dict[str, str],
        future: Future[ManifestRecord],
        parents: tuple[Edge, ...],
    ):
        self.obj = obj
        self.tags = tags
        self.future = future
        self.parents = parents
        self.parts: Sequence[Part] = ()


class Saver:
    """Collects storables to save; see `new_saver`."""

    def __init__(self, session: AsyncSession, registry: Registry, *, max_concurrency: int):
        if not isinstance(registry, Registry):
            msg = f"registry must be a lakery Registry, got {type(registry).__name__}"
            raise StorableTypeError(msg)
        self._session = session
        self._registry = registry
        self._max_concurrency = max(1, max_concurrency)
        self._limiter_made: anyio.CapacityLimiter | None = None
        self._pending: list[_Pending] = []
        self._written: dict[str, dict[str, Locator]] = {}  # storage name -> sha256 -> where
        self._resolver = Resolver(registry)
        self._closed = False
        self._has_lineage = False

    @property
    def _limiter(self) -> anyio.CapacityLimiter:
        """Bounds the writes that run at once (made when first needed: a save of one
        object to one storage writes once, unbounded)."""
        if self._limiter_made is None:
            self._limiter_made = anyio.CapacityLimiter(self._max_concurrency)
        return self._limiter_made

    def save_soon(
        self,
        obj: Storable,
        *,
        tags: dict[str, str] | None = None,
        derived_from: DerivedFrom | None = None,
    ) -> Future[ManifestRecord]:
        """Queue `obj` to be saved when the block exits; the future then holds its record.

        Args:
            obj: the storable.
            tags: manifest tags, ``{str: str}``.
            derived_from: the saved manifests `obj` was made from (lineage, see
                `lakery.core.lineage`): records or ids (``[raw, config_id]``), or labels
                (the inputs' names) mapped to one or several (``{"raw": raw}``). They
                must exist when the saver commits, else nothing is saved
                (`NotFoundError`).

        Raises at once (before anything is written) for a non-storable, invalid tags or
        an invalid `derived_from`.
        """
        if self._closed:
            msg = "this saver's block has exited; start a new one with new_saver(...)"
            raise StorableTypeError(msg)
        _check_storable(obj)
        parents = parent_edges(derived_from)
        future: Future[ManifestRecord] = Future()
        self._pending.append(_Pending(obj, validate_tags(tags), future, parents))
        self._has_lineage = self._has_lineage or bool(parents)
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
        if len(batches) == 1:  # a small save: no task group
            await self._write_batch(batches[0], None)
            return
        batch_slots = anyio.Semaphore(2)
        try:
            async with anyio.create_task_group() as group:
                for batch in batches:
                    await batch_slots.acquire()
                    group.start_soon(self._write_batch, batch, batch_slots)
        except BaseExceptionGroup as group_error:
            raise_first(group_error)

    async def _write_batch(self, batch: list[_Pending], slots: anyio.Semaphore | None) -> None:
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
            if len(values) == 1 and not streams:  # one storage, no stream: no task group
                [entries] = values.values()
                await self._write_values(entries, bounded=len(self._pending) > len(batch))
                return
            try:
                async with anyio.create_task_group() as group:
                    for entries in values.values():
                        group.start_soon(self._write_values, entries)
                    for item, part in streams:
                        group.start_soon(self._write_stream, item, part)
            except BaseExceptionGroup as group_error:
                raise_first(group_error)
        finally:
            if slots is not None:
                slots.release()

    def _prepare_batch(self, batch: list[_Pending]) -> None:
        registry, resolver = self._registry, self._resolver
        with gc_paused():  # a bounded step: unpack and serialize a batch, no stream read
            for item in batch:
                owner = type(item.obj)
                contents = get_unpacker(owner).unpack(item.obj, registry)
                item.parts = prepare_parts(contents, registry, owner=owner, resolver=resolver)

    async def _write_values(
        self, entries: list[tuple[_Pending, ValuePart]], *, bounded: bool = True
    ) -> None:
        """Write the value parts of a batch that go to one storage, each content once."""
        storage = entries[0][1].storage
        written = self._written.setdefault(storage.name, {})
        new: dict[str, ValueWrite] = {}
        for item, part in entries:
            if part.sha256 not in written and part.sha256 not in new:
                tags = {**item.tags, **part.tags} if part.tags else item.tags
                new[part.sha256] = ValueWrite(part.buffers, part.size, part.sha256, tags)
        if new:
            with storage_calls(storage, self._saving_what):
                if bounded:
                    async with self._limiter:
                        locators = await storage.put_values(list(new.values()))
                else:  # the only write of the saver
                    locators = await storage.put_values(list(new.values()))
            if len(locators) != len(new):
                msg = f"storage {storage.name!r} returned {len(locators)} locators for {len(new)}"
                raise StorageError(msg)
            written.update(zip(new, locators, strict=True))
        for _, part in entries:
            part.locator = written[part.sha256]
            part.buffers = ()  # free the serialized bytes early

    async def _write_stream(self, item: _Pending, part: StreamPart) -> None:
        async with self._limiter:
            with storage_calls(part.storage, lambda: f"saving {describe(item.obj)}"):
                part.locator = await part.write(tags={**item.tags, **part.tags})

    async def _insert_rows(self) -> list[ManifestRecord]:
        now = utc_now()
        ids = iter(_new_ids(len(self._pending) + sum(len(i.parts) for i in self._pending)))
        described: dict[type, tuple[uuid.UUID, str]] = {}
        rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        manifests: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for item in self._pending:
            obj_type = type(item.obj)
            description = described.get(obj_type)
            if description is None:
                description = get_class_id(obj_type), get_unpacker(obj_type).name
                described[obj_type] = description
            manifest_id = next(ids)
            manifest = {
                "id": manifest_id,
                "created_at": now,
                "class_id": description[0],
                "unpacker_name": description[1],
                "tags": item.tags,
            }
            parts = [_content_row(next(ids), manifest_id, part, now) for part in item.parts]
            manifests.append(manifest)
            contents.extend(parts)
            rows.append((manifest, parts))
        if has_before_commit(self._session):  # deferred work registered by storages
            try:
                async with anyio.create_task_group() as group:
                    # The storages' deferred work (making files durable, inserting blobs)
                    # waits on I/O: build the records meanwhile. They are returned only if
                    # all commits.
                    group.start_soon(run_before_commit, self._session)
                    await anyio.lowlevel.checkpoint()
                    records = _detached_records(rows)
            except BaseExceptionGroup as group_error:
                raise_first(group_error)
        else:
            records = _detached_records(rows)
        edges = self._edge_rows(manifests) if self._has_lineage else []
        with database_calls(self._session, self._saving_what):
            if edges:
                await check_parents(self._session, [row["parent_id"] for row in edges])
            await self._session.execute(insert(ManifestRecord.__table__), manifests)
            if contents:
                await self._session.execute(insert(ContentRecord.__table__), contents)
            await insert_edges(self._session, edges)
        await commit(
            self._session, self._saving_what, lambda: tuple(row["id"] for row in manifests)
        )
        return records

    def _edge_rows(self, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The lineage rows of the saver's objects (their manifest ids are now known)."""
        rows = []
        for item, manifest in zip(self._pending, manifests, strict=True):
            child = manifest["id"]
            for parent, label in item.parents:
                if parent == child:
                    msg = f"manifest {child} cannot be derived from itself; nothing was saved"
                    raise ConfigurationError(msg)
                rows.append({"child_id": child, "parent_id": parent, "label": label})
        return rows

    def _saving_what(self) -> str:
        """What this saver does, for error messages: the objects' count and classes."""
        names = sorted({type(item.obj).__qualname__ for item in self._pending})
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        count = len(self._pending)
        return f"saving {count} object{'s' if count != 1 else ''} ({shown})"


def _content_row(
    content_id: uuid.UUID, manifest_id: uuid.UUID, part: Part, now: datetime
) -> dict[str, Any]:
    serializer = part.serializer
    assert serializer is not None  # a stream part has one once written
    return {
        "id": content_id,
        "manifest_id": manifest_id,
        "content_key": part.key,
        "content_type": serializer.content_type,
        "content_encoding": serializer.content_encoding,
        "content_size": part.size,
        "content_hash": part.sha256,
        "content_hash_algorithm": HASH_ALGORITHM,
        "serializer_name": serializer.name,
        "serializer_type": part.serializer_type,
        "storage_name": part.storage.name,
        "storage_data": part.locator,
        "tags": part.tags,
        "created_at": now,
    }


def _new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs, from one read of the system's randomness."""
    data = os.urandom(16 * count)
    return [uuid.UUID(bytes=data[i : i + 16], version=4) for i in range(0, 16 * count, 16)]


def _detached_records(
    rows: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> list[ManifestRecord]:
    """Records that belong to no session, so they stay usable after it closes or expires.

    Built straight from the inserted rows (no ORM events: they are never flushed).
    """
    configure_mappers()  # what a mapped class's constructor would otherwise trigger
    new_manifest = ManifestRecord.__mapper__.class_manager.new_instance
    new_content = ContentRecord.__mapper__.class_manager.new_instance
    contents_impl = ManifestRecord.__mapper__.class_manager["contents"].impl
    records = []
    for manifest, parts in rows:
        record = new_manifest()
        record.__dict__.update(manifest)
        children = []
        for row in parts:
            child = new_content()
            child.__dict__.update(row)
            children.append(child)
        if len(children) > 1:
            children.sort(key=_content_key)
        contents_impl.set_committed_value(instance_state(record), record.__dict__, children)
        records.append(record)
    return records


def _content_key(content: ContentRecord) -> str:
    key: str = content.__dict__["content_key"]
    return key


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
