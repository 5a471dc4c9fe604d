"""Flipped bytes, truncated and missing blobs in file and S3 storage: load raises, verify
reports each one (and nothing else)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import IntegrityError
from lakery import ManifestRecord
from lakery import NotFoundError
from lakery import Registry
from lakery import load_one
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableStream
from lakery.extra.aws import S3Storage
from lakery.maintenance import verify_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import DocUnpacker
from tests.maintenance.helpers import collect_items


async def numbers(count: int) -> AsyncIterator[int]:
    for i in range(count):
        yield i
        await anyio.lowlevel.checkpoint()


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


async def save_all(
    new_session: async_sessionmaker, registry: Registry, storage: str
) -> list[ManifestRecord]:
    objects: list[Any] = [
        Doc({"n": i}, f"payload {i} ".encode() * 200, body_storage=storage) for i in range(4)
    ]
    objects.append(StorableStream(numbers(20_000), storage=storage))
    objects.append(Doc({"n": 99}, b"left intact" * 10, body_storage=storage))
    async with new_session() as session:
        return [await save_one(obj, session=session, registry=registry) for obj in objects]


def part(record: ManifestRecord, key: str) -> Any:
    return next(c for c in record.contents if c.content_key == key)


async def check_reported(
    new_session: async_sessionmaker, registry: Registry, records: list[ManifestRecord]
) -> None:
    """records 0: flipped, 1: truncated, 2: missing, 3: grown, 4: truncated stream, 5: fine."""
    async with new_session() as session:
        for index in (0, 1, 3):
            with pytest.raises(IntegrityError) as error:
                await load_one(records[index], Doc, session=session, registry=registry)
            assert error.value.manifest_id == records[index].id
            assert error.value.content_key == "body"
        with pytest.raises(NotFoundError):
            await load_one(records[2], Doc, session=session, registry=registry)
        loaded = await load_one(records[4], StorableStream, session=session, registry=registry)
        with pytest.raises(IntegrityError):
            await collect_items(loaded)
        intact = await load_one(records[5], Doc, session=session, registry=registry)
        assert intact.body == b"left intact" * 10
        report = await verify_manifests(session, registry)
    found = sorted((str(p.manifest_id), p.content_key, p.kind) for p in report.problems)
    expected = sorted(
        [
            (str(records[0].id), "body", "corrupt"),
            (str(records[1].id), "body", "corrupt"),
            (str(records[2].id), "body", "missing"),
            (str(records[3].id), "body", "corrupt"),
            (str(records[4].id), "stream", "corrupt"),
        ]
    )
    assert found == expected
    assert report.manifests == 6 and not report.ok
    assert "sha256" in report.problems[0].message or "bytes" in report.problems[0].message


async def test_file_storage_corruption(
    new_session: async_sessionmaker, store: Registry, files: FileStorage
) -> None:
    records = await save_all(new_session, store, "files")

    def path(record: ManifestRecord, key: str) -> Path:
        return files.root / part(record, key).storage_data["key"]

    body = path(records[0], "body")
    body.write_bytes(flip(body.read_bytes()))
    truncated = path(records[1], "body")
    truncated.write_bytes(truncated.read_bytes()[:-7])
    path(records[2], "body").unlink()
    grown = path(records[3], "body")
    grown.write_bytes(grown.read_bytes() + b"!")
    stream = path(records[4], "stream")
    stream.write_bytes(stream.read_bytes()[:-100])
    await check_reported(new_session, store, records)


async def test_s3_storage_corruption(
    new_session: async_sessionmaker, make_storage: Callable[..., S3Storage], raw_s3: Any
) -> None:
    storage = make_storage(prefix="corrupt", read_chunk_size=4096)
    registry = Registry(modules=["lakery.builtin"], storages=[storage], unpackers=[DocUnpacker()])
    records = await save_all(new_session, registry, storage.name)

    async def rewrite(record: ManifestRecord, key: str, change: Callable[[bytes], bytes]) -> None:
        locator = part(record, key).storage_data
        response = await raw_s3.get_object(Bucket=locator["bucket"], Key=locator["key"])
        data = await response["Body"].read()
        await raw_s3.put_object(Bucket=locator["bucket"], Key=locator["key"], Body=change(data))

    await rewrite(records[0], "body", flip)
    await rewrite(records[1], "body", lambda data: data[:-7])
    missing = part(records[2], "body").storage_data
    await raw_s3.delete_object(Bucket=missing["bucket"], Key=missing["key"])
    await rewrite(records[3], "body", lambda data: data + b"!")
    await rewrite(records[4], "stream", lambda data: data[:-100])
    await check_reported(new_session, registry, records)
