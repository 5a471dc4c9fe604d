"""One client per event loop: created lazily, reused, closed with its loop, never reused dead."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import threading
import warnings
from typing import Any

import pytest

from lakery.common.exceptions import ConfigurationError
from lakery.extra.aws import S3Storage


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def round_trip(storage: S3Storage, data: bytes) -> Any:
    locator = await storage.put_value([data], size=len(data), sha256=sha(data), tags={})
    assert bytes(await storage.get_value(locator)) == data
    return (await storage._calls.clients.get()).client


@pytest.fixture
def storage(moto_endpoint: str, raw_bucket: str) -> S3Storage:
    return S3Storage(
        raw_bucket, endpoint_url=moto_endpoint, region="us-east-1", addressing_style="path"
    )


@pytest.fixture
def raw_bucket(moto_endpoint: str) -> str:
    """A bucket made with a throwaway loop, since these tests run their own loops."""
    import uuid

    name = f"lakery-loops-{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        storage = S3Storage(
            name, endpoint_url=moto_endpoint, region="us-east-1", addressing_style="path"
        )
        async with storage:
            await storage.call("CreateBucket", None)

    asyncio.run(create())
    return name


def test_one_client_per_loop_reused_within_it(storage: S3Storage) -> None:
    async def many() -> set[int]:
        clients = {id(await round_trip(storage, f"value {i}".encode())) for i in range(5)}
        await asyncio.gather(*(round_trip(storage, b"concurrent") for _ in range(5)))
        return clients

    assert len(asyncio.run(many())) == 1
    assert storage._calls.clients.created == 1


def test_asyncio_run_twice_gets_a_fresh_client(storage: S3Storage) -> None:
    first = asyncio.run(round_trip(storage, b"first run"))
    loop_clients = list(storage._calls.clients._clients.values())
    assert loop_clients[0].closed, "asyncio.run's shutdown closes the loop's client"
    second = asyncio.run(round_trip(storage, b"second run"))
    assert first is not second
    assert storage._calls.clients.created == 2
    assert len(storage._calls.clients._clients) == 1  # the dead loop's entry is gone


def test_loop_closed_without_shutdown_is_not_reused(storage: S3Storage) -> None:
    loop = asyncio.new_event_loop()
    first = loop.run_until_complete(round_trip(storage, b"manual loop"))
    loop.close()  # no shutdown_asyncgens: the client cannot be closed, only dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        second = asyncio.run(round_trip(storage, b"after a closed loop"))
        gc.collect()
    assert first is not second


def test_close_and_context_manager(storage: S3Storage) -> None:
    async def main() -> None:
        async with storage:
            first = await round_trip(storage, b"in context")
        again = await round_trip(storage, b"usable after close")
        assert again is not first
        await storage.close()
        await storage.close()  # closing twice is fine

    asyncio.run(main())
    assert storage._calls.clients.created == 2


def test_two_loops_in_two_threads_at_once(storage: S3Storage) -> None:
    """E.g. a Dagster resource's loop thread and the main thread's asyncio.run."""
    started = threading.Barrier(2)
    results: dict[str, Any] = {}

    def worker(name: str) -> None:
        async def main() -> None:
            started.wait(timeout=10)
            for i in range(3):
                results[name] = await round_trip(storage, f"{name} {i}".encode())

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            results[name] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(isinstance(r, BaseException) for r in results.values()), results
    assert results["a"] is not results["b"]
    assert storage._calls.clients.created == 2


def test_outside_an_event_loop_is_a_clear_error(storage: S3Storage) -> None:
    from lakery.extra.aws.client import _running_loop

    with pytest.raises(ConfigurationError, match="asyncio"):
        _running_loop()


def test_loop_shutdown_closes_the_client(storage: S3Storage) -> None:
    """Any runner that shuts down async generators (asyncio.run, Runner, anyio) closes it."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(round_trip(storage, b"runner loop"))
        assert not any(c.closed for c in storage._calls.clients._clients.values())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert all(c.closed for c in storage._calls.clients._clients.values())
