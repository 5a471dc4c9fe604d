"""Streams uploaded in parts: spooled and sent to their content address, or through a
temporary object and copied; deduplication; failures and cancellation."""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import random
import tracemalloc
from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import HashingStream
from lakery.extra.aws import S3Storage
from lakery.extra.aws import upload
from lakery.extra.aws.spool import SpoolFile
from tests.extra_aws.conftest import FaultProxy
from tests.extra_aws.conftest import MiB
from tests.extra_aws.conftest import Request
from tests.extra_aws.conftest import keys
from tests.extra_aws.conftest import leftovers
from tests.extra_aws.conftest import wait_for

SPOOL = "spool"
THROUGH_TEMP = "through-temp"


async def chunks(data: bytes, size: int = 1 * MiB) -> AsyncIterator[Buffer]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await anyio.lowlevel.checkpoint()


def content_key(data: bytes, prefix: str = "") -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"{prefix}/sha256/{digest[:2]}/{digest}" if prefix else f"sha256/{digest[:2]}/{digest}"


def open_files_under(directory: Path) -> list[str]:
    """The files this process has open under `directory` (spool files have no name in the
    directory, but /proc still shows where they are)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


@pytest.fixture
def proxied(
    make_storage: Callable[..., S3Storage], fault_proxy: FaultProxy, spool_dir: Path
) -> Callable[..., S3Storage]:
    """Storages that reach moto through the fault proxy (which logs every request), and
    spool to `spool_dir`."""

    def make(**options: Any) -> S3Storage:
        options.setdefault("stream_spool_dir", spool_dir)
        return make_storage(endpoint_url=fault_proxy.url, **options)

    return make


def path_options(path: str) -> dict[str, Any]:
    return {} if path == SPOOL else {"stream_spool_max_bytes": None}


async def assert_nothing_left(raw_s3: Any, bucket: str, spool_dir: Path) -> None:
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []
    assert open_files_under(spool_dir) == []
    assert list(spool_dir.iterdir()) == []


# -- the spooled path -------------------------------------------------------------------


async def test_stream_is_spooled_then_uploaded_to_its_address(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
) -> None:
    storage = proxied(prefix="runs/7")
    data = random.Random(3).randbytes(16 * MiB + 123)
    spool_files_while_uploading: list[list[str]] = []

    def look(request: Request) -> None:
        if request.operation == "UploadPart":
            spool_files_while_uploading.append(open_files_under(spool_dir))

    fault_proxy.before_forward = look
    stream = HashingStream(chunks(data, 700_000))
    locator = await storage.put_stream(stream, tags={"kind": "stream", "run": "7"})

    key = content_key(data, "runs/7")
    assert locator == {"bucket": bucket, "key": key}
    assert fault_proxy.operations() == [
        "HeadObject",  # is the content stored already? no
        "CreateMultipartUpload",
        *["UploadPart"] * 4,  # 3 parts of 5 MiB and the rest, straight to the content key
        "Complete",
    ]
    assert all(r.path.startswith(f"/{bucket}/{key}") for r in fault_proxy.requests)
    assert len(spool_files_while_uploading) == 4
    assert all(len(files) == 1 for files in spool_files_while_uploading)  # one spool file
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket, "runs/7") == []
    assert await keys(raw_s3, bucket) == [key]
    tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=key)
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"kind": "stream", "run": "7"}
    assert open_files_under(spool_dir) == [] and list(spool_dir.iterdir()) == []


async def test_stream_of_exactly_one_part_is_spooled_and_put(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied()
    data = random.Random(15).randbytes(5 * MiB)  # the first part is full: the end is unknown
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.operations() == ["HeadObject", "PutObject"]
    assert bytes(await storage.get_value(locator)) == data
    assert await keys(raw_s3, bucket) == [content_key(data)]


@pytest.mark.parametrize("object_tags", ["tagging", "metadata"])
async def test_stored_content_is_not_uploaded_again(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    object_tags: str,
) -> None:
    """The second stream of the same bytes sends none of them: a HEAD finds the content,
    and a server-side copy onto itself refreshes its LastModified (so that garbage
    collection spares it until the save commits) and writes this save's tags."""
    storage = proxied(object_tags=object_tags)
    data = random.Random(5).randbytes(11 * MiB)
    first = await storage.put_stream(HashingStream(chunks(data)), tags={"save": "first"})
    before = await raw_s3.head_object(Bucket=bucket, Key=first["key"])
    await anyio.sleep(1.1)  # S3 timestamps have one-second resolution
    fault_proxy.reset()

    second = await storage.put_stream(HashingStream(chunks(data)), tags={"save": "second"})

    assert first == second
    assert fault_proxy.operations() == ["HeadObject", "CopyObject"]  # no PUT of any bytes
    copy = fault_proxy.requests[-1]
    assert copy.headers["x-amz-copy-source"].endswith(first["key"])
    assert copy.headers["x-amz-metadata-directive"] == "REPLACE"
    after = await raw_s3.head_object(Bucket=bucket, Key=first["key"])
    assert after["LastModified"] > before["LastModified"]
    assert after["ContentLength"] == len(data)
    if object_tags == "metadata":
        assert after["Metadata"] == {"lakery-tags": '{"save":"second"}'}
    else:
        tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=first["key"])
        assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"save": "second"}
    assert bytes(await storage.get_value(second)) == data
    assert await leftovers(raw_s3, bucket) == []
    assert open_files_under(spool_dir) == []


async def test_stored_content_larger_than_a_copy_is_refreshed_in_ranges(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(copy_part_size=5 * MiB)
    data = random.Random(16).randbytes(11 * MiB)
    first = await storage.put_stream(HashingStream(chunks(data)), tags={})
    fault_proxy.reset()
    second = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert first == second
    operations = fault_proxy.operations()
    assert operations[0] == "HeadObject" and operations.count("UploadPartCopy") == 3
    assert "UploadPart" not in operations and "PutObject" not in operations
    assert bytes(await storage.get_value(second)) == data
    assert await leftovers(raw_s3, bucket) == []


async def test_different_bytes_at_the_content_address_are_replaced(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied()
    data = random.Random(17).randbytes(6 * MiB)
    await raw_s3.put_object(Bucket=bucket, Key=content_key(data), Body=b"damaged")
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert "CopyObject" not in fault_proxy.operations()
    assert bytes(await storage.get_value(locator)) == data


async def test_spooled_streams_have_no_part_limit(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, monkeypatch: Any
) -> None:
    """The length is known before the upload, so the parts grow to fit S3's limit."""
    monkeypatch.setattr(upload, "MAX_PARTS", 2)
    storage = proxied()
    data = random.Random(18).randbytes(16 * MiB)
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.operations().count("UploadPart") == 2
    assert bytes(await storage.get_value(locator)) == data


async def test_stream_longer_than_the_spool_limit_goes_through_a_temporary_object(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    caplog: Any,
) -> None:
    storage = proxied(stream_spool_max_bytes=12 * MiB)
    data = random.Random(19).randbytes(23 * MiB + 7)
    with caplog.at_level(logging.INFO, logger="lakery.extra.aws"):
        locator = await storage.put_stream(HashingStream(chunks(data, 900_000)), tags={})
    assert "outgrew its spool limit" in caplog.text
    operations = fault_proxy.operations()
    assert operations.count("UploadPart") == 5  # the 2 spooled parts, then 3 more
    assert "CopyObject" in operations and "HeadObject" not in operations
    uploads = [r for r in fault_proxy.requests if r.operation == "UploadPart"]
    assert all("/tmp/" in r.path for r in uploads)
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == [content_key(data)]
    assert open_files_under(spool_dir) == []


async def test_full_spool_disk_goes_on_through_a_temporary_object(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    monkeypatch: Any,
    caplog: Any,
) -> None:
    written: list[int] = []
    real_write = SpoolFile._write_at

    def write_at(self: SpoolFile, data: bytes, offset: int) -> None:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        real_write(self, data, offset)

    monkeypatch.setattr(SpoolFile, "_write_at", write_at)
    storage = proxied()
    data = random.Random(20).randbytes(22 * MiB)
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert "No space left on device" in caplog.text
    assert fault_proxy.operations().count("UploadPart") == 5
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket) == []
    assert open_files_under(spool_dir) == []


async def test_unusable_spool_directory_goes_through_a_temporary_object(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    tmp_path: Path,
    caplog: Any,
) -> None:
    storage = proxied(stream_spool_dir=tmp_path / "no" / "such" / "dir")
    data = random.Random(21).randbytes(6 * MiB)
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert "cannot create a spool file" in caplog.text
    assert "CopyObject" in fault_proxy.operations()
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket) == []


# -- the path through a temporary object ------------------------------------------------


async def test_stream_through_a_temporary_object(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(prefix="runs/8", stream_spool_max_bytes=None)
    data = random.Random(3).randbytes(16 * MiB + 123)
    stream = HashingStream(chunks(data, 700_000))
    locator = await storage.put_stream(stream, tags={"kind": "stream", "run": "8"})

    assert locator == {"bucket": bucket, "key": content_key(data, "runs/8")}
    operations = fault_proxy.operations()
    assert operations.count("UploadPart") == 4  # 3 parts of 5 MiB and the rest
    assert "CopyObject" in operations and "UploadPartCopy" not in operations
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket, "runs/8") == []
    assert await keys(raw_s3, bucket) == [locator["key"]]
    tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=locator["key"])
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"kind": "stream", "run": "8"}


async def test_large_stream_is_copied_in_ranges(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    """Above copy_part_size the copy is a multipart UploadPartCopy: no 5 GB copy limit."""
    storage = proxied(copy_part_size=5 * MiB, object_tags="metadata", stream_spool_max_bytes=0)
    data = random.Random(4).randbytes(12 * MiB + 5)
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={"kind": "big"})

    copies = [r for r in fault_proxy.requests if r.operation == "UploadPartCopy"]
    ranges = [r.headers["x-amz-copy-source-range"] for r in copies]
    assert sorted(ranges, key=lambda r: int(r[6:].split("-")[0])) == [
        f"bytes=0-{5 * MiB - 1}",
        f"bytes={5 * MiB}-{10 * MiB - 1}",
        f"bytes={10 * MiB}-{12 * MiB + 4}",
    ]
    assert bytes(await storage.get_value(locator)) == data
    head = await raw_s3.head_object(Bucket=bucket, Key=locator["key"])
    assert head["Metadata"] == {"lakery-tags": '{"kind":"big"}'}
    assert await leftovers(raw_s3, bucket) == []


async def test_identical_stream_is_copied_again_to_refresh_it(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    """Re-saving stored content refreshes its LastModified, so that garbage collection
    (which spares recent objects) cannot delete it before the save commits."""
    storage = proxied(stream_spool_max_bytes=None)
    data = random.Random(5).randbytes(11 * MiB)
    first = await storage.put_stream(HashingStream(chunks(data)), tags={})
    before = (await raw_s3.head_object(Bucket=bucket, Key=first["key"]))["LastModified"]
    await anyio.sleep(1.1)  # S3 timestamps have one-second resolution
    fault_proxy.reset()
    second = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert first == second
    assert "CopyObject" in fault_proxy.operations()
    after = (await raw_s3.head_object(Bucket=bucket, Key=first["key"]))["LastModified"]
    assert after > before
    assert await leftovers(raw_s3, bucket) == []


async def test_copy_failure_deletes_the_temporary_object(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(max_attempts=1, stream_spool_max_bytes=None)
    fault_proxy.fail(1, status=500, code="InternalError", header="x-amz-copy-source")
    data = random.Random(7).randbytes(11 * MiB)
    with pytest.raises(StorageError, match="CopyObject"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.operations()[-1] == "DeleteObject"
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []


async def test_too_many_parts_says_which_option_to_raise(
    proxied: Callable[..., S3Storage], raw_s3: Any, bucket: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upload, "MAX_PARTS", 2)
    storage = proxied(stream_spool_max_bytes=None)
    data = b"p" * (16 * MiB)
    with pytest.raises(StorageError, match="part_size"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert await leftovers(raw_s3, bucket) == []


@pytest.mark.parametrize("path", [SPOOL, THROUGH_TEMP])
@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
async def test_multipart_stream_round_trip(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    path: str,
    checksums: str,
) -> None:
    storage = proxied(request_checksum_calculation=checksums, **path_options(path))
    data = random.Random(32).randbytes(12 * MiB + 1)
    locator = await storage.put_stream(HashingStream(chunks(data, 333_333)), tags={})
    assert locator["key"] == content_key(data)
    assert bytes(await storage.get_value(locator)) == data
    assert b"".join([bytes(c) async for c in await storage.get_stream(locator)]) == data
    uploads = [r for r in fault_proxy.requests if r.operation == "UploadPart"]
    assert len(uploads) == 3
    crc32s = ["x-amz-checksum-crc32" in r.headers for r in uploads]
    assert crc32s == [checksums == "when_supported"] * 3  # computed by lakery, off the loop
    assert await leftovers(raw_s3, bucket) == []
    assert open_files_under(spool_dir) == []


# -- failures and cancellation, on both paths -------------------------------------------


@pytest.mark.parametrize("path", [SPOOL, THROUGH_TEMP])
async def test_stream_failing_midway_leaves_nothing(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    path: str,
) -> None:
    storage = proxied(**path_options(path))

    async def failing() -> AsyncIterator[Buffer]:
        for _ in range(11):
            yield b"z" * MiB
        if path == THROUGH_TEMP:  # parts are on their way to S3
            await wait_for(lambda: fault_proxy.operations().count("UploadPart") >= 2)
        else:  # two parts are in the spool file
            assert len(open_files_under(spool_dir)) == 1
        raise RuntimeError("stream failed on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        await storage.put_stream(HashingStream(failing()), tags={})
    operations = fault_proxy.operations()
    if path == SPOOL:
        assert operations == []  # nothing was sent: the hash was never known
    else:
        assert "UploadPart" in operations and "AbortMultipartUpload" in operations
    await assert_nothing_left(raw_s3, bucket, spool_dir)


@pytest.mark.parametrize("path", [SPOOL, THROUGH_TEMP])
async def test_part_upload_failure_aborts_the_upload(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    path: str,
) -> None:
    storage = proxied(max_attempts=2, **path_options(path))
    fault_proxy.fail(100, status=500, code="InternalError", method="PUT", query="partNumber=2")
    data = random.Random(6).randbytes(16 * MiB)
    with pytest.raises(StorageError, match="UploadPart"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert "AbortMultipartUpload" in fault_proxy.operations()
    await assert_nothing_left(raw_s3, bucket, spool_dir)


async def test_failed_completion_aborts_the_spooled_upload(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
) -> None:
    storage = proxied(max_attempts=1)
    fault_proxy.fail(1, status=500, code="InternalError", method="POST", query="uploadId=")
    data = random.Random(22).randbytes(11 * MiB)
    with pytest.raises(StorageError, match="CompleteMultipartUpload"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.operations()[-1] == "AbortMultipartUpload"
    await assert_nothing_left(raw_s3, bucket, spool_dir)


async def test_cancelled_while_spooling_leaves_nothing(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
) -> None:
    storage = proxied()
    spooled = anyio.Event()

    async def stalling() -> AsyncIterator[Buffer]:
        for _ in range(11):
            yield b"c" * MiB
        spooled.set()
        await anyio.sleep(60)
        yield b"never"

    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(storage.put_stream, HashingStream(stalling()), tags={}))
        await spooled.wait()
        assert len(open_files_under(spool_dir)) == 1
        group.cancel_scope.cancel()

    assert fault_proxy.operations() == []
    await assert_nothing_left(raw_s3, bucket, spool_dir)


@pytest.mark.parametrize("path", [SPOOL, THROUGH_TEMP])
async def test_cancelled_mid_upload_leaves_nothing(
    proxied: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    path: str,
) -> None:
    storage = proxied(**path_options(path))
    fault_proxy.latency = 0.2  # parts are still in flight when the cancellation comes

    async def stream() -> AsyncIterator[Buffer]:
        for _ in range(16):
            yield b"c" * MiB
        if path == THROUGH_TEMP:
            await anyio.sleep(60)  # parts of the first 15 MiB are being sent

    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(storage.put_stream, HashingStream(stream()), tags={}))
        await wait_for(lambda: fault_proxy.operations().count("UploadPart") >= 2)
        group.cancel_scope.cancel()

    assert "AbortMultipartUpload" in fault_proxy.operations()
    await assert_nothing_left(raw_s3, bucket, spool_dir)


# -- values and memory ------------------------------------------------------------------


async def test_value_too_large_for_one_put_goes_in_parts(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(multipart_threshold=6 * MiB)
    parts = [b"v" * (4 * MiB), memoryview(b"w" * (7 * MiB)), bytearray(b"tail")]
    data = b"".join(bytes(p) for p in parts)
    sha256 = hashlib.sha256(data).hexdigest()
    locator = await storage.put_value(parts, size=len(data), sha256=sha256, tags={})
    assert locator["key"] == content_key(data)
    operations = fault_proxy.operations()
    assert operations.count("UploadPart") == 3 and "CopyObject" not in operations
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket) == []


@pytest.mark.parametrize("path", [SPOOL, THROUGH_TEMP])
async def test_upload_memory_does_not_grow_with_the_stream(
    make_storage: Callable[..., S3Storage],
    raw_s3: Any,
    bucket: str,
    spool_dir: Path,
    path: str,
) -> None:
    """Peak memory stays within a few parts, whatever the stream's size: about
    (2 * upload_concurrency + 1) parts through a temporary object or from the spool file,
    and up to four while spooling (the part being assembled, the one being written, a
    copy of the next), plus this test's generator."""
    storage = make_storage(upload_concurrency=1, stream_spool_dir=spool_dir, **path_options(path))
    total = 40 * MiB

    async def generated() -> AsyncIterator[Buffer]:
        block = random.Random(9).randbytes(MiB)
        for i in range(total // MiB):
            yield bytes([i % 256]) + block[1:]

    await storage.put_value(
        [b"warm up"], size=7, sha256=hashlib.sha256(b"warm up").hexdigest(), tags={}
    )
    tracemalloc.start()
    try:
        await storage.put_stream(HashingStream(generated()), tags={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Typically 17 MiB (spool) and 18 MiB (through a temporary object); on a loaded machine
    # the spool once reached 22.02 MiB (the generator ran a part further ahead). The limit
    # is the design's bound (4 parts spooling, 3 through a temporary object) plus one part
    # that a slow upload may leave alive a little longer, plus 2 MiB for the generator and
    # the client: well below the 8 parts of the stream, and not a matter of timing.
    parts = 4 if path == SPOOL else 3
    limit = (parts + 1) * storage.part_size + 2 * MiB
    assert peak < limit, f"peak {peak / MiB:.1f} MiB while streaming {total // MiB} MiB"
    assert await leftovers(raw_s3, bucket) == []
