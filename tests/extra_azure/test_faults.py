"""AzureBlobStorage through a proxy that answers 503 ServerBusy and cuts response bodies,
large streams in many blocks, and what an existing blob does to a write.

The proxy is the S3 tests' (tests/extra_aws/conftest.py): a real HTTP server between the
SDK and Azurite. Its error bodies are S3-style XML; the Azure SDK reads the status (and the
``x-ms-error-code`` header, absent here), which is all the storage relies on.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path

import pytest

from lakery.common.exceptions import StorageError
from lakery.core.storage import HashingStream
from lakery.extra.azure import AzureBlobStorage
from tests.extra_aws.conftest import FaultProxy
from tests.extra_azure.conftest import blob_names

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_503s_are_retried_for_puts_blocks_and_reads(
    make_storage: Callable[..., AzureBlobStorage],
    fault_proxy: FaultProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = make_storage(proxy=fault_proxy, stream_spool_dir=tmp_path)
    data = random.Random(3).randbytes(3 * MiB + 5)
    fault_proxy.fail(2, status=503, code="ServerBusy", method="PUT")
    with caplog.at_level(logging.INFO, logger="lakery.extra.azure"):
        locator = await storage.put_stream(HashingStream(chunks(data, 100_000)), tags={})
    assert fault_proxy.injected == 2
    assert "retry 1 of 4" in caplog.text
    fault_proxy.fail(2, status=503, code="ServerBusy", method="GET")
    assert bytes(await storage.get_value(locator)) == data
    fault_proxy.fail(1, status=500, code="InternalError", method="GET")
    reader = await storage.get_stream(locator)
    assert b"".join([bytes(c) async for c in reader]) == data
    assert fault_proxy.injected == 5


async def test_cut_bodies_are_resumed(
    make_storage: Callable[..., AzureBlobStorage], fault_proxy: FaultProxy
) -> None:
    storage = make_storage(proxy=fault_proxy)
    data = random.Random(4).randbytes(MiB + 77)
    locator = await storage.put_value([data], size=len(data), sha256=sha(data), tags={})
    fault_proxy.fail(3, method="GET", cut_body=True)
    reader = await storage.get_stream(locator)
    assert b"".join([bytes(c) async for c in reader]) == data
    assert fault_proxy.injected == 3
    fault_proxy.fail(1, method="GET", cut_body=True)
    assert bytes(await storage.get_value(locator)) == data


async def test_a_corrupted_body_is_not_returned(
    make_storage: Callable[..., AzureBlobStorage], fault_proxy: FaultProxy
) -> None:
    storage = make_storage(proxy=fault_proxy)
    data = b"precious" * 1000
    locator = await storage.put_value([data], size=len(data), sha256=sha(data), tags={})
    fault_proxy.fail(1, method="GET", corrupt_body=True)
    with pytest.raises(StorageError, match="sha256 mismatch"):
        await storage.get_value(locator)
    fault_proxy.fail(1, method="GET", corrupt_body=True)
    reader = await storage.get_stream(locator)
    with pytest.raises(StorageError, match="sha256 mismatch"):
        [c async for c in reader]


async def test_persistent_503s_give_up_with_a_storage_error(
    make_storage: Callable[..., AzureBlobStorage], fault_proxy: FaultProxy
) -> None:
    storage = make_storage(proxy=fault_proxy, max_attempts=3)
    fault_proxy.fail(10, status=503, code="ServerBusy", method="PUT")
    with pytest.raises(StorageError, match="after 3 attempts"):
        await storage.put_value([b"x"], size=1, sha256=sha(b"x"), tags={})
    assert fault_proxy.injected == 3


async def test_a_large_stream_in_many_blocks(
    make_storage: Callable[..., AzureBlobStorage], tmp_path: Path
) -> None:
    storage = make_storage(stream_spool_dir=tmp_path, upload_concurrency=3)
    data = random.Random(5).randbytes(24 * MiB + 3)
    locator = await storage.put_stream(HashingStream(chunks(data, 3 * 100_003)), tags={})
    assert locator["key"].endswith(sha(data))
    reader = await storage.get_stream(locator)
    hasher = hashlib.sha256()
    async for chunk in reader:
        assert len(chunk) <= storage.read_chunk_size
        hasher.update(chunk)
    assert hasher.hexdigest() == sha(data)
    assert list(tmp_path.iterdir()) == []  # the spool file is gone
    # the same stream again: nothing uploaded, the blob is marked as reused
    again = await storage.put_stream(HashingStream(chunks(data, MiB)), tags={})
    assert again == locator


async def test_a_large_value_in_blocks(make_storage: Callable[..., AzureBlobStorage]) -> None:
    storage = make_storage()
    data = random.Random(6).randbytes(5 * MiB + 1)
    parts = [data[:100], memoryview(data)[100:]]
    locator = await storage.put_value(parts, size=len(data), sha256=sha(data), tags={})
    assert bytes(await storage.get_value(locator)) == data
    assert await storage.put_value(parts, size=len(data), sha256=sha(data), tags={}) == locator


async def test_a_blob_of_the_wrong_size_at_a_content_address_is_reported(
    make_storage: Callable[..., AzureBlobStorage],
) -> None:
    storage = make_storage()
    wrong = await storage.put_value([b"short"], size=5, sha256=sha(b"short"), tags={})
    real = b"the real content"
    # someone wrote other bytes at the content address of `real`: lakery never overwrites
    target = storage._connection.connection_string
    from azure.storage.blob.aio import BlobClient

    key = (
        wrong["key"]
        .replace(sha(b"short"), sha(real))
        .replace(f"/{sha(b'short')[:2]}/", f"/{sha(real)[:2]}/")
    )
    async with BlobClient.from_connection_string(target or "", storage.container, key) as blob:
        await blob.upload_blob(b"not it")
    with pytest.raises(StorageError, match="holds 6 bytes"):
        await storage.put_value([real], size=len(real), sha256=sha(real), tags={})


async def test_failed_block_upload_leaves_no_visible_blob(
    make_storage: Callable[..., AzureBlobStorage], fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    storage = make_storage(proxy=fault_proxy, max_attempts=1, stream_spool_dir=tmp_path)
    data = random.Random(8).randbytes(3 * MiB)
    fault_proxy.fail(1, status=503, code="ServerBusy", method="PUT", query="comp=blocklist")
    with pytest.raises(StorageError):
        await storage.put_stream(HashingStream(chunks(data, MiB)), tags={})
    # Azure (and Azurite) list a blob with only uncommitted blocks when asked for them;
    # it holds no content and cannot be read, and Azure discards it after a week
    with pytest.raises(FileNotFoundError):
        await storage.get_stream({"container": storage.container, "key": _key(data)})
    assert [b async for b in storage.list_blobs()] == []
    assert list(tmp_path.iterdir()) == []
    assert all("sha256" in name for name in await blob_names(storage))


def _key(data: bytes) -> str:
    digest = sha(data)
    return f"sha256/{digest[:2]}/{digest}"
