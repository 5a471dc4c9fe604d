"""Streamed reads: one GET read in chunks, resumed where a broken transfer stopped, never
mixing the bytes of a replaced object; missing objects; cancellation and closing."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.extra.aws import S3Storage
from tests.extra_aws.conftest import REGION
from tests.extra_aws.conftest import FaultProxy
from tests.extra_aws.conftest import MiB
from tests.extra_aws.conftest import Request
from tests.extra_aws.conftest import wait_for


@pytest.fixture
def proxied(
    make_storage: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> Callable[..., S3Storage]:
    def make(**options: Any) -> S3Storage:
        options.setdefault("read_chunk_size", MiB)
        return make_storage(endpoint_url=fault_proxy.url, **options)

    return make


async def put(storage: S3Storage, data: bytes) -> dict[str, Any]:
    sha256 = hashlib.sha256(data).hexdigest()
    return await storage.put_value([data], size=len(data), sha256=sha256, tags={})


def gets(proxy: FaultProxy) -> list[Request]:
    return [r for r in proxy.requests if r.method == "GET"]


def replace_in_moto(moto_endpoint: str, locator: dict[str, Any], body: bytes) -> None:
    """Overwrite an object from a plain thread (the proxy's), with a synchronous client."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3", region_name=REGION, endpoint_url=moto_endpoint
    )
    client.put_object(Bucket=locator["bucket"], Key=locator["key"], Body=body)


async def test_one_streamed_get_read_in_chunks(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any
) -> None:
    storage = proxied()
    data = random.Random(8).randbytes(3 * MiB + 10)
    locator = await put(storage, data)
    fault_proxy.reset()
    reader = await storage.get_stream(locator)
    assert fault_proxy.operations() == ["HeadObject"]  # nothing held open before iteration
    received = [bytes(chunk) async for chunk in reader]
    assert b"".join(received) == data
    assert all(0 < len(c) <= MiB for c in received)  # what has arrived, up to the limit
    assert fault_proxy.operations() == ["HeadObject", "GetObject"]
    (get,) = gets(fault_proxy)
    head = await raw_s3.head_object(Bucket=locator["bucket"], Key=locator["key"])
    assert "range" not in get.headers and get.headers["if-match"] == head["ETag"]


async def test_empty_object_needs_no_get(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied()
    locator = await put(storage, b"")
    fault_proxy.reset()
    assert [chunk async for chunk in await storage.get_stream(locator)] == []
    assert fault_proxy.operations() == ["HeadObject"]


async def test_broken_transfer_is_resumed_where_it_stopped(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, caplog: Any
) -> None:
    storage = proxied()
    data = random.Random(11).randbytes(4 * MiB + 3)
    locator = await put(storage, data)
    fault_proxy.reset()
    fault_proxy.fail(1, method="GET", cut_body=True)  # half the body, then the line drops
    with caplog.at_level(logging.INFO, logger="lakery.extra.aws"):
        received = b"".join([bytes(c) async for c in await storage.get_stream(locator)])
    assert received == data
    assert fault_proxy.injected == 1
    first, resumed = gets(fault_proxy)
    start = int(resumed.headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= len(data) // 2  # only what was not read yet is asked for again
    assert resumed.headers["if-match"] == first.headers["if-match"]
    assert "resuming from there" in caplog.text


async def test_transfer_broken_again_and_again_still_completes_while_it_progresses(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(max_attempts=2)
    data = random.Random(23).randbytes(2 * MiB)
    locator = await put(storage, data)
    fault_proxy.fail(4, method="GET", cut_body=True)  # each GET brings half of what is left
    received = b"".join([bytes(c) async for c in await storage.get_stream(locator)])
    assert received == data
    assert fault_proxy.injected == 4


async def test_gives_up_when_the_resumed_transfers_fail(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(max_attempts=3)
    data = random.Random(24).randbytes(2 * MiB)
    locator = await put(storage, data)
    fault_proxy.fail(1, method="GET", cut_body=True)
    fault_proxy.fail(100, status=503, code="SlowDown", method="GET", header="range")
    reader = await storage.get_stream(locator)
    with pytest.raises(StorageError, match="after 3 attempts"):
        async for _ in reader:
            pass


async def test_refused_resume_raises_the_refusal(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied()
    data = random.Random(25).randbytes(2 * MiB)
    locator = await put(storage, data)
    fault_proxy.fail(1, method="GET", cut_body=True)
    fault_proxy.fail(5, status=403, code="AccessDenied", method="GET", header="range")
    reader = await storage.get_stream(locator)
    with pytest.raises(AccessDeniedError):
        async for _ in reader:
            pass


async def test_object_replaced_before_the_resume_is_an_error_not_mixed_bytes(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, moto_endpoint: str
) -> None:
    storage = proxied()
    data = random.Random(26).randbytes(4 * MiB)
    locator = await put(storage, data)
    replacement = random.Random(27).randbytes(len(data))  # the same size: only the ETag tells

    def replace_before_the_resume(request: Request) -> None:
        if request.method == "GET" and "range" in request.headers:
            replace_in_moto(moto_endpoint, locator, replacement)

    fault_proxy.before_forward = replace_before_the_resume
    fault_proxy.fail(1, method="GET", cut_body=True)
    received = bytearray()
    with pytest.raises(StorageError, match="changed while it was being read"):
        async for chunk in await storage.get_stream(locator):
            received += chunk
    assert data.startswith(received)  # nothing of the replacement was returned
    assert len(gets(fault_proxy)) == 2


async def test_object_replaced_after_get_stream_is_an_error(
    proxied: Callable[..., S3Storage], raw_s3: Any
) -> None:
    storage = proxied()
    data = random.Random(28).randbytes(2 * MiB)
    locator = await put(storage, data)
    reader = await storage.get_stream(locator)
    await raw_s3.put_object(Bucket=locator["bucket"], Key=locator["key"], Body=b"other bytes")
    with pytest.raises(StorageError, match="changed while it was being read"):
        await anext(reader)


async def test_missing_object_raises_before_iteration(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any
) -> None:
    storage = proxied()
    locator = await put(storage, b"soon gone")
    await raw_s3.delete_object(Bucket=locator["bucket"], Key=locator["key"])
    fault_proxy.reset()
    with pytest.raises(NotFoundError, match="no object at s3://") as caught:
        await storage.get_stream(locator)
    assert caught.value.locator == locator
    assert fault_proxy.operations() == ["HeadObject"]


async def test_object_deleted_after_get_stream_is_not_found(
    proxied: Callable[..., S3Storage], raw_s3: Any
) -> None:
    storage = proxied()
    locator = await put(storage, b"deleted in between")
    reader = await storage.get_stream(locator)
    await raw_s3.delete_object(Bucket=locator["bucket"], Key=locator["key"])
    with pytest.raises(NotFoundError):
        await anext(reader)


async def test_cancelled_mid_read_closes_the_response(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    """With a pool of one connection, a response left open would block the next request."""
    storage = proxied(max_concurrency=1)
    data = random.Random(29).randbytes(4 * MiB)
    locator = await put(storage, data)
    fault_proxy.fail(1, method="GET", stall_body=30)  # half the body, then a long pause
    reader: Any = await storage.get_stream(locator)
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in reader:
            received.append(bytes(chunk))

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        # the first half has arrived; the rest is stalled
        await wait_for(lambda: sum(map(len, received)) == 2 * MiB)
        await anyio.sleep(0.1)
        group.cancel_scope.cancel()

    assert b"".join(received) == data[: 2 * MiB]
    assert reader._body is None
    with anyio.fail_after(10):
        assert bytes(await storage.get_value(locator)) == data


async def test_aclose_midway_closes_the_response(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(max_concurrency=1)
    data = random.Random(30).randbytes(5 * MiB)
    locator = await put(storage, data)
    reader: Any = await storage.get_stream(locator)
    first = bytes(await anext(reader))
    assert first and data.startswith(first)
    await reader.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    with anyio.fail_after(10):
        assert bytes(await storage.get_value(locator)) == data
    assert fault_proxy.operations().count("GetObject") == 2


async def test_unconsumed_streams_hold_no_connection(
    proxied: Callable[..., S3Storage],
) -> None:
    """Streams loaded but not iterated yet (a loader's results) do not drain the pool."""
    storage = proxied(max_concurrency=1)
    locators = [await put(storage, f"stream {i}".encode() * 1000) for i in range(3)]
    with anyio.fail_after(10):
        readers = [await storage.get_stream(locator) for locator in locators]
        for locator, reader in zip(locators, readers, strict=True):
            received = b"".join([bytes(c) async for c in reader])
            assert received == bytes(await storage.get_value(locator))


async def test_botocore_checks_the_whole_object_checksum_at_the_end(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(response_checksum_validation="when_supported", max_attempts=1)
    data = random.Random(31).randbytes(3 * MiB)
    locator = await put(storage, data)
    assert b"".join([bytes(c) async for c in await storage.get_stream(locator)]) == data
    fault_proxy.fail(1, method="GET", corrupt_body=True)
    received = bytearray()
    with pytest.raises(StorageError, match=r"GetObject .*FlexibleChecksumError"):
        async for chunk in await storage.get_stream(locator):
            received += chunk
    assert len(received) == len(data)  # all read, then refused at the end
