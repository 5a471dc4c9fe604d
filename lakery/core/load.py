"""Loading storables: `load_one` and `new_loader`.

A loader fetches the content rows of every pending record that does not carry them in one
query, reads the parts concurrently, checks each part's size and sha256 against its
record (streams at their end), deserializes and rebuilds the objects.
"""

from __future__ import annotations

import hashlib
import inspect
import uuid
from collections.abc import AsyncIterator
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import IntegrityError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import SerializationError
from lakery.common.exceptions import StorableTypeError
from lakery.core.errors import first_error
from lakery.core.future import Future
from lakery.core.gcpause import gc_paused
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.serializer import Buffer
from lakery.core.serializer import StreamSerializer
from lakery.core.session import use_session
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import get_unpacker
from lakery.core.storage import HASH_ALGORITHM
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.unpacker import Unpacker

__all__ = ["Loader", "load_one", "new_loader"]

S = TypeVar("S", bound=Storable)

_IN_CHUNK = 500
"""Manifest ids per content query (stays under every backend's parameter limit)."""

_READ_BATCH = 256
"""Value parts per `Storage.get_values` call."""


async def load_one(
    record: ManifestRecord,
    cls: type[S] | None = None,
    *,
    session: AsyncSession,
    registry: Registry,
) -> S:
    """Load the storable saved as `record`.

    Args:
        record: a manifest record returned by a save or found by a query.
        cls: the expected class; checked against the record's class id. Without it, the
            class is found by id among registered and imported storables.
        session: the database session.
        registry: the components to load with.
    """
    async with new_loader(session=session, registry=registry) as loader:
        future = loader.load_soon(record, cls)
    return future.get()


@asynccontextmanager
async def new_loader(
    *, session: AsyncSession, registry: Registry, max_concurrency: int = 16
) -> AsyncIterator[Loader]:
    """Collect records with `loader.load_soon(record, cls)`; all load when the block exits."""
    loader = Loader(session, registry, max_concurrency=max_concurrency)
    yield loader
    await loader._run()


@dataclass
class _Pending:
    record: ManifestRecord
    cls: type[Storable] | None
    future: Future[Any]


@dataclass
class _Plan:
    """One record being loaded: its resolved class and unpacker, its parts as they arrive."""

    item: _Pending
    cls: type[Storable]
    unpacker: Unpacker[Any]
    rows: Sequence[ContentRecord]
    raw: dict[str, Buffer] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class Loader:
    """Collects records to load; see `new_loader`."""

    def __init__(self, session: AsyncSession, registry: Registry, *, max_concurrency: int):
        if not isinstance(registry, Registry):
            msg = f"registry must be a lakery Registry, got {type(registry).__name__}"
            raise StorableTypeError(msg)
        self._session = session
        self._registry = registry
        self._limiter = anyio.CapacityLimiter(max(1, max_concurrency))
        self._pending: list[_Pending] = []

    def load_soon(self, record: ManifestRecord, cls: type[S] | None = None) -> Future[S]:
        """Queue `record` to be loaded when the block exits; the future then holds the object."""
        _check_record(record)
        if cls is not None and not (inspect.isclass(cls) and issubclass(cls, Storable)):
            msg = f"load_soon expects a storable class as `cls`, got {cls!r}"
            raise StorableTypeError(msg)
        future: Future[S] = Future()
        self._pending.append(_Pending(record, cls, future))
        return future

    async def _run(self) -> None:
        if not self._pending:
            return
        with gc_paused():
            with use_session(self._session):
                contents = await self._fetch_contents()
                plans = [p for p in (self._plan(i, contents) for i in self._pending) if p]
                await self._read_all(plans)
            for index, plan in enumerate(plans):
                if plan.error is None:
                    await self._finish(plan)
                else:
                    plan.item.future.set_exception(first_error(plan.error))
                if index % 64 == 63:
                    await anyio.lowlevel.checkpoint()  # let other tasks run during big loads
        for item in self._pending:
            error = item.future.exception()
            if error is not None:
                raise error

    async def _fetch_contents(self) -> dict[uuid.UUID, Sequence[ContentRecord]]:
        """Content rows by manifest id: those records carry, then one query for the rest."""
        found: dict[uuid.UUID, Sequence[ContentRecord]] = {}
        missing: list[uuid.UUID] = []
        for item in self._pending:
            loaded = sa_inspect(item.record).dict.get("contents")
            if loaded is not None:
                found[item.record.id] = loaded
            else:
                missing.append(item.record.id)
        missing = [m for m in dict.fromkeys(missing) if m not in found]
        fetched: dict[uuid.UUID, list[ContentRecord]] = {m: [] for m in missing}
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            query = select(ContentRecord).where(ContentRecord.manifest_id.in_(chunk))
            for content in (await self._session.execute(query)).scalars():
                fetched[content.manifest_id].append(content)
        found.update(fetched)
        return found

    def _plan(
        self, item: _Pending, contents: dict[uuid.UUID, Sequence[ContentRecord]]
    ) -> _Plan | None:
        try:
            cls = self._resolve_class(item.record, item.cls)
            unpacker = self._resolve_unpacker(item.record, cls)
            return _Plan(item, cls, unpacker, contents[item.record.id])
        except Exception as exc:
            item.future.set_exception(exc)
            return None

    async def _read_all(self, plans: list[_Plan]) -> None:
        """Read every part: values in batches per storage, streams opened one by one."""
        batches: dict[str, list[tuple[_Plan, ContentRecord]]] = {}
        streams: list[tuple[_Plan, ContentRecord]] = []
        for plan in plans:
            for row in plan.rows:
                if row.serializer_type == "stream":
                    streams.append((plan, row))
                else:
                    batches.setdefault(row.storage_name, []).append((plan, row))
        async with anyio.create_task_group() as group:
            for name, entries in batches.items():
                for start in range(0, len(entries), _READ_BATCH):
                    group.start_soon(self._read_values, name, entries[start : start + _READ_BATCH])
            for plan, row in streams:
                group.start_soon(self._open_stream, plan, row)

    async def _read_values(
        self, storage_name: str, entries: list[tuple[_Plan, ContentRecord]]
    ) -> None:
        try:
            storage = self._registry.get_storage(storage_name)
            async with self._limiter:
                results = await storage.get_values([row.storage_data for _, row in entries])
        except Exception as exc:
            for plan, _ in entries:
                plan.error = plan.error or exc
            return
        for (plan, row), result in zip(entries, results, strict=True):
            if isinstance(result, NotFoundError):
                plan.error = plan.error or _missing(result, plan.item.record, row)
            else:
                plan.raw[row.content_key] = result

    async def _open_stream(self, plan: _Plan, row: ContentRecord) -> None:
        try:
            storage = self._registry.get_storage(row.storage_name)
            serializer = self._registry.get_stream_serializer(row.serializer_name)
            async with self._limiter:
                try:
                    chunks = await storage.get_stream(row.storage_data)
                except NotFoundError as exc:
                    raise _missing(exc, plan.item.record, row) from exc
            plan.values[row.content_key] = _decode(
                _verified(chunks, plan.item.record, row), serializer, row
            )
        except Exception as exc:
            plan.error = plan.error or exc

    async def _finish(self, plan: _Plan) -> None:
        """Check and deserialize the values (large ones in a thread), then rebuild."""
        record = plan.item.record
        try:
            large = sum(memoryview(data).nbytes for data in plan.raw.values()) > THREAD_THRESHOLD
            if large:
                await anyio.to_thread.run_sync(self._deserialize, plan)
            else:
                self._deserialize(plan)
            try:
                obj = plan.unpacker.repack(plan.cls, plan.values, self._registry)
            except (TypeError, ValueError, KeyError) as exc:
                msg = f"cannot rebuild {plan.cls.__qualname__} from record {record.id}: {exc}"
                raise SerializationError(msg) from exc
        except Exception as exc:
            plan.item.future.set_exception(exc)
        else:
            plan.item.future.set_result(obj)

    def _deserialize(self, plan: _Plan) -> None:
        record = plan.item.record
        for row in plan.rows:
            if row.content_key not in plan.raw:
                continue
            data = plan.raw.pop(row.content_key)
            _check_value(data, record, row)
            serializer = self._registry.get_serializer(row.serializer_name)
            try:
                plan.values[row.content_key] = serializer.deserialize(data)
            except (TypeError, ValueError) as exc:
                msg = (
                    f"serializer {row.serializer_name!r} cannot read part {row.content_key!r} "
                    f"of record {record.id}: {exc}"
                )
                raise SerializationError(msg, serializer=row.serializer_name) from exc

    def _resolve_class(self, record: ManifestRecord, cls: type[Storable] | None) -> type[Storable]:
        if cls is None:
            return self._registry.get_storable(record.class_id)
        if "__lakery_class_id__" in cls.__dict__ and get_class_id(cls) == record.class_id:
            return cls
        try:
            actual: type[Storable] | None = self._registry.get_storable(record.class_id)
        except LakeryError:
            actual = None
        if actual is not None and issubclass(actual, cls):
            return actual
        held = actual.__qualname__ if actual is not None else "a class that is not imported"
        msg = (
            f"record {record.id} holds {held} (class_id {record.class_id.hex!r}), not "
            f"{cls.__qualname__}; pass the class it was saved as, or pin that class's "
            "class_id if it was renamed or moved"
        )
        raise StorableTypeError(msg)

    def _resolve_unpacker(self, record: ManifestRecord, cls: type[Storable]) -> Unpacker[Any]:
        unpacker = get_unpacker(cls)
        if unpacker.name == record.unpacker_name:
            return unpacker
        return self._registry.get_unpacker(record.unpacker_name)


def _missing(error: NotFoundError, record: ManifestRecord, row: ContentRecord) -> NotFoundError:
    msg = (
        f"the data of part {row.content_key!r} of record {record.id} is missing from "
        f"storage {row.storage_name!r}: {error}"
    )
    return NotFoundError(msg, locator=row.storage_data)


def _check_algorithm(record: ManifestRecord, row: ContentRecord) -> None:
    if row.content_hash_algorithm != HASH_ALGORITHM:
        msg = (
            f"part {row.content_key!r} of record {record.id} was hashed with "
            f"{row.content_hash_algorithm!r}, which this version of lakery cannot check"
        )
        raise IntegrityError(msg, manifest_id=record.id, content_key=row.content_key)


def _integrity_error(record: ManifestRecord, row: ContentRecord, detail: str) -> IntegrityError:
    msg = (
        f"part {row.content_key!r} of record {record.id} in storage {row.storage_name!r} is "
        f"corrupt: {detail}; the stored bytes no longer match what was saved"
    )
    return IntegrityError(msg, manifest_id=record.id, content_key=row.content_key)


def _check_value(data: Buffer, record: ManifestRecord, row: ContentRecord) -> None:
    _check_algorithm(record, row)
    size = memoryview(data).nbytes
    if size != row.content_size:
        raise _integrity_error(record, row, f"{size} bytes read, {row.content_size} recorded")
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.content_hash:
        raise _integrity_error(record, row, f"sha256 {digest} read, {row.content_hash} recorded")


async def _verified(
    chunks: AsyncIterator[Buffer], record: ManifestRecord, row: ContentRecord
) -> AsyncIterator[Buffer]:
    _check_algorithm(record, row)
    hasher = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        size += view.nbytes
        if size > row.content_size:
            raise _integrity_error(record, row, f"more than the {row.content_size} bytes recorded")
        if view.nbytes > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(hasher.update, view)
        else:
            hasher.update(view)
        yield chunk
    if size != row.content_size:
        raise _integrity_error(record, row, f"{size} bytes read, {row.content_size} recorded")
    if hasher.hexdigest() != row.content_hash:
        raise _integrity_error(
            record, row, f"sha256 {hasher.hexdigest()} read, {row.content_hash} recorded"
        )


async def _decode(
    chunks: AsyncIterator[Buffer], serializer: StreamSerializer[Any], row: ContentRecord
) -> AsyncIterator[Any]:
    decoder = serializer.decoder()
    try:
        async for chunk in chunks:
            for item in decoder.decode(chunk):
                yield item
        tail = decoder.finish()
    except (TypeError, ValueError) as exc:
        msg = f"stream serializer {serializer.name!r} cannot read part {row.content_key!r}: {exc}"
        raise SerializationError(msg, serializer=serializer.name) from exc
    for item in tail:
        yield item


def _check_record(record: object) -> None:
    if isinstance(record, ManifestRecord):
        return
    if inspect.iscoroutine(record):
        record.close()
        msg = (
            "got a coroutine instead of a ManifestRecord: save_one is async, so write "
            "`record = await save_one(...)`; nothing was saved by the un-awaited call"
        )
        raise StorableTypeError(msg)
    msg = f"expected a ManifestRecord (from a save or a query), got {type(record).__qualname__}"
    raise StorableTypeError(msg)
