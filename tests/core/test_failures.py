"""Failure paths of save and load: nothing half-written, clear errors, on both databases."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from lakery import BlobRecord
from lakery import CommitUnknownError
from lakery import ContentRecord
from lakery import IntegrityError
from lakery import InvalidTagsError
from lakery import LakeryError
from lakery import ManifestRecord
from lakery import NotFoundError
from lakery import NotReadyError
from lakery import NotRegisteredError
from lakery import Registry
from lakery import SerializationError
from lakery import StorableTypeError
from lakery import StorageError
from lakery import find_manifests
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue
from lakery.core.serializer import Buffer


class FailingStorage(MemoryStorage):
    """A memory storage that fails to write any value containing b"FAIL"."""

    name = "test.failing@v1"

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> dict[str, str]:
        self.writes += 1
        if b"FAIL" in b"".join(bytes(d) for d in data):
            raise OSError("disk on fire")
        return await super().put_value(data, size=size, sha256=sha256, tags=tags)


@dataclass
class Pair(StorableDataclass, class_id="b0000000000000000000000000000001"):
    left: str
    right: str


async def count(session, model) -> int:  # type: ignore[no-untyped-def]
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def assert_nothing_saved(new_session) -> None:  # type: ignore[no-untyped-def]
    async with new_session() as session:
        assert await count(session, ManifestRecord) == 0
        assert await count(session, ContentRecord) == 0
        assert await count(session, BlobRecord) == 0


async def assert_every_row_loads(new_session, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """No content row points at missing or partial data."""
    async with new_session() as session:
        records = (await session.execute(select(ManifestRecord))).scalars().all()
        async with new_loader(session=session, registry=registry) as loader:
            for record in records:
                loader.load_soon(record)


async def test_failing_storage_in_bulk_save_saves_nothing(new_session, registry: Registry) -> None:
    failing = FailingStorage()
    registry = Registry(registries=[registry], default_storage=failing)
    objs = [Pair(f"ok-{i}", "fine") for i in range(200)]
    objs.insert(137, Pair("left", "FAIL here"))
    async with new_session() as session:
        with pytest.raises(StorageError, match="disk on fire") as raised:
            async with new_saver(session=session, registry=registry) as saver:
                futures = [saver.save_soon(o) for o in objs]
    assert "saving 201 objects (Pair): storage <FailingStorage" in str(raised.value)
    assert type(raised.value.__cause__) is OSError
    for future in futures:
        with pytest.raises(StorageError, match="disk on fire"):
            future.get()
    await assert_nothing_saved(new_session)
    # A retry without the bad object succeeds, and stores identical content once.
    del objs[137]
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            for o in objs:
                saver.save_soon(o)
        assert await count(session, ManifestRecord) == 200
    stored = set(failing.blobs.values())
    expected = {f'"ok-{i}"'.encode() for i in range(200)} | {b'"fine"'}
    assert expected <= stored
    assert stored - expected <= {b'"left"'}  # at most an unreferenced blob of the failed object
    await assert_every_row_loads(new_session, registry)


async def test_error_inside_saver_block_saves_nothing(new_session, registry: Registry) -> None:
    async with new_session() as session:
        with pytest.raises(ZeroDivisionError):
            async with new_saver(session=session, registry=registry) as saver:
                future = saver.save_soon(StorableValue(1))
                1 / 0  # noqa: B018
    with pytest.raises(ZeroDivisionError):
        future.get()
    await assert_nothing_saved(new_session)


async def test_failing_commit_leaves_no_rows(new_session, registry: Registry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async with new_session() as session:

        async def broken_commit() -> None:
            raise ConnectionError("connection lost at commit")

        monkeypatch.setattr(session, "commit", broken_commit)
        with pytest.raises(CommitUnknownError, match="may or may not be stored") as raised:
            await save_one(StorableValue("x"), session=session, registry=registry)
    assert len(raised.value.manifest_ids) == 1
    assert str(raised.value.manifest_ids[0]) in str(raised.value)
    assert isinstance(raised.value.__cause__, ConnectionError)
    await assert_nothing_saved(new_session)  # here the commit did not happen


async def test_failing_stream_saves_nothing(
    new_session, registry: Registry, tmp_path: Path
) -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("source died")

    files = FileStorage(tmp_path / "blobs")
    registry = Registry(registries=[registry], default_storage=files)
    async with new_session() as session:
        with pytest.raises(RuntimeError, match="source died"):
            async with new_saver(session=session, registry=registry) as saver:
                saver.save_soon(StorableValue(1))
                saver.save_soon(StorableStream(broken()))
    await assert_nothing_saved(new_session)
    assert not list((tmp_path / "blobs").rglob("*.tmp"))


async def test_invalid_tags_rejected_before_anything_is_written(
    new_session, registry: Registry
) -> None:
    failing = FailingStorage()
    registry = Registry(registries=[registry], default_storage=failing)
    async with new_session() as session:
        for bad in ({"n": 1}, {1: "x"}, {"": "x"}, ["a"], "tag"):
            with pytest.raises(InvalidTagsError):
                await save_one(StorableValue(1), session=session, registry=registry, tags=bad)
        with pytest.raises(InvalidTagsError, match="content tags"):
            await save_one(StorableValue(1, tags={"a": 2}), session=session, registry=registry)
    assert failing.writes == 0
    await assert_nothing_saved(new_session)


@pytest.mark.parametrize("bad", [{"a": "b\x00c"}, {"a\x00": "b"}, {"a": "\udcff"}, {"\ud800": "b"}])
async def test_tags_that_no_database_can_store_are_rejected_up_front(
    new_session, registry: Registry, bad: dict[str, str]
) -> None:
    """NUL characters and lone surrogates: refused before any blob, on both databases."""
    failing = FailingStorage()
    registry = Registry(registries=[registry], default_storage=failing)
    async with new_session() as session:
        with pytest.raises(InvalidTagsError, match="NUL characters"):
            await save_one(StorableValue("x"), session=session, registry=registry, tags=bad)
        with pytest.raises(InvalidTagsError, match="content tags"):
            await save_one(StorableValue("x", tags=bad), session=session, registry=registry)
        with pytest.raises(InvalidTagsError, match="the tags to find"):
            await find_manifests(session, tags=bad)
    assert failing.writes == 0
    await assert_nothing_saved(new_session)
    async with new_session() as session:
        fine = {"ключ": "值 🌿", "a": "tab\tand\nnewline"}
        record = await save_one(StorableValue("x"), session=session, registry=registry, tags=fine)
        await session.commit()
        assert [r.id for r in await find_manifests(session, tags=fine)] == [record.id]


async def test_non_storables_rejected(new_session, registry: Registry) -> None:
    async with new_session() as session:
        with pytest.raises(StorableTypeError, match="StorableValue"):
            await save_one({"plain": "dict"}, session=session, registry=registry)  # type: ignore[arg-type]
        with pytest.raises(StorableTypeError, match="instance"):
            await save_one(Pair, session=session, registry=registry)  # type: ignore[arg-type]


async def test_value_without_serializer_names_the_fix(new_session, registry: Registry) -> None:
    class Opaque:
        pass

    async with new_session() as session:
        with pytest.raises(NotRegisteredError, match=r"Opaque.*Registry\(modules"):
            await save_one(StorableValue(Opaque()), session=session, registry=registry)
        with pytest.raises(SerializationError, match="keys must be str"):
            await save_one(StorableValue({1: "x"}), session=session, registry=registry)
    await assert_nothing_saved(new_session)


async def test_forgotten_await_is_explained(new_session, registry: Registry) -> None:
    async with new_session() as session:
        unawaited = save_one(StorableValue(1), session=session, registry=registry)
        with pytest.raises(StorableTypeError, match="await save_one"):
            await load_one(unawaited, StorableValue, session=session, registry=registry)  # type: ignore[arg-type]
    await assert_nothing_saved(new_session)


async def test_future_read_too_early(new_session, registry: Registry) -> None:
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            future = saver.save_soon(StorableValue(1))
            with pytest.raises(NotReadyError, match="after the `async with` block"):
                future.get()
        assert future.get().tags == {}


async def corrupt_file(record: ManifestRecord, mutate) -> None:  # type: ignore[no-untyped-def]
    [content] = record.contents
    path = Path(content.storage_data["root"]) / content.storage_data["key"]
    path.write_bytes(mutate(path.read_bytes()))


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (lambda b: b[:1] + bytes([b[1] ^ 0xFF]) + b[2:], "sha256"),
        (lambda b: b[:-3], "bytes read"),
        (lambda b: b + b"extra", "bytes read"),
    ],
    ids=["flipped", "truncated", "extended"],
)
async def test_corrupt_file_raises_integrity_error(
    new_session, registry: Registry, tmp_path: Path, mutate, detail: str
) -> None:
    registry = Registry(registries=[registry], default_storage=FileStorage(tmp_path / "b"))
    async with new_session() as session:
        record = await save_one(StorableValue("x" * 100), session=session, registry=registry)
        await corrupt_file(record, mutate)
        with pytest.raises(IntegrityError, match=detail) as caught:
            await load_one(record, StorableValue, session=session, registry=registry)
    assert str(record.id) in str(caught.value)
    assert caught.value.manifest_id == record.id
    assert caught.value.content_key == "value"


async def test_corrupt_stream_raises_at_its_end(
    new_session, registry: Registry, tmp_path: Path
) -> None:
    async def items() -> AsyncIterator[str]:
        for i in range(100):
            yield f"item {i}"

    registry = Registry(registries=[registry], default_storage=FileStorage(tmp_path / "b"))
    async with new_session() as session:
        record = await save_one(StorableStream(items()), session=session, registry=registry)
        await corrupt_file(record, lambda b: b.replace(b"item 99", b"item 98"))
        loaded = await load_one(record, StorableStream, session=session, registry=registry)
    with pytest.raises(IntegrityError, match=str(record.id)):
        [item async for item in loaded]


async def test_corrupt_database_blob(new_session, registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(StorableValue("original"), session=session, registry=registry)
        await session.execute(update(BlobRecord).values(data=b'"tampered"'))
        await session.commit()
        with pytest.raises(IntegrityError, match="corrupt"):
            await load_one(record, StorableValue, session=session, registry=registry)


async def test_missing_blob_names_record_and_part(
    new_session, registry: Registry, tmp_path: Path
) -> None:
    registry = Registry(registries=[registry], default_storage=FileStorage(tmp_path / "b"))
    async with new_session() as session:
        record = await save_one(StorableValue(1), session=session, registry=registry)
        [content] = record.contents
        (Path(content.storage_data["root"]) / content.storage_data["key"]).unlink()
        with pytest.raises(NotFoundError, match=rf"'value' of record {record.id}"):
            await load_one(record, StorableValue, session=session, registry=registry)


@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [
        ("serializer_name", "gone.serializer@v9", "serializer"),
        ("storage_name", "gone.storage@v9", "storage"),
    ],
)
async def test_unknown_component_names(
    new_session, registry: Registry, column: str, value: str, kind: str
) -> None:
    async with new_session() as session:
        record = await save_one(StorableValue(1), session=session, registry=registry)
        await session.execute(update(ContentRecord).values({column: value}))
        await session.commit()
        stored = await session.get(ManifestRecord, record.id)
        with pytest.raises(NotRegisteredError, match=rf"no {kind} named '{value}'") as caught:
            await load_one(stored, StorableValue, session=session, registry=registry)
    assert caught.value.name == value


async def test_unknown_unpacker_and_class_id(new_session, registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(StorableValue(1), session=session, registry=registry)
        await session.execute(update(ManifestRecord).values(unpacker_name="gone.unpacker@v1"))
        await session.commit()
        stored = await session.get(ManifestRecord, record.id)
        with pytest.raises(NotRegisteredError, match=r"no unpacker named 'gone\.unpacker@v1'"):
            await load_one(stored, StorableValue, session=session, registry=registry)
        await session.execute(
            update(ManifestRecord).values(
                class_id=uuid.UUID("f" * 32), unpacker_name="lakery.value@v1"
            )
        )
        await session.commit()
        await session.refresh(stored)
        with pytest.raises(NotRegisteredError, match="f" * 32):
            await load_one(stored, session=session, registry=registry)
        with pytest.raises(StorableTypeError, match="not StorableValue"):
            await load_one(stored, StorableValue, session=session, registry=registry)


async def test_wrong_class_for_record(new_session, registry: Registry) -> None:
    async with new_session() as session:
        record = await save_one(Pair("a", "b"), session=session, registry=registry)
        with pytest.raises(StorableTypeError, match=r"holds .*Pair.*not StorableValue"):
            await load_one(record, StorableValue, session=session, registry=registry)


async def test_bulk_load_failure_keeps_other_results(new_session, registry: Registry) -> None:
    async with new_session() as session:
        good = await save_one(StorableValue("good"), session=session, registry=registry)
        bad = await save_one(Pair("a", "b"), session=session, registry=registry)
        with pytest.raises(LakeryError):
            async with new_loader(session=session, registry=registry) as loader:
                good_future = loader.load_soon(good, StorableValue)
                bad_future = loader.load_soon(bad, StorableValue)
    assert good_future.get() == StorableValue("good")
    with pytest.raises(StorableTypeError):
        bad_future.get()


async def test_failed_save_leaves_no_files(new_session, registry: Registry, tmp_path: Path) -> None:
    """Files of a failed save are written under temporary names and removed again."""
    failing = FailingStorage()
    root = tmp_path / "blobs"
    registry = Registry(
        registries=[registry], storages=[failing], default_storage=FileStorage(root)
    )
    async with new_session() as session:
        with pytest.raises(StorageError, match="disk on fire"):
            async with new_saver(session=session, registry=registry) as saver:
                for i in range(300):
                    saver.save_soon(Pair(f"file-{i}", "also a file"))
                saver.save_soon(StorableValue("FAIL", storage=failing))
    await assert_nothing_saved(new_session)
    assert [p for p in root.rglob("*") if p.is_file()] == []


async def test_failing_rollback_keeps_the_original_error(
    new_session, registry: Registry, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    async with new_session() as session:

        async def broken_commit() -> None:
            raise ConnectionError("connection lost at commit")

        async def broken_rollback() -> None:
            raise ConnectionError("connection still lost at rollback")

        monkeypatch.setattr(session, "commit", broken_commit)
        monkeypatch.setattr(session, "rollback", broken_rollback)
        with pytest.raises(CommitUnknownError, match="at commit"):
            await save_one(StorableValue("x"), session=session, registry=registry)
    assert "still lost at rollback" in caplog.text
    await assert_nothing_saved(new_session)


def files_at_content_addresses(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.glob("??/*") if not p.name.startswith(".")}


def leftover_temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]


@pytest.mark.parametrize("count", [3, 8, 40], ids=["few-at-once", "fsync-per-file", "syncfs"])
@pytest.mark.parametrize("step", ["flush", "rename"])
async def test_failing_durability_step_of_files_saves_nothing(
    new_session, registry: Registry, tmp_path: Path, monkeypatch, count: int, step: str
) -> None:  # type: ignore[no-untyped-def]
    """If flushing the files of a save or moving them into place fails, no record is
    committed, no temporary file is left, and no partial file is visible."""
    import lakery.builtin.file_durability as file_durability

    root = tmp_path / "blobs"
    registry = Registry(registries=[registry], default_storage=FileStorage(root))
    if step == "flush":

        def broken_fsync(path: str) -> None:
            raise OSError(5, "Input/output error", path)

        # syncfs fails too, as it does when a write-back failed: the files are then
        # fsynced one by one, which fails.
        monkeypatch.setattr(file_durability, "_syncfs", lambda fd: -1)
        monkeypatch.setattr(file_durability, "_fsync_path", broken_fsync)
    else:
        renamed = []
        rename = os.replace

        def broken_rename(temp: str, path: str) -> None:
            if renamed:
                raise OSError(28, "No space left on device", path)
            rename(temp, path)
            renamed.append(path)

        monkeypatch.setattr(file_durability.os, "replace", broken_rename)
    async with new_session() as session:
        with pytest.raises(StorageError, match=r"Input/output error|no space is left") as raised:
            async with new_saver(session=session, registry=registry) as saver:
                for i in range(count):
                    saver.save_soon(StorableValue(f"value {i}"))
    assert f"storage {FileStorage(root)!r} failed" in str(raised.value)
    assert type(raised.value.__cause__) is OSError
    await assert_nothing_saved(new_session)
    assert leftover_temporary_files(root) == []
    stored = files_at_content_addresses(root)
    for name, data in stored.items():  # whatever was moved into place is whole
        assert hashlib.sha256(data).hexdigest() == name
    assert len(stored) == (0 if step == "flush" else 1)


async def test_failing_file_write_leaves_no_temporary_file(
    new_session, registry: Registry, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import lakery.builtin.file_durability as file_durability

    root = tmp_path / "blobs"
    registry = Registry(registries=[registry], default_storage=FileStorage(root))
    writes = []

    def full_disk(fd: int, buffer: object) -> None:
        writes.append(fd)
        if len(writes) == 25:
            raise OSError(28, "No space left on device")
        os.write(fd, buffer)  # type: ignore[arg-type]

    monkeypatch.setattr(file_durability, "_write_buffer", full_disk)
    async with new_session() as session:
        with pytest.raises(StorageError, match="no space is left on its device") as raised:
            async with new_saver(session=session, registry=registry) as saver:
                for i in range(40):
                    saver.save_soon(StorableValue(f"value {i}"))
    assert "saving 40 objects (StorableValue)" in str(raised.value)
    assert raised.value.__cause__.errno == 28  # type: ignore[union-attr]
    await assert_nothing_saved(new_session)
    assert leftover_temporary_files(root) == []
    assert files_at_content_addresses(root) == {}


@pytest.mark.parametrize(("count", "syncfs_calls"), [(1, 0), (3, 0), (8, 0), (40, 2)])
async def test_files_are_flushed_once_for_many_and_one_by_one_for_few(
    new_session, registry: Registry, tmp_path: Path, monkeypatch, count: int, syncfs_calls: int
) -> None:  # type: ignore[no-untyped-def]
    """A save of many files flushes the file system once before moving them into place and
    once after; a save of a few fsyncs each file and then each folder it changed."""
    import lakery.builtin.file_durability as file_durability

    root = tmp_path / "blobs"
    registry = Registry(registries=[registry], default_storage=FileStorage(root))
    calls: list[str] = []
    fsync_path = file_durability._fsync_path
    monkeypatch.setattr(file_durability, "_syncfs", lambda fd: calls.append("syncfs") or 0)
    monkeypatch.setattr(
        file_durability, "_fsync_path", lambda path: calls.append(path) or fsync_path(path)
    )
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(StorableValue(f"value {i}")) for i in range(count)]
    records = [future.get() for future in futures]
    assert calls.count("syncfs") == syncfs_calls
    fsynced = [call for call in calls if call != "syncfs"]
    if syncfs_calls:
        assert fsynced == []
    else:
        temps = [call for call in fsynced if call.endswith(".tmp")]
        folders = {Path(call) for call in fsynced if not call.endswith(".tmp")}
        assert len(temps) == count
        # the fan-out folders of the files, and the folders that were created for them
        assert {root.resolve(), root.resolve().parent} <= folders
    assert leftover_temporary_files(root) == []
    assert len(files_at_content_addresses(root)) == count
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            loads = [loader.load_soon(record, StorableValue) for record in records]
    assert [f.get().value for f in loads] == [f"value {i}" for i in range(count)]


@pytest.mark.parametrize("count", [1, 3, 8], ids=["one", "few-at-once", "deferred"])
async def test_files_of_a_small_save_are_durable_before_any_is_in_place(
    new_session, registry: Registry, tmp_path: Path, monkeypatch, count: int
) -> None:  # type: ignore[no-untyped-def]
    """Up to `FEW_FILES` files of a save are written, fsynced, moved into place and their
    folders fsynced in one worker-thread call while the save writes (more are deferred to
    the commit): either way every file is flushed before any is renamed, each folder after,
    and all of it before the rows are inserted."""
    import anyio.to_thread

    import lakery.builtin.file_durability as file_durability
    import lakery.core.save as save

    root = tmp_path / "blobs"
    registry = Registry(registries=[registry], default_storage=FileStorage(root))
    events: list[tuple[str, str]] = []
    fsync_path, replace = file_durability._fsync_path, os.replace

    def recording_fsync(path: str) -> None:
        events.append(("fsync", path))
        fsync_path(path)

    def recording_replace(temp: str, path: str) -> None:
        events.append(("rename", path))
        replace(temp, path)

    threads: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting_run_sync(function, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(getattr(function, "__name__", repr(function)))
        return await run_sync(function, *args, **kwargs)

    insert_rows = save.Saver._insert_rows

    async def recording_insert_rows(self):  # type: ignore[no-untyped-def]
        events.append(("insert", ""))
        return await insert_rows(self)

    monkeypatch.setattr(file_durability, "_fsync_path", recording_fsync)
    monkeypatch.setattr(file_durability.os, "replace", recording_replace)
    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)
    monkeypatch.setattr(save.Saver, "_insert_rows", recording_insert_rows)
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(StorableValue(f"small {i}")) for i in range(count)]
    records = [future.get() for future in futures]
    kinds = [kind for kind, _ in events]
    files = [event for event in events if event[0] != "insert"]
    assert [kind for kind, _ in files[: 2 * count]] == ["fsync"] * count + ["rename"] * count
    assert all(path.endswith(".tmp") for _, path in files[:count])  # every temporary file
    folders = {Path(path) for _, path in files[2 * count :]}
    assert [kind for kind, _ in files[2 * count :]] == ["fsync"] * len(folders)
    assert {root.resolve(), root.resolve().parent} <= folders
    if count <= file_durability.FEW_FILES:
        assert kinds[-1] == "insert"  # durable and in place while the save wrote
        assert threads.count("_write_few_durably") == 1
        assert len(threads) == 2  # serializing the batch, then writing its files
    else:
        assert kinds[0] == "insert"  # deferred to the commit, after the rows were built
        assert "_write_few_durably" not in threads
    assert leftover_temporary_files(root) == []
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            loads = [loader.load_soon(record, StorableValue) for record in records]
    assert [f.get().value for f in loads] == [f"small {i}" for i in range(count)]


async def test_bulk_load_across_storages_fails_only_the_broken_records(
    new_session, registry: Registry, tmp_path: Path
) -> None:
    """Records are rebuilt as their parts arrive from several storages and streams; a
    missing file fails its own record only."""

    async def items(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    files = FileStorage(tmp_path / "blobs")
    registry = Registry(registries=[registry], storages=[files])
    objs: list[Pair | StorableValue[str] | StorableStream[int]] = []
    for i in range(120):
        objs.append(Pair(f"left {i}", f"right {i}"))  # two parts, in the database
        objs.append(StorableValue(f"file {i}", storage=files))
        if i % 20 == 0:
            objs.append(StorableStream(items(i), storage=files))
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(obj) for obj in objs]
    records = [f.get() for f in futures]
    broken = records[4]  # StorableValue("file 1")
    [content] = broken.contents
    (Path(content.storage_data["root"]) / content.storage_data["key"]).unlink()
    async with new_session() as session:
        with pytest.raises(NotFoundError, match=str(broken.id)):
            async with new_loader(session=session, registry=registry) as loader:
                loads = [
                    loader.load_soon(record, type(obj))
                    for record, obj in zip(records, objs, strict=True)
                ]
    with pytest.raises(NotFoundError, match="'value' of record"):
        loads[4].get()
    streams = 0
    for index, (obj, future) in enumerate(zip(objs, loads, strict=True)):
        if index == 4:
            continue
        if isinstance(obj, StorableStream):
            assert [item async for item in future.get()] == list(range(streams * 20))
            streams += 1
        else:
            assert future.get() == obj
    assert streams == 6


class CountingStorage(MemoryStorage):
    """Returns one value too few, or one locator too many."""

    name = "test.miscounting@v1"

    async def get_values(self, locators):  # type: ignore[no-untyped-def]
        return (await super().get_values(locators))[:-1]

    async def put_values(self, writes):  # type: ignore[no-untyped-def]
        return [*(await super().put_values(writes)), {"extra": True}]


async def test_storages_that_miscount_are_caught(new_session, registry: Registry) -> None:
    storage = CountingStorage()
    registry = Registry(registries=[registry], default_storage=storage)
    async with new_session() as session:
        with pytest.raises(LakeryError, match="returned 2 locators for 1"):
            await save_one(StorableValue("x"), session=session, registry=registry)
    await assert_nothing_saved(new_session)
    memory = MemoryStorage(name="test.miscounting@v1")
    async with new_session() as session:
        record = await save_one(
            StorableValue("x"),
            session=session,
            registry=Registry(registries=[registry], default_storage=memory, storages=[memory]),
        )
        with pytest.raises(LakeryError, match="returned 0 values for 1"):
            await load_one(record, StorableValue, session=session, registry=registry)
