"""Loading storables: `load_one` and `new_loader`.

A loader fetches the content rows of every pending record that does not carry them in one
query, reads the parts concurrently, checks each part's size and sha256 against its
record (streams at their end), deserializes and rebuilds the objects.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any
from typing import TypeAlias
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import IntegrityError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import SerializationError
from lakery.common.exceptions import StorableTypeError
from lakery.core.boundaries import database_calls
from lakery.core.errors import first_error
from lakery.core.errors import raise_first
from lakery.core.future import Future
from lakery.core.gcpause import gc_paused
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.serializer import UNUSABLE_VALUE_ERRORS
from lakery.core.serializer import Buffer
from lakery.core.serializer import ColumnarSerializer
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamSerializer
from lakery.core.session import use_session
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import get_unpacker
from lakery.core.storage import HASH_ALGORITHM
from lakery.core.storage import READ_CHUNK_SIZE
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.storage import Locator
from lakery.core.unpacker import Unpacker

__all__ = ["Loader", "load_one", "new_loader"]

S = TypeVar("S", bound=Storable)

_IN_CHUNK = 500
"""Manifest ids per content query (stays under every backend's parameter limit)."""

_READ_BATCH = 500
"""Value parts per `Storage.get_values` call."""

LOCAL_FILE_THRESHOLD = 32 << 20
"""Table parts larger than this are decoded from their local file where the storage has
one (`Storage.local_path`), instead of from a copy of the file in memory."""


async def load_one(
    record: ManifestRecord,
    cls: type[S] | None = None,
    *,
    session: AsyncSession,
    registry: Registry,
    columns: Sequence[str] | None = None,
) -> S:
    """Load the storable saved as `record`.

    Args:
        record: a manifest record returned by a save or found by a query.
        cls: the expected class; checked against the record's class id. Without it, the
            class is found by id among registered and imported storables.
        session: the database session.
        registry: the components to load with.
        columns: load only these columns of every table part (parts whose serializer is
            a `ColumnarSerializer`); other parts load whole. See `Loader.load_soon`.
    """
    async with new_loader(session=session, registry=registry) as loader:
        future = loader.load_soon(record, cls, columns=columns)
    return future.get()


@asynccontextmanager
async def new_loader(
    *, session: AsyncSession, registry: Registry, max_concurrency: int = 16
) -> AsyncIterator[Loader]:
    """Collect records with `loader.load_soon(record, cls)`; all load when the block exits."""
    loader = Loader(session, registry, max_concurrency=max_concurrency)
    yield loader
    await loader._run()


class _Part:
    """One content row of a record being loaded, with what its part became."""

    __slots__ = (
        "algorithm",
        "key",
        "plan",
        "serializer_name",
        "serializer_type",
        "sha256",
        "size",
        "storage_data",
        "storage_name",
    )

    def __init__(self, plan: _Plan, fields: _Fields) -> None:
        self.plan = plan
        (
            self.key,
            self.serializer_name,
            self.serializer_type,
            self.storage_name,
            self.storage_data,
            self.size,
            self.sha256,
            self.algorithm,
        ) = fields


class _Plan:
    """One record being loaded: its class and unpacker, its parts as they arrive."""

    __slots__ = (
        "cls",
        "columns",
        "error",
        "future",
        "parts",
        "raw",
        "raw_size",
        "record",
        "unpacker",
        "values",
        "waiting",
    )

    def __init__(
        self,
        record: ManifestRecord,
        future: Future[Any],
        cls: type[Storable],
        unpacker: Unpacker[Any],
    ) -> None:
        self.record = record
        self.future = future
        self.cls = cls
        self.unpacker = unpacker
        self.parts: Sequence[_Part] = ()
        self.raw: list[tuple[_Part, Buffer]] = []
        self.raw_size = 0
        self.values: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.waiting = 0
        self.columns: list[str] | None = None


class Loader:
    """Collects records to load; see `new_loader`."""

    def __init__(self, session: AsyncSession, registry: Registry, *, max_concurrency: int):
        if not isinstance(registry, Registry):
            msg = f"registry must be a lakery Registry, got {type(registry).__name__}"
            raise StorableTypeError(msg)
        self._session = session
        self._registry = registry
        self._limiter = anyio.CapacityLimiter(max(1, max_concurrency))
        # What load_soon queued, in three lists (no tuple per record for the collector).
        self._records: list[ManifestRecord] = []
        self._classes: list[type[Storable] | None] = []
        self._futures: list[Future[Any]] = []
        self._columns: dict[int, list[str]] = {}  # by position in the lists above
        self._checked: set[type] = set()
        self._serializers: dict[str, Serializer[Any]] = {}
        self._finished = 0

    def load_soon(
        self,
        record: ManifestRecord,
        cls: type[S] | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> Future[S]:
        """Queue `record` to be loaded when the block exits; the future then holds the object.

        With `columns`, every part whose serializer is a `ColumnarSerializer` (tables) loads
        only those columns, in that order. From a storage with local files only those
        columns are read (their size and the format's own checksums are checked; the
        blob's sha256 is checked by full loads and ``lakery verify``); from other storages
        the whole blob is read and verified first.
        """
        if columns is not None:
            self._columns[len(self._records)] = _check_columns(columns)
        if type(record) is not ManifestRecord:
            _check_record(record)
        if cls is not None and (not isinstance(cls, type) or cls not in self._checked):
            if not (inspect.isclass(cls) and issubclass(cls, Storable)):
                msg = f"load_soon expects a storable class as `cls`, got {cls!r}"
                raise StorableTypeError(msg)
            self._checked.add(cls)
        future: Future[S] = Future()
        self._records.append(record)
        self._classes.append(cls)
        self._futures.append(future)
        return future

    async def _run(self) -> None:
        if not self._records:
            return
        with gc_paused(), use_session(self._session):
            # The bookkeeping is gone (freed by reference counting) before the collector
            # resumes, so that it only ever looks at what the futures hold.
            await self._load()
        for future in self._futures:
            error = future.exception()
            if error is not None:
                raise error

    async def _load(self) -> None:
        count = len(self._records)
        with database_calls(self._session, f"loading {count} object{'s' * (count != 1)}"):
            ids = [_loaded(record, "id") for record in self._records]
            contents = await self._fetch_contents(ids)
        plans = self._plan_all(ids, contents)
        del contents
        await self._load_all(plans)

    async def _fetch_contents(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[_Fields]]:
        """Content fields by manifest id: from the records that carry their content rows,
        then one query (in chunks) for the others."""
        found: dict[uuid.UUID, list[_Fields]] = {}
        missing: dict[uuid.UUID, None] = {}
        for record, manifest_id in zip(self._records, ids, strict=True):
            if manifest_id in found:
                continue
            loaded = record.__dict__.get("contents")  # sqlalchemy.inspect(record).dict
            if loaded is not None:
                found[manifest_id] = [_row_fields(row) for row in loaded]
                missing.pop(manifest_id, None)
            else:
                missing[manifest_id] = None
        if not missing:
            return found
        wanted = list(missing)
        table = ContentRecord.__table__
        columns = [table.c[name] for name in ("manifest_id", *_FIELDS)]
        for manifest_id in wanted:
            found[manifest_id] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            query = select(*columns).where(table.c.manifest_id.in_(chunk))
            for row in await self._session.execute(query):
                found[row[0]].append(tuple(row[1:]))
        return found

    def _plan_all(
        self, ids: list[uuid.UUID], contents: dict[uuid.UUID, list[_Fields]]
    ) -> list[_Plan]:
        resolved: dict[tuple[Any, ...], tuple[type[Storable], Unpacker[Any]]] = {}
        plans = []
        pending = zip(self._records, self._classes, self._futures, ids, strict=True)
        for position, (record, cls, future, manifest_id) in enumerate(pending):
            try:
                key = (cls, _loaded(record, "class_id"), _loaded(record, "unpacker_name"))
                found = resolved.get(key)
                if found is None:
                    found = resolved[key] = self._resolve(record, cls)
                rows = contents[manifest_id]
            except Exception as exc:
                future.set_exception(exc)
                continue
            plan = _Plan(record, future, *found)
            plan.parts = [_Part(plan, fields) for fields in rows]
            if self._columns:
                plan.columns = self._columns.get(position)
            plans.append(plan)
        return plans

    def _resolve(
        self, record: ManifestRecord, cls: type[Storable] | None
    ) -> tuple[type[Storable], Unpacker[Any]]:
        resolved = self._resolve_class(record, cls)
        return resolved, self._resolve_unpacker(record, resolved)

    async def _load_all(self, plans: list[_Plan]) -> None:
        """Read every part (values in batches per storage, streams one by one); each record
        is rebuilt as soon as its last part has arrived, while other reads go on."""
        batches: dict[str, list[_Part]] = {}
        streams: list[_Part] = []
        subsets: list[_Part] = []
        ready: list[_Plan] = []
        for plan in plans:
            plan.waiting = len(plan.parts)
            if not plan.parts:
                ready.append(plan)
            for part in plan.parts:
                if part.serializer_type == "stream":
                    streams.append(part)
                elif (
                    plan.columns is not None or part.size > LOCAL_FILE_THRESHOLD
                ) and self._is_columnar(part.serializer_name):
                    subsets.append(part)
                else:
                    batches.setdefault(part.storage_name, []).append(part)
        await self._finish(ready)
        try:
            async with anyio.create_task_group() as group:
                for name, parts in batches.items():
                    for start in range(0, len(parts), _READ_BATCH):
                        group.start_soon(
                            self._read_values, name, parts[start : start + _READ_BATCH]
                        )
                for part in streams:
                    group.start_soon(self._open_stream, part)
                for part in subsets:
                    group.start_soon(self._read_table, part)
        except BaseExceptionGroup as group_error:
            raise_first(group_error)

    async def _read_values(self, storage_name: str, parts: list[_Part]) -> None:
        try:
            storage = self._registry.get_storage(storage_name)
            async with self._limiter:
                results = await storage.get_values([part.storage_data for part in parts])
            if len(results) != len(parts):
                msg = f"storage {storage_name!r} returned {len(results)} values for {len(parts)}"
                raise LakeryError(msg)
        except Exception as exc:
            for part in parts:
                part.plan.error = part.plan.error or exc
            await self._arrived(parts)
            return
        received = []
        for part, result in zip(parts, results, strict=True):
            if isinstance(result, NotFoundError):
                part.plan.error = part.plan.error or _missing(result, part)
            else:
                received.append((part, result))
        if sum(part.size for part, _ in received) > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(_check_all, received)
        else:
            _check_all(received)
        await self._arrived(parts)

    def _is_columnar(self, serializer_name: str) -> bool:
        try:
            serializer = self._registry.get_serializer(serializer_name)
        except LakeryError:
            return False  # loaded as usual: the error names the missing serializer
        return isinstance(serializer, ColumnarSerializer)

    async def _read_table(self, part: _Part) -> None:
        """A table part (or some of its columns): from its local file where the storage
        has one, else from the whole blob, read and verified.

        A whole table from a local file is first checked against its sha256 by reading
        the file through (in small chunks), then decoded from the file: memory holds the
        table, not the table and its file.
        """
        plan = part.plan
        columns = plan.columns
        try:
            storage = self._registry.get_storage(part.storage_name)
            serializer = self._registry.get_serializer(part.serializer_name)
            assert isinstance(serializer, ColumnarSerializer)
            path = storage.local_path(part.storage_data)
            async with self._limiter:
                value = None
                if path is not None:
                    value = await anyio.to_thread.run_sync(
                        _read_file_table, serializer, path, part, columns
                    )
                if value is None:
                    try:
                        data = await storage.get_value(part.storage_data)
                    except NotFoundError as exc:
                        raise _missing(exc, part) from exc
                    value = await anyio.to_thread.run_sync(
                        _deserialize_table, serializer, data, part, columns
                    )
            plan.values[part.key] = value
        except Exception as exc:
            plan.error = plan.error or exc
        await self._arrived([part])

    async def _open_stream(self, part: _Part) -> None:
        plan = part.plan
        try:
            storage = self._registry.get_storage(part.storage_name)
            serializer = self._registry.get_stream_serializer(part.serializer_name)
            async with self._limiter:
                try:
                    chunks = await storage.get_stream(part.storage_data)
                except NotFoundError as exc:
                    raise _missing(exc, part) from exc
            plan.values[part.key] = _decode(_verified(chunks, part), serializer, part)
        except Exception as exc:
            plan.error = plan.error or exc
        await self._arrived([part])

    async def _arrived(self, parts: list[_Part]) -> None:
        """Count the parts in; finish the records that now have all theirs."""
        ready = []
        for part in parts:
            plan = part.plan
            plan.waiting -= 1
            if plan.waiting == 0:
                ready.append(plan)
        await self._finish(ready)

    async def _finish(self, plans: list[_Plan]) -> None:
        """Deserialize the values (large ones in a thread), rebuild, set the futures."""
        for plan in plans:
            plan.parts = ()  # no more cycles between a record and its parts
            if plan.error is not None:
                plan.future.set_exception(first_error(plan.error))
            else:
                try:
                    if plan.raw_size > THREAD_THRESHOLD:
                        obj = await anyio.to_thread.run_sync(self._build, plan)
                    else:
                        obj = self._build(plan)
                except Exception as exc:
                    plan.future.set_exception(exc)
                else:
                    plan.future.set_result(obj)
            plan.raw = []
            self._finished += 1
            if self._finished % 64 == 0:
                await anyio.lowlevel.checkpoint()  # let other tasks run during big loads

    def _build(self, plan: _Plan) -> Any:
        record = plan.record
        values = plan.values
        serializers = self._serializers
        raw, plan.raw = plan.raw, []
        for index, (part, data) in enumerate(raw):
            raw[index] = None  # type: ignore[call-overload]  # each buffer goes once read
            serializer = serializers.get(part.serializer_name)
            if serializer is None:
                serializer = self._registry.get_serializer(part.serializer_name)
                serializers[part.serializer_name] = serializer
            try:
                values[part.key] = serializer.deserialize(data)
            except UNUSABLE_VALUE_ERRORS as exc:
                msg = (
                    f"serializer {part.serializer_name!r} cannot read part {part.key!r} "
                    f"of record {record.id}: {exc}"
                )
                raise SerializationError(msg, serializer=part.serializer_name) from exc
        try:
            return plan.unpacker.repack(plan.cls, values, self._registry)
        except (*UNUSABLE_VALUE_ERRORS, KeyError) as exc:
            msg = f"cannot rebuild {plan.cls.__qualname__} from record {record.id}: {exc}"
            raise SerializationError(msg) from exc

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


_FIELDS = (
    "content_key",
    "serializer_name",
    "serializer_type",
    "storage_name",
    "storage_data",
    "content_size",
    "content_hash",
    "content_hash_algorithm",
)
"""The columns of a content row that loading uses, in the order `_Part` takes them."""
_Fields: TypeAlias = tuple[str, str, str, str, Locator, int, str, str]
"""A content row's values of `_FIELDS`."""


_UNSET: Any = object()


def _loaded(record: ManifestRecord, name: str) -> Any:
    """An attribute of a record, straight from its loaded state when it is there."""
    value = record.__dict__.get(name, _UNSET)
    return getattr(record, name) if value is _UNSET else value


def _row_fields(row: ContentRecord) -> _Fields:
    state = row.__dict__
    try:
        return tuple([state[name] for name in _FIELDS])
    except KeyError:  # expired or deferred: let the ORM load it
        return tuple([getattr(row, name) for name in _FIELDS])


def _check_all(received: list[tuple[_Part, Buffer]]) -> None:
    """Check the size and hash of each value read; keep the good ones on their records."""
    for part, data in received:
        plan = part.plan
        try:
            _check_value(data, part)
        except Exception as exc:  # an IntegrityError, or a storage that returned no bytes
            plan.error = plan.error or exc
            continue
        plan.raw.append((part, data))
        plan.raw_size += part.size


def _missing(error: NotFoundError, part: _Part) -> NotFoundError:
    msg = (
        f"the data of part {part.key!r} of record {part.plan.record.id} is missing from "
        f"storage {part.storage_name!r}: {error}"
    )
    return NotFoundError(msg, locator=part.storage_data)


def _check_algorithm(part: _Part) -> None:
    if part.algorithm != HASH_ALGORITHM:
        record_id = part.plan.record.id
        msg = (
            f"part {part.key!r} of record {record_id} was hashed with "
            f"{part.algorithm!r}, which this version of lakery cannot check"
        )
        raise IntegrityError(msg, manifest_id=record_id, content_key=part.key)


def _integrity_error(part: _Part, detail: str) -> IntegrityError:
    record_id = part.plan.record.id
    msg = (
        f"part {part.key!r} of record {record_id} in storage {part.storage_name!r} is "
        f"corrupt: {detail}; the stored bytes no longer match what was saved"
    )
    return IntegrityError(msg, manifest_id=record_id, content_key=part.key)


def _check_value(data: Buffer, part: _Part) -> None:
    _check_algorithm(part)
    size = len(data) if type(data) is bytes or type(data) is bytearray else memoryview(data).nbytes
    if size != part.size:
        raise _integrity_error(part, f"{size} bytes read, {part.size} recorded")
    digest = hashlib.sha256(data).hexdigest()
    if digest != part.sha256:
        raise _integrity_error(part, f"sha256 {digest} read, {part.sha256} recorded")


async def _verified(chunks: AsyncIterator[Buffer], part: _Part) -> AsyncIterator[Buffer]:
    _check_algorithm(part)
    hasher = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        size += view.nbytes
        if size > part.size:
            raise _integrity_error(part, f"more than the {part.size} bytes recorded")
        if view.nbytes > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(hasher.update, view)
        else:
            hasher.update(view)
        yield chunk
    if size != part.size:
        raise _integrity_error(part, f"{size} bytes read, {part.size} recorded")
    if hasher.hexdigest() != part.sha256:
        raise _integrity_error(part, f"sha256 {hasher.hexdigest()} read, {part.sha256} recorded")


async def _decode(
    chunks: AsyncIterator[Buffer], serializer: StreamSerializer[Any], part: _Part
) -> AsyncIterator[Any]:
    decoder = serializer.decoder()
    try:
        async for chunk in chunks:
            if memoryview(chunk).nbytes > THREAD_THRESHOLD:
                items = await anyio.to_thread.run_sync(decoder.decode, chunk)
            else:
                items = decoder.decode(chunk)
            for item in items:
                yield item
        tail = decoder.finish()
        if isinstance(tail, list):
            for item in tail:
                yield item
            return
        # A lazy tail (e.g. row groups read from a spooled file): one item per thread call.
        rest = iter(tail)
        try:
            while (item := await anyio.to_thread.run_sync(next, rest, _UNSET)) is not _UNSET:
                yield item
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()
    except UNUSABLE_VALUE_ERRORS as exc:
        msg = f"stream serializer {serializer.name!r} cannot read part {part.key!r}: {exc}"
        raise SerializationError(msg, serializer=serializer.name) from exc


def _check_columns(columns: Sequence[str]) -> list[str]:
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        msg = f"columns must be a list of column names, got {columns!r}"
        raise StorableTypeError(msg)
    names = list(columns)
    bad = [c for c in names if not isinstance(c, str) or not c]
    if not names or bad:
        msg = f"columns must be a non-empty list of non-empty str, got {names!r}"
        raise StorableTypeError(msg)
    if len(set(names)) != len(names):
        twice = sorted({c for c in names if names.count(c) > 1})
        msg = f"columns names {twice!r} more than once; name each column once"
        raise StorableTypeError(msg)
    return names


def _read_file_table(
    serializer: ColumnarSerializer[Any], path: str, part: _Part, columns: list[str] | None
) -> Any:
    """`serializer.read_columns` (or `read_file`, after checking the file's sha256) on the
    part's local file, after checking its size; None when the serializer cannot."""
    _check_algorithm(part)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        error = NotFoundError(f"no file at {path}", locator=part.storage_data)
        raise _missing(error, part) from None
    if size != part.size:
        raise _integrity_error(part, f"{size} bytes on disk, {part.size} recorded")
    if columns is not None:
        return _table_step(serializer.read_columns, path, part, columns)
    if not serializer.reads_files:
        return None
    _check_file(path, part)
    return _table_step(serializer.read_file, path, part, None)


def _check_file(path: str, part: _Part) -> None:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(READ_CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    if size != part.size:
        raise _integrity_error(part, f"{size} bytes read, {part.size} recorded")
    if hasher.hexdigest() != part.sha256:
        raise _integrity_error(part, f"sha256 {hasher.hexdigest()} read, {part.sha256} recorded")


def _deserialize_table(
    serializer: ColumnarSerializer[Any], data: Buffer, part: _Part, columns: list[str] | None
) -> Any:
    _check_value(data, part)
    if columns is None:
        return _table_step(serializer.deserialize, data, part, None)
    return _table_step(serializer.deserialize_columns, data, part, columns)


def _table_step(
    step: Callable[..., Any], source: str | Buffer, part: _Part, columns: list[str] | None
) -> Any:
    record_id = part.plan.record.id
    try:
        return step(source) if columns is None else step(source, columns)
    except KeyError as exc:
        detail = exc.args[0] if exc.args else exc
        msg = f"part {part.key!r} of record {record_id}: {detail}"
        raise SerializationError(msg, serializer=part.serializer_name) from exc
    except UNUSABLE_VALUE_ERRORS as exc:
        msg = (
            f"serializer {part.serializer_name!r} cannot read columns {columns!r} of part "
            f"{part.key!r} of record {record_id}: {exc}"
        )
        raise SerializationError(msg, serializer=part.serializer_name) from exc


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
