"""GCS fixtures: a real gcp-storage-emulator on 127.0.0.1 (in memory, for the whole
session), the fault-injecting proxy of the S3 tests in front of it, and buckets.

The emulator comes from the package index (the ``dev`` group); requests to it are
anonymous, as with any GCS emulator. No Google settings of the machine are read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from lakery.extra.gcs import GCSStorage
from lakery.testing.gcs_emulator import start_gcs_emulator
from lakery.testing.s3_server import stop_process
from tests.extra_aws.conftest import FaultProxy

MiB = 1 << 20


@pytest.fixture(scope="session", autouse=True)
def gcs_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No Google settings of the machine; no proxies."""
    home = tmp_path_factory.mktemp("gcloud")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
            patch.delenv(name, raising=False)
        patch.setenv("CLOUDSDK_CONFIG", str(home))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.setenv("no_proxy", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def gcs_endpoint(gcs_environment: None) -> Iterator[str]:
    """The endpoint of a gcp-storage-emulator running for the whole session."""
    try:
        import gcp_storage_emulator  # noqa: F401
    except ImportError:
        message = "gcp-storage-emulator is not installed: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    process, url = start_gcs_emulator()
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def _gcs_proxy(gcs_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(gcs_endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def fault_proxy(_gcs_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of the emulator, no faults armed, an empty log."""
    _gcs_proxy.reset()
    yield _gcs_proxy
    _gcs_proxy.reset()


@pytest.fixture
async def bucket(gcs_endpoint: str) -> str:
    """A new, empty bucket."""
    name = f"lakery-{uuid.uuid4().hex[:12]}"
    async with GCSStorage(name, endpoint=gcs_endpoint) as storage:
        await storage.create_bucket()
    return name


@pytest.fixture
async def make_storage(gcs_endpoint: str, bucket: str) -> AsyncIterator[Callable[..., GCSStorage]]:
    """GCSStorages on the test bucket (small chunks, fast retries); closed after.
    ``proxy=fault_proxy`` reaches the emulator through the fault proxy."""
    made: list[GCSStorage] = []

    def make(*, proxy: FaultProxy | None = None, **options: Any) -> GCSStorage:
        settings: dict[str, Any] = {
            "endpoint": proxy.url if proxy is not None else gcs_endpoint,
            "chunk_size": 1 * MiB,
            "single_put_size": 1 * MiB,
            "read_chunk_size": 256 * 1024,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
        }
        settings.update(options)
        storage = GCSStorage(settings.pop("bucket", bucket), **settings)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


async def object_names(storage: GCSStorage) -> list[str]:
    """Every object of the storage's bucket (raw gcloud-aio-storage client)."""
    from gcloud.aio.storage import Storage as Client

    async with Client(api_root=storage.endpoint) as client:
        page = await client.list_objects(storage.bucket)
    return sorted(item["name"] for item in page.get("items") or [])
