"""Retries with backoff, and S3 errors translated to lakery's, through a real faulty proxy."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.storage import HashingStream
from lakery.extra.aws import S3Storage
from tests.extra_aws.conftest import FaultProxy
from tests.extra_aws.conftest import MiB
from tests.extra_aws.conftest import leftovers
from tests.extra_aws.test_multipart import chunks


@pytest.fixture
def proxied(
    make_storage: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> Callable[..., S3Storage]:
    def make(**options: Any) -> S3Storage:
        return make_storage(endpoint_url=fault_proxy.url, **options)

    return make


async def put(storage: S3Storage, data: bytes) -> dict[str, Any]:
    sha256 = hashlib.sha256(data).hexdigest()
    return await storage.put_value([data], size=len(data), sha256=sha256, tags={})


async def test_slow_down_then_success(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, caplog: Any
) -> None:
    storage = proxied()
    fault_proxy.fail(3, status=503, code="SlowDown", method="PUT")
    with caplog.at_level(logging.INFO, logger="lakery.extra.aws"):
        locator = await put(storage, b"throttled at first")
    assert fault_proxy.injected == 3
    assert fault_proxy.operations().count("PutObject") == 4
    assert bytes(await storage.get_value(locator)) == b"throttled at first"
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and "SlowDown, HTTP 503" in retries[0]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "InternalError"),
        (502, "BadGateway"),
        (503, "ServiceUnavailable"),
        (429, "x"),
        (400, "RequestTimeout"),
        (400, "BadDigest"),
    ],
)
async def test_transient_errors_are_retried(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, status: int, code: str
) -> None:
    storage = proxied()
    fault_proxy.fail(2, status=status, code=code, method="PUT")
    locator = await put(storage, b"transient")
    fault_proxy.fail(2, status=status, code=code, method="GET")
    assert bytes(await storage.get_value(locator)) == b"transient"
    assert fault_proxy.injected == 4


async def test_head_before_a_stream_is_retried(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied()
    locator = await put(storage, b"head first")
    fault_proxy.fail(2, method="HEAD")
    reader = await storage.get_stream(locator)
    assert b"".join([bytes(c) async for c in reader]) == b"head first"


async def test_body_cut_off_mid_transfer_is_read_again(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(read_chunk_size=MiB)
    data = random.Random(11).randbytes(2 * MiB + 3)
    locator = await put(storage, data)
    fault_proxy.fail(1, method="GET", cut_body=True)
    assert bytes(await storage.get_value(locator)) == data
    fault_proxy.fail(1, method="GET", cut_body=True)  # a streamed read resumes
    reader = await storage.get_stream(locator)
    assert b"".join([bytes(c) async for c in reader]) == data
    assert fault_proxy.injected == 2


async def test_part_uploads_are_retried(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy, raw_s3: Any, bucket: str
) -> None:
    storage = proxied()
    fault_proxy.fail(2, status=503, code="SlowDown", method="PUT", query="partNumber=2")
    data = random.Random(12).randbytes(11 * MiB)
    locator = await storage.put_stream(HashingStream(chunks(data)), tags={})
    assert fault_proxy.injected == 2
    assert bytes(await storage.get_value(locator)) == data
    assert await leftovers(raw_s3, bucket) == []


async def test_gives_up_after_max_attempts(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(max_attempts=3)
    fault_proxy.fail(100, status=503, code="SlowDown")
    with pytest.raises(StorageError, match="still throttled after 3 attempts") as caught:
        await put(storage, b"never stored")
    assert "max_concurrency" in str(caught.value)
    assert fault_proxy.injected == 3


async def test_access_denied_is_not_retried(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied()
    locator = await put(storage, b"secret plans")
    fault_proxy.fail(5, status=403, code="AccessDenied", message="Access Denied")
    with pytest.raises(AccessDeniedError, match="s3:GetObject") as caught:
        await storage.get_value(locator)
    assert isinstance(caught.value, PermissionError)
    assert caught.value.locator == locator
    assert fault_proxy.injected == 1


async def test_rejected_credentials_say_where_credentials_come_from(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied()
    fault_proxy.fail(1, status=403, code="InvalidAccessKeyId", message="No such key id.")
    with pytest.raises(AccessDeniedError, match="AWS_ACCESS_KEY_ID"):
        await put(storage, b"x")


async def test_missing_object_and_bucket_are_not_found(
    make_storage: Callable[..., S3Storage],
) -> None:
    storage = make_storage()
    missing = {"bucket": storage.bucket, "key": f"sha256/ab/{'ab' * 32}"}
    with pytest.raises(NotFoundError, match="no object at s3://"):
        await storage.get_value(missing)
    with pytest.raises(NotFoundError):
        await storage.get_stream(missing)
    no_bucket = {"bucket": "lakery-no-such-bucket", "key": missing["key"]}
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        await storage.get_value(no_bucket)
    with pytest.raises(NotFoundError):
        await storage.get_stream(no_bucket)
    await storage.delete(no_bucket)  # nothing to delete is fine
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        await make_storage(bucket="lakery-no-such-bucket").put_value(
            [b""], size=0, sha256=hashlib.sha256(b"").hexdigest(), tags={}
        )


async def test_unreachable_endpoint(make_storage: Callable[..., S3Storage]) -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = make_storage(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(StorageError, match=r"after 2 attempts.*reachable"):
        await put(storage, b"x")


async def test_missing_credentials(
    make_storage: Callable[..., S3Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigurationError, match="no usable AWS credentials"):
        await put(make_storage(), b"x")


async def test_botocore_checks_download_checksums_when_asked(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    checking = proxied(response_checksum_validation="when_supported", max_attempts=2)
    data = random.Random(14).randbytes(6 * MiB)
    value = await put(checking, b"checked by botocore too")
    streamed = await checking.put_stream(HashingStream(chunks(data)), tags={})
    assert bytes(await checking.get_value(value)) == b"checked by botocore too"
    assert bytes(await checking.get_value(streamed)) == data  # copied with a whole CRC32

    fault_proxy.fail(1, method="GET", corrupt_body=True)  # damaged once: read again
    assert bytes(await checking.get_value(value)) == b"checked by botocore too"
    fault_proxy.fail(2, method="GET", corrupt_body=True)
    with pytest.raises(StorageError, match="after 2 attempts"):
        await checking.get_value(value)

    # by default lakery leaves the check to its own load (size and sha256 of the record)
    fault_proxy.fail(1, method="GET", corrupt_body=True)
    unchecked = await proxied().get_value(value)
    assert bytes(unchecked) != b"checked by botocore too"


@pytest.mark.parametrize(
    ("options", "match"),
    [({"profile": "no-such-profile"}, "no-such-profile"), ({"region": "not a region!"}, "region")],
)
async def test_bad_client_configuration(
    make_storage: Callable[..., S3Storage], options: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigurationError, match="cannot create the S3 client") as caught:
        await put(make_storage(**options), b"x")
    assert match in str(caught.value)


async def test_concurrency_is_bounded(
    proxied: Callable[..., S3Storage], fault_proxy: FaultProxy
) -> None:
    storage = proxied(max_concurrency=2)
    fault_proxy.latency = 0.05
    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(put, storage, f"value {i}".encode())
    assert fault_proxy.operations().count("PutObject") == 8
    assert fault_proxy.max_in_flight == 2
