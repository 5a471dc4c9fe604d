"""Throughput of lakery's S3Storage next to raw aiobotocore, on the same bytes, in one run.

    .venv/bin/python benchmarks/s3_throughput.py [--small-count 200] [--small-kib 64]
                                                 [--stream-mib 64] [--part-mib 8] [--repeat 3]

Starts a moto S3 server (``python -m moto.server``) on a free 127.0.0.1 port with dummy
credentials, so nothing leaves the machine, and measures:

- small objects: `put_value` / `get_value` of many small values, at most `--concurrency`
  at a time, next to `put_object` of the same bytes and `get_object` of the same objects;
- a large object: `put_stream` of a stream of 1 MiB chunks (multipart upload to a
  temporary key, then a server-side copy to its content address) and `put_value` (one
  PUT), next to one `put_object`; `get_stream` (ranged GETs) and `get_value`, next to
  one `get_object` (of the same object) read in 1 MiB chunks.

Each figure is the median of `--repeat` runs, each with fresh bytes (so that lakery's
deduplication never skips work). moto is a single-threaded Python server, so the figures
measure moto as much as the client: compare the columns, not the absolute values.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

MiB = 1 << 20
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("moto did not start")


def fresh(data: bytes, run: int) -> bytes:
    """The same size and nearly the same bytes, but a different hash for each run."""
    return run.to_bytes(4, "little") + data[4:]


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

    def __init__(self, storage: Any, raw: Any, concurrency: int) -> None:
        self.storage = storage
        self.raw = raw
        self.concurrency = concurrency
        self.results: dict[str, list[float]] = {}

    async def measure(self, name: str, actions: list[Callable[[], Awaitable[Any]]]) -> None:
        start = time.perf_counter()
        await bounded(self.concurrency, actions)
        self.results.setdefault(name, []).append(time.perf_counter() - start)

    async def small(self, values: list[bytes], run_number: int) -> None:
        from functools import partial

        storage, raw = self.storage, self.raw
        keys = [f"raw/small/{run_number}/{i}" for i in range(len(values))]
        puts = [
            partial(storage.put_value, [v], size=len(v), sha256=sha(v), tags={}) for v in values
        ]
        locators: list[Any] = []

        async def put_and_keep(put: Callable[[], Awaitable[Any]]) -> None:
            locators.append(await put())

        await self.measure("small put", [partial(put_and_keep, p) for p in puts])
        raw_puts = [
            partial(raw.put_object, Bucket="bench", Key=k, Body=v)
            for k, v in zip(keys, values, strict=True)
        ]
        await self.measure("small put raw", raw_puts)
        await self.measure("small get", [partial(storage.get_value, loc) for loc in locators])
        lakery_keys = [loc["key"] for loc in locators]  # raw reads the very same objects
        await self.measure("small get raw", [partial(self.raw_get, k, None) for k in lakery_keys])

    async def large(self, data: bytes, run_number: int) -> None:
        from functools import partial

        from lakery.core.storage import HashingStream

        storage, raw = self.storage, self.raw
        locator: dict[str, Any] = {}

        async def put_stream() -> None:
            locator.update(await storage.put_stream(HashingStream(chunks(data)), tags={}))

        async def read_stream() -> None:
            async for _ in await storage.get_stream(locator):
                pass

        as_value = fresh(data, run_number + 1000)
        raw_key = f"raw/large/{run_number}"
        await self.measure("large put_stream", [put_stream])
        value_put = partial(
            storage.put_value, [as_value], size=len(as_value), sha256=sha(as_value), tags={}
        )
        await self.measure("large put_value", [value_put])
        await self.measure(
            "large put raw", [partial(raw.put_object, Bucket="bench", Key=raw_key, Body=data)]
        )
        await self.measure("large get_stream", [read_stream])
        await self.measure("large get_value", [partial(storage.get_value, locator)])
        await self.measure("large get raw", [partial(self.raw_get, locator["key"], MiB)])

    async def raw_get(self, key: str, chunk: int | None) -> None:
        response = await self.raw.get_object(Bucket="bench", Key=key)
        async with response["Body"] as body:
            if chunk is None:
                await body.read()
            else:
                async for _ in body.iter_chunks(chunk):
                    pass


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def run(args: argparse.Namespace, endpoint: str) -> list[tuple[str, int, float, float, int]]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    from lakery.extra.aws import S3Storage

    storage = S3Storage(
        "bench",
        prefix="lakery",
        endpoint_url=endpoint,
        region=REGION,
        addressing_style="path",
        part_size=args.part_mib * MiB,
        max_concurrency=args.concurrency,
    )
    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=args.concurrency)
    small = [os.urandom(args.small_kib * 1024) for _ in range(args.small_count)]
    large = os.urandom(args.stream_mib * MiB)
    session = AioSession()
    async with (
        session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint, config=config
        ) as raw,
        storage,
    ):
        await raw.create_bucket(Bucket="bench")
        bench = Bench(storage, raw, args.concurrency)
        for run_number in range(args.repeat):
            await bench.small([fresh(v, run_number) for v in small], run_number)
            await bench.large(fresh(large, run_number), run_number)

    small_bytes = args.small_count * args.small_kib * 1024
    rows = []
    for name, raw_name, size, count in [
        ("small put", "small put raw", small_bytes, args.small_count),
        ("small get", "small get raw", small_bytes, args.small_count),
        ("large put_stream", "large put raw", len(large), 1),
        ("large put_value", "large put raw", len(large), 1),
        ("large get_stream", "large get raw", len(large), 1),
        ("large get_value", "large get raw", len(large), 1),
    ]:
        ours = statistics.median(bench.results[name])
        theirs = statistics.median(bench.results[raw_name])
        rows.append((name, size, ours, theirs, count))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-count", type=int, default=200)
    parser.add_argument("--small-kib", type=int, default=64)
    parser.add_argument("--stream-mib", type=int, default=64)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="benchmark",
        AWS_SECRET_ACCESS_KEY="benchmark",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    process, endpoint = start_moto()
    try:
        rows = asyncio.run(run(args, endpoint))
    finally:
        process.terminate()
        process.wait()

    print(
        f"moto S3 server on {endpoint}; {args.small_count} x {args.small_kib} KiB objects, "
        f"{args.stream_mib} MiB object ({args.part_mib} MiB parts), concurrency "
        f"{args.concurrency}, median of {args.repeat} runs"
    )
    header = ("operation", "lakery MB/s", "raw MB/s", "lakery/raw", "lakery ops/s", "raw ops/s")
    print("{:<18} {:>12} {:>10} {:>11} {:>13} {:>10}".format(*header))
    for name, size, ours, theirs, count in rows:
        print(
            f"{name:<18} {size / ours / 1e6:>12.1f} {size / theirs / 1e6:>10.1f} "
            f"{theirs / ours:>11.0%} {count / ours:>13.1f} {count / theirs:>10.1f}"
        )


if __name__ == "__main__":
    main()
