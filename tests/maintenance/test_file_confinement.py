"""FileStorage stays under its own root: records whose locator names another root, and
symbolic links (or other odd files) planted at content addresses or as fan-out folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import NotFoundError
from lakery import Registry
from lakery import Storable
from lakery import StorageError
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.cli import main
from lakery.core.storage import HashingStream
from lakery.core.storage import ValueWrite
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import Unpacker
from lakery.maintenance import verify_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import gc_after_grace

PAST = 946684800.0  # 2000-01-01


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def body_part(record: ManifestRecord) -> ContentRecord:
    return next(c for c in record.contents if c.content_key == "body")


async def save_doc(new_session: async_sessionmaker, store: Registry, body: bytes) -> Any:
    async with new_session() as session:
        return await save_one(Doc({"n": 1}, body), session=session, registry=store)


async def set_locator(
    new_session: async_sessionmaker, part: ContentRecord, locator: Mapping[str, Any]
) -> None:
    """Rewrite a content record's locator in the database, as an attacker (or a copied
    database from another machine) would."""
    async with new_session() as session:
        await session.execute(
            update(ContentRecord)
            .where(ContentRecord.id == part.id)
            .values(storage_data=dict(locator))
        )
        await session.commit()


async def load_doc(session: AsyncSession, record: ManifestRecord, store: Registry) -> Doc:
    """Load the record as it is in the database now (not its contents as saved)."""
    fresh = await session.get(ManifestRecord, record.id, populate_existing=True)
    assert fresh is not None
    return await load_one(fresh, Doc, session=session, registry=store)


def plant(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (PAST, PAST))


def untouched(path: Path, data: bytes) -> bool:
    return path.read_bytes() == data and path.stat().st_mtime == PAST


# -- records naming another root ---------------------------------------------------------


def other_roots(files: FileStorage) -> dict[str, str]:
    return {
        "another directory": (files.root.parent / "elsewhere").as_posix(),
        "root/../outside": f"{files.root.as_posix()}/../outside",
    }


@pytest.mark.parametrize("which", ["another directory", "root/../outside"])
async def test_a_record_naming_another_root_is_never_read_there(
    new_session: async_sessionmaker, store: Registry, files: FileStorage, which: str
) -> None:
    body = b"only outside the root now"
    record = await save_doc(new_session, store, body)
    part = body_part(record)
    key = part.storage_data["key"]
    other = other_roots(files)[which]
    # The only copy is under the other root, with the right name and bytes.
    outside = Path(other) / key
    plant(outside, body)
    (files.root / key).unlink()
    locator = {"root": other, "key": key}
    await set_locator(new_session, part, locator)

    async with new_session() as session:
        with pytest.raises(NotFoundError) as error:
            await load_doc(session, record, store)
        message = str(error.value)
        assert other in message and files.root.as_posix() in message
        assert f"FileStorage(root={other!r}" in message
        report = await verify_manifests(session, store)
    assert not report.ok
    [problem] = report.problems
    assert problem.manifest_id == record.id and problem.content_key == "body"
    assert problem.storage == "files" and other in problem.message
    assert "FileStorage(root=" in problem.message

    with pytest.raises(NotFoundError, match="FileStorage\\(root="):
        await files.get_value(locator)
    [result] = await files.get_values([locator])
    assert isinstance(result, NotFoundError) and other in str(result)
    with pytest.raises(NotFoundError, match="FileStorage\\(root="):
        await files.get_stream(locator)
    assert files.local_path(locator) is None
    assert files.uri(locator) == (files.root / key).as_uri()
    await files.delete(locator)
    async with new_session() as session:
        await gc_after_grace(session, store)
    assert untouched(outside, body)


async def test_lakery_verify_reports_a_record_naming_another_root(
    new_session: async_sessionmaker,
    store: Registry,
    files: FileStorage,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = b"verified only under the root"
    record = await save_doc(new_session, store, body)
    part = body_part(record)
    other = (files.root.parent / "elsewhere").as_posix()
    plant(Path(other) / part.storage_data["key"], body)
    (files.root / part.storage_data["key"]).unlink()
    await set_locator(new_session, part, {"root": other, "key": part.storage_data["key"]})
    argv = ["verify", "--json", "--database-url", database_url]
    status = await anyio.to_thread.run_sync(main, [*argv, "--storage-url", f"files={files.root}"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and not report["ok"]
    [problem] = report["problems"]
    assert problem["manifest_id"] == str(record.id) and other in problem["message"]
    assert untouched(Path(other) / part.storage_data["key"], body)


async def test_a_record_naming_another_root_reads_the_copy_under_the_own_root(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    """A moved store keeps working; a file under the old root is never looked at (here a
    damaged one, which would fail the load if it were read)."""
    body = b"moved along with its store"
    record = await save_doc(new_session, store, body)
    part = body_part(record)
    key = part.storage_data["key"]
    for other in other_roots(files).values():
        plant(Path(other) / key, b"damaged copy, right name")
        await set_locator(new_session, part, {"root": other, "key": key})
        async with new_session() as session:
            loaded = await load_doc(session, record, store)
            report = await verify_manifests(session, store)
        assert loaded.body == body
        assert report.ok, [p.message for p in report.problems]
        locator = {"root": other, "key": key}
        assert files.local_path(locator) == f"{files.root.as_posix()}/{key}"
        assert bytes(await files.get_value(locator)) == body
        assert untouched(Path(other) / key, b"damaged copy, right name")


@pytest.mark.parametrize(
    "locator",
    [
        {"root": "/", "key": "etc/passwd"},
        {"root": "/etc", "key": "passwd"},
        {"root": "{outside}", "key": "../outside/ab/" + "a" * 64},
        {"root": "{root}", "key": "/{outside}/ab/" + "a" * 64},
        {"root": "{outside}", "key": "{outside}/ab/" + "a" * 64},
        {"root": "{outside}", "key": "aa/../../outside/aa/" + "a" * 64},
        {"root": None, "key": "aa/" + "a" * 64 + "/.."},
        {"root": "{outside}"},
        "{outside}/aa/" + "a" * 64,
    ],
)
async def test_keys_that_leave_the_root_are_refused(
    files: FileStorage, locator: dict[str, Any] | str
) -> None:
    outside = files.root.parent / "outside"
    plant(outside / "aa" / ("a" * 64), b"secret")
    names = {"outside": outside.as_posix(), "root": files.root.as_posix()}
    if isinstance(locator, str):
        locator = locator.format(**names)  # type: ignore[assignment]
    else:
        locator = {k: v.format(**names) if isinstance(v, str) else v for k, v in locator.items()}
    for call in (files.get_value, files.get_stream, files.delete):
        with pytest.raises(StorageError, match="invalid FileStorage locator"):
            await call(locator)
    with pytest.raises(StorageError, match="invalid FileStorage locator"):
        await files.get_values([locator])
    for method in (files.local_path, files.uri):
        with pytest.raises(StorageError, match="invalid FileStorage locator"):
            method(locator)
    assert untouched(outside / "aa" / ("a" * 64), b"secret")


# -- symbolic links ----------------------------------------------------------------------


class ManyUnpacker(Unpacker["Many"]):
    """Each of `parts` in the "files" storage (more than a small save writes at once)."""

    name = "test.maintenance.many@v1"

    def unpack(self, obj: Many, registry: Registry) -> UnpackedContents:
        return {str(i): UnpackedValue(part, storage="files") for i, part in enumerate(obj.parts)}

    def repack(self, cls: type[Many], contents: Mapping[str, Any], registry: Registry) -> Many:
        return cls([bytes(contents[str(i)]) for i in range(len(contents))])


class Many(Storable, class_id="7e57d0c0a11ce00000000000000000f1", unpacker=ManyUnpacker()):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts


def address(files: FileStorage, data: bytes) -> Path:
    digest = sha(data)
    return files.root / digest[:2] / digest


def plant_link(files: FileStorage, data: bytes, name: str) -> tuple[Path, Path]:
    """A symlink at `data`'s content address to a file outside the root holding it."""
    target = files.root.parent / "outside" / name
    plant(target, data)
    link = address(files, data)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link, target


@pytest.mark.parametrize("how", ["save (few files)", "save (many files)", "put_values"])
async def test_a_save_replaces_a_planted_symlink_and_never_touches_its_target(
    new_session: async_sessionmaker, store: Registry, files: FileStorage, how: str
) -> None:
    parts = [f"part {i} of {how}".encode() for i in range(1 if "few" in how else 6)]
    links = [plant_link(files, data, f"target{i}") for i, data in enumerate(parts)]
    if how == "put_values":
        writes = [ValueWrite([data], len(data), sha(data), {}) for data in parts]
        await files.put_values(writes)
        await files.put_value([parts[0]], size=len(parts[0]), sha256=sha(parts[0]), tags={})
    else:
        async with new_session() as session:
            record = await save_one(Many(parts), session=session, registry=store)
            loaded = await load_one(record, Many, session=session, registry=store)
        assert loaded.parts == parts
    for data, (link, target) in zip(parts, links, strict=True):
        assert not link.is_symlink() and link.read_bytes() == data  # a real file now
        assert untouched(target, data)


async def test_a_stream_write_replaces_a_planted_symlink(files: FileStorage) -> None:
    data = b"streamed over a link"
    link, target = plant_link(files, data, "target")

    async def chunks() -> Any:
        yield data

    locator = await files.put_stream(HashingStream(chunks()), tags={})
    assert locator["key"] == f"{sha(data)[:2]}/{sha(data)}"
    assert not link.is_symlink() and link.read_bytes() == data
    assert untouched(target, data)


async def test_reads_refuse_a_symlinked_blob_without_showing_its_target(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    body = b"the target's secret bytes"
    record = await save_doc(new_session, store, body)
    locator = body_part(record).storage_data
    path = files.root / locator["key"]
    path.unlink()
    target = files.root.parent / "outside" / "target"
    plant(target, body)
    path.symlink_to(target)

    async with new_session() as session:
        with pytest.raises(StorageError, match="symbolic link") as error:
            await load_doc(session, record, store)
        assert str(path) in str(error.value) and "secret" not in str(error.value)
        report = await verify_manifests(session, store)
    [problem] = report.problems
    assert problem.manifest_id == record.id and problem.kind == "unreadable"
    assert "symbolic link" in problem.message and "secret" not in problem.message
    for call in (files.get_value, files.get_stream):
        with pytest.raises(StorageError, match="symbolic link"):
            await call(locator)
    with pytest.raises(StorageError, match="symbolic link"):
        await files.get_values([locator])
    assert files.local_path(locator) is None
    await files.delete(locator)  # removes the link, not what it points to
    assert not path.is_symlink() and untouched(target, body)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
async def test_a_named_pipe_at_a_content_address_neither_blocks_a_save_nor_a_read(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    body = b"not a pipe"
    path = address(files, body)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with anyio.fail_after(10):
        record = await save_doc(new_session, store, body)  # replaces the pipe
    assert path.is_file() and path.read_bytes() == body
    path.unlink()
    os.mkfifo(path)
    with anyio.fail_after(10), pytest.raises(StorageError, match="not a regular file"):
        await files.get_value(body_part(record).storage_data)


async def test_a_symlinked_folder_leads_nothing_out_of_the_root(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    body = b"in a folder that moved out"
    record = await save_doc(new_session, store, body)
    locator = body_part(record).storage_data
    folder = files.root / locator["key"][:2]
    elsewhere = files.root.parent / "outside" / folder.name
    elsewhere.parent.mkdir()
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)
    target = elsewhere / sha(body)
    os.utime(target, (PAST, PAST))
    # an old leftover out there, which gc must not delete
    stray = elsewhere / f".{sha(body)}.{'0' * 32}.tmp"
    plant(stray, b"old temp")

    async with new_session() as session:
        with pytest.raises(StorageError, match="symbolic link"):
            await load_doc(session, record, store)
        report = await verify_manifests(session, store)
        [problem] = report.problems
        assert problem.manifest_id == record.id and "symbolic link" in problem.message
        with pytest.raises(StorageError, match="symbolic link"):
            await save_one(Doc({"n": 2}, body), session=session, registry=store)
        await gc_after_grace(session, store)
    for call in (files.get_value, files.get_stream, files.delete):
        with pytest.raises(StorageError, match="symbolic link"):
            await call(locator)
    assert files.local_path(locator) is None
    with pytest.raises(StorageError, match="symbolic link"):
        await files.put_value([body], size=len(body), sha256=sha(body), tags={})
    with pytest.raises(StorageError, match="symbolic link"):
        await files.put_values([ValueWrite([body], len(body), sha(body), {})] * 4)
    assert untouched(target, body) and untouched(stray, b"old temp")
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted([target.name, stray.name])


async def test_gc_does_not_follow_a_symlinked_temporary_folder(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    await files.put_value([b"own"], size=3, sha256=sha(b"own"), tags={})
    elsewhere = files.root.parent / "outside"
    victim = elsewhere / f"{'a' * 32}.tmp"
    plant(victim, b"someone else's file")
    (files.root / "tmp").symlink_to(elsewhere, target_is_directory=True)
    async with new_session() as session:
        report = await gc_after_grace(session, store, storages=[files])
    assert any("symbolic link" in error for error in report.errors)
    assert untouched(victim, b"someone else's file")
