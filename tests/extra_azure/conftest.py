"""Azure fixtures: a real Azurite blob service on 127.0.0.1 (in memory, for the whole
session, serving an account with a key of these tests), the fault-injecting proxy of the
S3 tests in front of it, and containers.

Azurite comes from npm (scripts/bootstrap.sh installs it into .venv/node); without it these
tests are skipped with a message saying how to install it, except in CI, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from lakery.extra.azure import AzureBlobStorage
from lakery.testing.azurite import azurite_command
from lakery.testing.azurite import azurite_connection_string
from lakery.testing.azurite import start_azurite
from lakery.testing.s3_server import stop_process
from tests.extra_aws.conftest import FaultProxy

ACCOUNT = "lakerytest"
ACCOUNT_KEY = "bGFrZXJ5LXRlc3Qta2V5LTlmMmM0ZTdhLXNlY3JldC1ub3QtZm9yLWxvZ3M="
MiB = 1 << 20


@pytest.fixture(scope="session", autouse=True)
def azure_environment() -> Iterator[None]:
    """No Azure settings of the machine; no proxies."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AZURE_"):
                patch.delenv(name)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.setenv("no_proxy", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def azurite_endpoint(azure_environment: None) -> Iterator[str]:
    """The blob endpoint of an Azurite running for the whole session."""
    if azurite_command() is None:
        message = "Azurite is not installed: run scripts/bootstrap.sh (npm install azurite)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    process, url = start_azurite(accounts=f"{ACCOUNT}:{ACCOUNT_KEY}")
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def connection_string(azurite_endpoint: str) -> str:
    return azurite_connection_string(azurite_endpoint, ACCOUNT, ACCOUNT_KEY)


@pytest.fixture(scope="session")
def _azure_proxy(azurite_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(int(azurite_endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def fault_proxy(_azure_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of Azurite, no faults armed, an empty log."""
    _azure_proxy.reset()
    yield _azure_proxy
    _azure_proxy.reset()


@pytest.fixture
async def container(connection_string: str) -> str:
    """A new, empty container."""
    name = f"lakery-{uuid.uuid4().hex[:12]}"
    async with AzureBlobStorage(name, connection_string=connection_string) as storage:
        await storage.create_container()
    return name


@pytest.fixture
async def make_storage(
    connection_string: str, container: str
) -> AsyncIterator[Callable[..., AzureBlobStorage]]:
    """AzureBlobStorages on the test container (small blocks, fast retries); closed after.
    ``through_proxy=True`` reaches Azurite through the fault proxy."""
    made: list[AzureBlobStorage] = []
    proxies: list[FaultProxy] = []

    def make(*, proxy: FaultProxy | None = None, **options: Any) -> AzureBlobStorage:
        conn = connection_string
        if proxy is not None:
            conn = azurite_connection_string(proxy.url, ACCOUNT, ACCOUNT_KEY)
            proxies.append(proxy)
        settings: dict[str, Any] = {
            "connection_string": conn,
            "block_size": 1 * MiB,
            "single_put_size": 1 * MiB,
            "read_chunk_size": 256 * 1024,
            "retry_base_delay": 0.01,
            "retry_max_delay": 0.05,
        }
        settings.update(options)
        storage = AzureBlobStorage(settings.pop("container", container), **settings)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


async def blob_names(storage: AzureBlobStorage) -> list[str]:
    """Every blob of the storage's container, committed or not (raw SDK)."""
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient.from_connection_string(
        storage._connection.connection_string or "", storage.container
    ) as client:
        return sorted([b.name async for b in client.list_blobs(include=["uncommittedblobs"])])
