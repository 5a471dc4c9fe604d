"""Throughput of lakery's S3Storage next to raw aiobotocore, on the same bytes, in one run.

A moto S3 server (``python -m moto.server``) runs on a free 127.0.0.1 port with dummy
credentials, so nothing leaves the machine. Each repeat, with fresh bytes (so that
deduplication never skips work), measures one after the other:

- small objects: `put_value` / `get_value` of many small values, at most `concurrency` at a
  time, next to `put_object` of the same bytes and `get_object` of the very same objects;
- a multi-part stream of 1 MiB chunks, next to a raw multipart upload of the same bytes in
  parts of the same size, `upload_concurrency` parts at a time: `put_stream` as configured
  by default (spooled to a local file while hashed, then uploaded from it to the content
  address), and `put_stream` with spooling off (a multipart upload to a temporary key,
  then a server-side copy to the content address); and, for information, `put_stream`
  of content that is stored already (spooled, found by a HEAD, refreshed in place);
- the large object as one value: `put_value` (one PUT) next to one `put_object`;
- reads of the large object: `get_value` next to one `get_object` read whole; `get_stream`
  (one streamed GET) next to one `get_object` iterated in 1 MiB chunks.

Both clients send a checksum with every upload (the raw client botocore's default CRC32,
computed on the event loop; lakery the SHA-256 it already has with a value's PUT, and
CRC32s computed in worker threads with parts), and both leave downloads unchecked by
botocore (`response_checksum_validation="when_required"`, the storage's default: lakery's
loads check the SHA-256 themselves; the reads timed here check nothing on either side).

moto is a single-threaded Python server on the same two cores as the client, so the
figures measure moto as much as the client: compare the columns, not the absolute values.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks.common import MiB
from benchmarks.common import Row
from benchmarks.common import isolated_aws_environment
from lakery.testing.s3_server import start_moto_server
from lakery.testing.s3_server import stop_process

REGION = "us-east-1"
UPLOAD_CONCURRENCY = 4


def fresh(data: bytes, run: int) -> bytes:
    """The same size and nearly the same bytes, but a different hash for each run."""
    return run.to_bytes(4, "little") + data[4:]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), MiB):
        yield data[start : start + MiB]


async def bounded(limit: int, actions: list[Callable[[], Awaitable[Any]]]) -> None:
    slots = asyncio.Semaphore(limit)

    async def one(action: Callable[[], Awaitable[Any]]) -> None:
        async with slots:
            await action()

    await asyncio.gather(*(one(a) for a in actions))


class Bench:
    """One lakery storage and one raw client on the same server, and the timings so far."""

    def __init__(
        self, storage: Any, copying: Any, raw: Any, concurrency: int, part_size: int
    ) -> None:
        self.storage = storage
        self.copying = copying
        """The same storage with spooling off: streams go through a temporary object."""
        self.raw = raw
        self.concurrency = concurrency
        self.part_size = part_size
        self.results: dict[str, list[float]] = {}

    async def measure(self, name: str, actions: list[Callable[[], Awaitable[Any]]]) -> None:
        start = time.perf_counter()
        await bounded(self.concurrency, actions)
        self.results.setdefault(name, []).append(time.perf_counter() - start)

    async def small(self, values: list[bytes], run_number: int) -> None:
        storage, raw = self.storage, self.raw
        keys = [f"raw/small/{run_number}/{i}" for i in range(len(values))]
        locators: list[Any] = []

        async def put_and_keep(value: bytes) -> None:
            locators.append(
                await storage.put_value([value], size=len(value), sha256=sha(value), tags={})
            )

        raw_puts = [
            partial(raw.put_object, Bucket="bench", Key=k, Body=v)
            for k, v in zip(keys, values, strict=True)
        ]
        lakery_puts = [partial(put_and_keep, v) for v in values]
        # Alternate who goes first from one run to the next.
        pairs = [("small put", lakery_puts), ("small put raw", raw_puts)]
        for name, actions in pairs if run_number % 2 == 0 else pairs[::-1]:
            await self.measure(name, actions)
        lakery_keys = [loc["key"] for loc in locators]  # raw reads the very same objects
        gets = [
            ("small get", [partial(storage.get_value, loc) for loc in locators]),
            ("small get raw", [partial(self.raw_get, k, None) for k in lakery_keys]),
        ]
        for name, actions in gets if run_number % 2 == 0 else gets[::-1]:
            await self.measure(name, actions)

    async def large(self, data: bytes, run_number: int) -> None:
        from lakery.core.storage import HashingStream

        storage, raw = self.storage, self.raw
        locator: dict[str, Any] = {}

        async def put_stream() -> None:
            locator.update(await storage.put_stream(HashingStream(chunks(data)), tags={}))

        copied = fresh(data, run_number + 3000)

        async def put_stream_copying() -> None:
            await self.copying.put_stream(HashingStream(chunks(copied)), tags={})

        async def put_stream_again() -> None:  # after put_stream: the content is stored
            await storage.put_stream(HashingStream(chunks(data)), tags={})

        async def read_stream() -> None:
            async for _ in await storage.get_stream(locator):
                pass

        as_value = fresh(data, run_number + 1000)
        value_put = partial(
            storage.put_value, [as_value], size=len(as_value), sha256=sha(as_value), tags={}
        )
        raw_value = fresh(data, run_number + 2000)
        puts = [
            ("large put_stream", [put_stream]),
            (
                "large put multipart raw",
                [partial(self.raw_multipart, f"raw/mp/{run_number}", data)],
            ),
            ("large put_stream no spool", [put_stream_copying]),
            ("large put_value", [value_put]),
            (
                "large put raw",
                [
                    partial(
                        raw.put_object,
                        Bucket="bench",
                        Key=f"raw/large/{run_number}",
                        Body=raw_value,
                    )
                ],
            ),
        ]
        for name, actions in puts if run_number % 2 == 0 else puts[::-1]:
            await self.measure(name, actions)
        await self.measure("large put_stream stored", [put_stream_again])
        gets = [
            ("large get_stream", [read_stream]),
            ("large get_value", [partial(storage.get_value, locator)]),
            ("large get raw", [partial(self.raw_get, locator["key"], None)]),
            ("large get streamed raw", [partial(self.raw_get, locator["key"], MiB)]),
        ]
        for name, actions in gets if run_number % 2 == 0 else gets[::-1]:
            await self.measure(name, actions)

    async def raw_get(self, key: str, chunk: int | None) -> None:
        response = await self.raw.get_object(Bucket="bench", Key=key)
        async with response["Body"] as body:
            if chunk is None:
                await body.read()
            else:
                async for _ in body.iter_chunks(chunk):
                    pass

    async def raw_multipart(self, key: str, data: bytes) -> None:
        """A plain multipart upload of `data` (what a stream upload costs without lakery)."""
        raw = self.raw
        upload = await raw.create_multipart_upload(Bucket="bench", Key=key)
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        slots = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def part(number: int, start: int) -> None:
            async with slots:
                body = data[start : start + self.part_size]
                done = await raw.upload_part(
                    Bucket="bench", Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )
                parts.append({"PartNumber": number, "ETag": done["ETag"]})

        starts = range(0, len(data), self.part_size)
        await asyncio.gather(*(part(n, s) for n, s in enumerate(starts, start=1)))
        parts.sort(key=lambda p: p["PartNumber"])
        await raw.complete_multipart_upload(
            Bucket="bench", Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )


async def _measure(
    endpoint: str,
    *,
    small_count: int,
    small_size: int,
    stream_size: int,
    part_size: int,
    concurrency: int,
    repeats: int,
    log: Any,
) -> dict[str, list[float]]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    from lakery.extra.aws import S3Storage

    options: dict[str, Any] = {
        "prefix": "lakery",
        "endpoint_url": endpoint,
        "region": REGION,
        "addressing_style": "path",
        "part_size": part_size,
        "upload_concurrency": UPLOAD_CONCURRENCY,
        "max_concurrency": concurrency,
    }
    storage = S3Storage("bench", **options)
    copying = S3Storage("bench", **options, stream_spool_max_bytes=None)
    # Checksums as the storage sends and checks them (see the module docstring).
    config = AioConfig(
        s3={"addressing_style": "path"},
        max_pool_connections=concurrency,
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_required",
    )
    small = [os.urandom(small_size) for _ in range(small_count)]
    large = os.urandom(stream_size)
    session = AioSession()
    async with (
        session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint, config=config
        ) as raw,
        storage,
        copying,
    ):
        await raw.create_bucket(Bucket="bench")
        bench = Bench(storage, copying, raw, concurrency, part_size)
        await bench.small(small[:5], 99)  # warm up connections on both sides
        bench.results.clear()
        for run_number in range(repeats):
            await bench.small([fresh(v, run_number) for v in small], run_number)
            await bench.large(fresh(large, run_number), run_number)
            log(f"  s3 repeat {run_number + 1}/{repeats} done")
    return bench.results


PAIRS = [
    # (lakery operation, raw operation, small?)
    ("small put", "small put raw", True),
    ("small get", "small get raw", True),
    ("large put_stream", "large put multipart raw", False),
    ("large put_stream no spool", "large put multipart raw", False),
    ("large put_stream stored", "large put multipart raw", False),
    ("large put_value", "large put raw", False),
    ("large get_stream", "large get streamed raw", False),
    ("large get_value", "large get raw", False),
]


def run(
    *,
    small_count: int,
    small_size: int,
    stream_size: int,
    part_size: int,
    concurrency: int,
    repeats: int,
    log: Any = print,
) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    with isolated_aws_environment():
        process, endpoint = start_moto_server()
        try:
            results = asyncio.run(
                _measure(
                    endpoint,
                    small_count=small_count,
                    small_size=small_size,
                    stream_size=stream_size,
                    part_size=part_size,
                    concurrency=concurrency,
                    repeats=repeats,
                    log=log,
                )
            )
        finally:
            stop_process(process)
    rows = []
    for ours, theirs, is_small in PAIRS:
        size = small_count * small_size if is_small else stream_size
        what = (
            f"{small_count} x {small_size // 1024} KiB"
            if is_small
            else f"{stream_size // MiB} MiB, {part_size // MiB} MiB parts"
        )
        rows.append(
            Row(
                "s3",
                f"{ours} ({what})",
                "MB/s",
                True,
                [size / s / 1e6 for s in results[ours]],
                [size / s / 1e6 for s in results[theirs]],
                f"aiobotocore {theirs.removeprefix('small ').removeprefix('large ')}",
                goal="" if "stored" in ours else "overhead < 15%",
                goal_ratio=None if "stored" in ours else 1 / 1.15,
                extra={"bytes": size, "concurrency": concurrency},
            )
        )
    return rows
