"""Hostile input: locators that try to leave the storage, odd keys and tags, pickled content,
and credentials that must never show up in what lakery writes, logs or reports."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import NotRegisteredError
from lakery import Registry
from lakery import Storable
from lakery import StorageError
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableValue
from lakery.cli import main
from lakery.core.records import utc_now
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import Unpacker
from lakery.extra.aws import S3Storage
from lakery.maintenance import collect_garbage
from lakery.maintenance import verify_manifests
from tests.extra_aws.conftest import ACCESS_KEY_ID
from tests.extra_aws.conftest import SECRET_ACCESS_KEY
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import DocUnpacker
from tests.maintenance.helpers import gc_after_grace

ROOT = Path(__file__).parents[2]
UNPICKLED: list[str] = []


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def insert_record(
    new_session: async_sessionmaker,
    *,
    storage_name: str,
    locator: dict[str, Any],
    data: bytes,
    serializer: str = "lakery.bytes@v1",
) -> ManifestRecord:
    """A manifest of a `StorableValue` with one part, written straight into the tables."""
    manifest_id = uuid.uuid4()
    now = utc_now()
    async with new_session() as session:
        await session.execute(
            insert(ManifestRecord),
            [
                {
                    "id": manifest_id,
                    "created_at": now,
                    "class_id": uuid.UUID("c4a1d2b3e5f60718293a4b5c6d7e8f90"),
                    "unpacker_name": "lakery.value@v1",
                    "tags": {},
                }
            ],
        )
        await session.execute(
            insert(ContentRecord),
            [
                {
                    "id": uuid.uuid4(),
                    "manifest_id": manifest_id,
                    "content_key": "value",
                    "content_type": "application/octet-stream",
                    "content_encoding": None,
                    "content_size": len(data),
                    "content_hash": sha(data),
                    "content_hash_algorithm": "sha256",
                    "serializer_name": serializer,
                    "serializer_type": "value",
                    "storage_name": storage_name,
                    "storage_data": locator,
                    "tags": {},
                    "created_at": now,
                }
            ],
        )
        await session.commit()
        found = await session.get(ManifestRecord, manifest_id)
        assert found is not None
        session.expunge(found)
    return found


# -- path traversal ----------------------------------------------------------------------


TRAVERSAL_KEYS = [
    "../../outside",
    "/etc/passwd",
    "ab/../../outside",
    "..",
    "00/" + "0" * 64 + "/../../outside",
    "ab\\..\\..\\outside",
    "ab/" + "a" * 63 + "\x00",
]


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
async def test_records_cannot_lead_file_storage_outside_its_root(
    new_session: async_sessionmaker, store: Registry, files: FileStorage, key: str
) -> None:
    outside = files.root.parent / "outside"
    outside.write_bytes(b"secret outside the root")
    record = await insert_record(
        new_session,
        storage_name="files",
        locator={"root": files.root.as_posix(), "key": key},
        data=b"secret outside the root",
    )
    async with new_session() as session:
        with pytest.raises(StorageError, match="invalid FileStorage locator"):
            await load_one(record, StorableValue, session=session, registry=store)
        report = await verify_manifests(session, store)
        assert [p.kind for p in report.problems] == ["unreadable"]
        await gc_after_grace(session, store)
    assert outside.read_bytes() == b"secret outside the root"


async def test_file_gc_ignores_symlinks_and_foreign_files(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    await files.put_value([b"own"], size=3, sha256=sha(b"own"), tags={})
    target = files.root.parent / "precious"
    target.write_bytes(b"do not delete")
    digest = sha(b"do not delete")
    (files.root / digest[:2]).mkdir(exist_ok=True)
    (files.root / digest[:2] / digest).symlink_to(target)
    (files.root / digest[:2] / f".{digest}.{'0' * 32}.tmp").symlink_to(target)
    (files.root / "tmp").mkdir(exist_ok=True)
    (files.root / "tmp" / "notes.txt").write_text("not ours")
    past = 946684800.0
    os.utime(files.root / "tmp" / "notes.txt", (past, past))
    async with new_session() as session:
        report = await gc_after_grace(session, store, storages=[files])
    assert report.deleted == 1  # only the real, unreferenced blob
    assert target.read_bytes() == b"do not delete"
    assert (files.root / "tmp" / "notes.txt").exists()


@pytest.mark.parametrize(
    "sha256", ["../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "", "a" * 62 + "/x"]
)
async def test_odd_hashes_are_refused_before_writing(
    tmp_path: Path, make_storage: Callable[..., S3Storage], sha256: str
) -> None:
    files = FileStorage(tmp_path / "files")
    s3 = make_storage(prefix="odd")
    for storage in (files, s3):
        with pytest.raises(StorageError):
            await storage.put_value([b"x"], size=1, sha256=sha256, tags={})
    assert not (tmp_path / "files").exists() or not any((tmp_path / "files").rglob("*"))


@pytest.mark.parametrize(
    "key",
    [
        "../../outside",
        "odd/sha256/ab/../../../outside",
        "odd/sha256/zz/" + "a" * 64,
        "/odd/sha256/aa/" + "a" * 64,
        "odd/sha256/aa/" + "a" * 64 + "/..",
    ],
)
async def test_records_cannot_lead_s3_storage_elsewhere(
    new_session: async_sessionmaker,
    make_storage: Callable[..., S3Storage],
    raw_s3: Any,
    key: str,
) -> None:
    storage = make_storage(prefix="odd")
    await raw_s3.put_object(Bucket=storage.bucket, Key="outside", Body=b"keep me")
    registry = Registry(modules=["lakery.builtin"], storages=[storage])
    record = await insert_record(
        new_session,
        storage_name=storage.name,
        locator={"bucket": storage.bucket, "key": key},
        data=b"keep me",
    )
    async with new_session() as session:
        with pytest.raises(StorageError, match="invalid S3Storage locator"):
            await load_one(record, StorableValue, session=session, registry=registry)
        report = await verify_manifests(session, registry)
        assert [p.kind for p in report.problems] == ["unreadable"]
        await gc_after_grace(session, registry, storages=[storage])
    kept = await raw_s3.get_object(Bucket=storage.bucket, Key="outside")
    assert await kept["Body"].read() == b"keep me"


# -- odd keys and tags -------------------------------------------------------------------

ODD = ["../../etc/passwd", "a/b\\c", "ключ", "🙂", "x" * 1000, "quote\"'", "new\nline", " "]


class OddUnpacker(Unpacker["OddKeys"]):
    name = "test.maintenance.odd@v1"

    def unpack(self, obj: OddKeys, registry: Registry) -> UnpackedContents:
        return {
            key: UnpackedValue(value, storage="files", tags={key: key})
            for key, value in obj.parts.items()
        }

    def repack(self, cls: type[OddKeys], contents: Mapping[str, Any], registry: Registry) -> Any:
        return cls(dict(contents))


class OddKeys(Storable, class_id="7e57d0c0a11ce0000000000000000002", unpacker=OddUnpacker()):
    def __init__(self, parts: dict[str, Any]) -> None:
        self.parts = parts


async def test_odd_content_keys_and_tags_are_data_not_paths(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    parts = {key: {"key": key} for key in ODD}
    tags = {key: key for key in ODD}
    async with new_session() as session:
        record = await save_one(OddKeys(parts), session=session, registry=store, tags=tags)
        loaded = await load_one(record, OddKeys, session=session, registry=store)
        assert loaded.parts == parts
        assert (
            await verify_manifests(session, store, tags={"../../etc/passwd": "../../etc/passwd"})
        ).manifests == 1
    names = {p.name for p in files.root.rglob("*")}
    assert all(len(name) in (2, 64) for name in names)  # fan-out folders and hashes only
    assert not (files.root.parent / "etc").exists()


# -- pickle ------------------------------------------------------------------------------


class Exploit:
    """Unpickling this records that it happened (instead of doing harm)."""

    def __reduce__(self) -> Any:
        return (UNPICKLED.append, ("unpickled!",))


async def test_pickled_content_is_refused_unread(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    assert not [name for name in store.serializers if "pickle" in name.lower()]
    data = pickle.dumps(Exploit())
    locator = await files.put_value([data], size=len(data), sha256=sha(data), tags={})
    for name in ("python.pickle@v1", "dagster.pickle@v1", "lakery.pickle@v1"):
        record = await insert_record(
            new_session, storage_name="files", locator=locator, data=data, serializer=name
        )
        async with new_session() as session:
            with pytest.raises(NotRegisteredError) as error:
                await load_one(record, StorableValue, session=session, registry=store)
            assert error.value.kind == "serializer" and error.value.name == name
            report = await verify_manifests(session, store, manifests=[record])
        assert [p.kind for p in report.problems] == ["unknown component"]
    assert UNPICKLED == []


def test_lakery_never_unpickles() -> None:
    sources = [
        *ROOT.joinpath("lakery").rglob("*.py"),
        *ROOT.joinpath("lakery_dagster").rglob("*.py"),
    ]
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources
        if any(call in path.read_text() for call in ("pickle.load", "pickle.Unpickler", "dill."))
    ]
    assert offenders == []


# -- credentials -------------------------------------------------------------------------


SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY)


async def test_credentials_stay_out_of_records_reports_and_logs(
    engine: AsyncEngine,
    new_session: async_sessionmaker,
    make_storage: Callable[..., S3Storage],
    raw_s3: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = make_storage(prefix="secret")
    missing_bucket = make_storage(bucket="no-such-bucket-here", name="gone")
    registry = Registry(
        modules=["lakery.builtin"], storages=[storage, missing_bucket], unpackers=[DocUnpacker()]
    )
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with new_session() as session:
            kept, lost = [
                await save_one(
                    Doc({"x": i}, f"body {i}".encode(), body_storage=storage.name),
                    session=session,
                    registry=registry,
                    tags={"who": "me"},
                )
                for i in range(2)
            ]
        locator = lost.contents[0].storage_data
        await raw_s3.delete_object(Bucket=locator["bucket"], Key=locator["key"])
        async with new_session() as session:
            report = await verify_manifests(session, registry)
            garbage = await collect_garbage(session, registry, delete=True)
        texts += [json.dumps(report.to_dict()), json.dumps(garbage.to_dict(), default=str)]
        assert garbage.errors  # the missing bucket: an error, reported without secrets
    async with engine.connect() as connection:
        for table in ("lakery_manifests", "lakery_contents"):
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()
            texts += [json.dumps([str(v) for v in row]) for row in rows]
    body = kept.contents[0].storage_data
    head = await raw_s3.head_object(Bucket=body["bucket"], Key=body["key"])
    tagging = await raw_s3.get_object_tagging(Bucket=body["bucket"], Key=body["key"])
    texts += [repr(head.get("Metadata")), repr(tagging.get("TagSet"))]
    # lakery's log records name neither; botocore's own DEBUG records carry the key id in
    # the Authorization header they log, but never the secret
    texts += [r.getMessage() for r in caplog.records if r.name.startswith("lakery")]
    assert SECRET_ACCESS_KEY not in caplog.text
    for secret in SECRETS:
        assert all(secret not in t for t in texts)


async def test_cli_output_and_errors_hold_no_credentials(
    engine: AsyncEngine,
    database_url: str,
    moto_endpoint: str,
    make_storage: Callable[..., S3Storage],
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = make_storage(prefix="cli")
    registry = Registry(modules=["lakery.builtin"], storages=[storage], unpackers=[DocUnpacker()])
    async with async_sessionmaker(engine)() as session:
        record = await save_one(
            Doc({"x": 2}, b"cli body", body_storage=storage.name),
            session=session,
            registry=registry,
        )
    common = [
        "--database-url",
        database_url,
        "--storage-url",
        f"s3://{storage.bucket}/cli",
        "--s3-endpoint-url",
        moto_endpoint,
        "--s3-region",
        "us-east-1",
        "-vv",
    ]
    outputs = []
    for command in (["show", str(record.id)], ["verify"], ["gc"], ["find"]):
        status = await anyio.to_thread.run_sync(main, [*command, "--json", *common])
        captured = capsys.readouterr()
        assert status == 0, captured.err
        outputs += [captured.out, captured.err]
    # a database URL with a password, to a server that is not there
    password = "hunter2-db-password"
    bad_url = f"postgresql://lakery:{password}@127.0.0.1:9/nowhere"
    status = await anyio.to_thread.run_sync(main, ["find", "--database-url", bad_url])
    captured = capsys.readouterr()
    assert status == 2 and "error" in captured.err
    outputs += [captured.out, captured.err]
    for secret in (*SECRETS, password):
        assert all(secret not in output for output in outputs)
