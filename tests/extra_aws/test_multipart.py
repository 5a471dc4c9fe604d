"""Streams uploaded in parts: several parts, the copy to the content address, failures."""

from __future__ import annotations

import functools
import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import HashingStream
from lakery.extra.aws import S3Storage
from lakery.extra.aws import upload
from tests.extra_aws.conftest import FaultProxy
from tests.extra_aws.conftest import MiB
from tests.extra_aws.conftest import keys
from tests.extra_aws.conftest import leftovers
from tests.extra_aws.conftest import wait_for


async def chunks(data: bytes, size: int = 1 * MiB) -> AsyncIterator[Buffer]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await anyio.lowlevel.checkpoint()


def content_key(data: bytes, prefix: str = "") -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"{prefix}/sha256/{digest[:2]}/{digest}" if prefix else f"sha256/{digest[:2]}/{digest}"


@pytest.fixture
def proxied(
    make_storage: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> Callable[..., S3Storage]:
    """Storages that reach moto through the fault proxy (which logs every request)."""

    def make(**options: Any) -> S3Storage:
        return make_storage(endpoint_url=fault_proxy.url, **options)

    return make


async def test_stream_of_several_parts(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(prefix="runs/7")
    data = random.Random(3).randbytes(16 * MiB + 123)
    stream = HashingStream(chunks(data, 700_000))
    locator = await storage.put_stream(stream, tags={"kind": "stream", "run": "7"})

    assert locator == {"bucket": bucket, "key": content_key(data, "runs/7")}
    operations = fault_proxy.operations()
    assert operations.count("UploadPart") == 4  # 3 parts of 5 MiB and the rest
    assert "CopyObject" in operations and "UploadPartCopy" not in operations
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket, "runs/7") == []
    assert await keys(raw_s3, bucket) == [locator["key"]]
    tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=locator["key"])
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"kind": "stream", "run": "7"}


async def test_large_stream_is_copied_in_ranges(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    """Above copy_part_size the copy is a multipart UploadPartCopy: no 5 GB copy limit."""
    storage = proxied(copy_part_size=5 * MiB, object_tags="metadata")
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
    storage = proxied()
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


async def test_stream_failing_mid_upload_leaves_nothing(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied()

    async def failing() -> AsyncIterator[Buffer]:
        for _ in range(11):
            yield b"z" * MiB
        await wait_for(lambda: fault_proxy.operations().count("UploadPart") >= 2)
        raise RuntimeError("stream failed on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        await storage.put_stream(HashingStream(failing()), tags={})
    operations = fault_proxy.operations()
    assert "UploadPart" in operations and "AbortMultipartUpload" in operations
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []


async def test_part_upload_failure_aborts_the_upload(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(max_attempts=2)
    fault_proxy.fail(100, status=500, code="InternalError", method="PUT", query="partNumber=2")
    data = random.Random(6).randbytes(16 * MiB)
    with pytest.raises(StorageError, match="UploadPart"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert "AbortMultipartUpload" in fault_proxy.operations()
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []


async def test_copy_failure_deletes_the_temporary_object(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied(max_attempts=1)
    fault_proxy.fail(1, status=500, code="InternalError", header="x-amz-copy-source")
    data = random.Random(7).randbytes(11 * MiB)
    with pytest.raises(StorageError, match="CopyObject"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.operations()[-1] == "DeleteObject"
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []


async def test_cancelled_mid_upload_leaves_nothing(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied()
    parts_sent = anyio.Event()

    async def stalling() -> AsyncIterator[Buffer]:
        for _ in range(11):
            yield b"c" * MiB
        parts_sent.set()
        await anyio.sleep(60)
        yield b"never"

    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(storage.put_stream, HashingStream(stalling()), tags={}))
        await parts_sent.wait()
        await wait_for(lambda: fault_proxy.operations().count("UploadPart") >= 2)
        group.cancel_scope.cancel()

    assert "AbortMultipartUpload" in fault_proxy.operations()
    assert await leftovers(raw_s3, bucket) == []
    assert await keys(raw_s3, bucket) == []


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


async def test_too_many_parts_says_which_option_to_raise(
    proxied: Callable[..., S3Storage], raw_s3: Any, bucket: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(upload, "MAX_PARTS", 2)
    storage = proxied()
    data = b"p" * (16 * MiB)
    with pytest.raises(StorageError, match="part_size"):
        await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert await leftovers(raw_s3, bucket) == []


async def test_streamed_read_uses_ranged_gets(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(read_chunk_size=MiB)
    data = random.Random(8).randbytes(3 * MiB + 10)
    locator = await storage.put_value(
        [data], size=len(data), sha256=hashlib.sha256(data).hexdigest(), tags={}
    )
    fault_proxy.reset()
    reader = await storage.get_stream(locator)
    assert fault_proxy.operations() == ["HeadObject"]  # nothing held open before iteration
    received = [bytes(chunk) async for chunk in reader]
    assert b"".join(received) == data
    assert [len(c) for c in received] == [MiB, MiB, MiB, 10]
    ranges = [r.headers.get("range") for r in fault_proxy.requests if r.method == "GET"]
    assert ranges == [
        f"bytes=0-{MiB - 1}",
        f"bytes={MiB}-{2 * MiB - 1}",
        f"bytes={2 * MiB}-{3 * MiB - 1}",
        f"bytes={3 * MiB}-{3 * MiB + 9}",
    ]


async def test_upload_memory_does_not_grow_with_the_stream(
    make_storage: Callable[..., S3Storage], raw_s3: Any, bucket: str
) -> None:
    """Peak memory stays near (2 * upload_concurrency + 1) parts, whatever the stream's size."""
    storage = make_storage(upload_concurrency=1)
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
    assert peak < 19 * MiB, f"peak {peak / MiB:.1f} MiB while streaming {total // MiB} MiB"
    assert await leftovers(raw_s3, bucket) == []


async def test_streamed_read_fetches_one_chunk_ahead_and_stops_on_aclose(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(read_chunk_size=MiB)
    data = random.Random(10).randbytes(5 * MiB)
    locator = await storage.put_value(
        [data], size=len(data), sha256=hashlib.sha256(data).hexdigest(), tags={}
    )
    fault_proxy.reset()
    reader: Any = await storage.get_stream(locator)
    assert bytes(await anext(reader)) == data[:MiB]
    await wait_for(lambda: fault_proxy.operations().count("GetObject") == 2)  # one ahead
    await reader.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    await anyio.sleep(0.1)
    assert fault_proxy.operations().count("GetObject") == 2


async def test_error_fetching_ahead_surfaces_at_that_chunk(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(read_chunk_size=MiB)
    data = random.Random(13).randbytes(3 * MiB)
    locator = await storage.put_value(
        [data], size=len(data), sha256=hashlib.sha256(data).hexdigest(), tags={}
    )
    reader = await storage.get_stream(locator)
    assert bytes(await anext(reader)) == data[:MiB]
    # the fetch ahead is scheduled but has not run yet: it meets the fault
    fault_proxy.fail(5, status=403, code="AccessDenied", method="GET")
    with pytest.raises(AccessDeniedError):
        await anext(reader)
