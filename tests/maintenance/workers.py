"""Processes for the crash and concurrency tests (run with ``python -m``).

``zygote URL ROOT LOG``: imports everything once, then for each ``go SEED`` line on stdin
forks a child that saves a stream of objects until it is killed, prints the child's pid,
waits for it, and prints ``exit STATUS``. Each child appends ``saved ID DIGEST`` to LOG
after each commit, and ``deleting ID`` before each delete.

``worker URL ROOT INDEX COUNT OUT``: saves COUNT objects in batches, loads every batch back,
deletes some of its objects and later saves their content again; writes what it saved
(and still expects to exist) to OUT as JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import Registry
from lakery import new_loader
from lakery import new_saver
from lakery.builtin import FileStorage
from lakery.builtin import StorableStream
from lakery.maintenance import delete_manifests
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import DocUnpacker

REUSE_AFTER = 1.7
"""Seconds after a delete when a worker saves the deleted content again: past the grace
period of the concurrent collections, so the blob may be garbage being deleted right then."""
SHARED = [f"shared body {i} ".encode() * (50 + i) for i in range(12)]
"""Content that every process saves again and again (deduplicated, reused after deletes)."""


def make_engine(url: str) -> AsyncEngine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, pool_size=2)
    engine = create_async_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine.sync_engine, "connect")
    def _busy(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA busy_timeout = 60000")

    return engine


def registry_for(root: str) -> Registry:
    files = FileStorage(root, name="files")
    return Registry(modules=["lakery.builtin"], storages=[files], unpackers=[DocUnpacker()])


def storage_for(body: bytes) -> str:
    """Half the content in files, half in the database; the same content always in one."""
    return "files" if hashlib.sha256(body).digest()[0] % 2 else "lakery.database@v1"


async def numbers(count: int) -> AsyncIterator[int]:
    for i in range(count):
        yield i
        if i % 500 == 0:
            await asyncio.sleep(0)


def stream_digest(count: int) -> str:
    return hashlib.sha256(json.dumps(list(range(count))).encode()).hexdigest()


def digest_of(obj: Any) -> str:
    if isinstance(obj, Doc):
        return obj.digest()
    return stream_digest(len(obj))


# -- crash ---------------------------------------------------------------------------------


async def save_until_killed(url: str, root: str, log_path: str, seed: int) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    registry = registry_for(root)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    mine: list[str] = []
    number = 0
    while True:
        objects: list[Any] = []
        digests: list[str] = []
        for _ in range(rng.randint(1, 6)):
            number += 1
            if rng.random() < 0.35:
                body = rng.choice(SHARED)
            else:
                body = rng.randbytes(rng.randint(1, 30_000))
            doc = Doc({"seed": seed, "n": number}, body, body_storage=storage_for(body))
            objects.append(doc)
            digests.append(doc.digest())
        if rng.random() < 0.3:
            count = rng.randint(1, 20_000)
            objects.append(StorableStream(numbers(count), storage="files"))
            digests.append(stream_digest(count))
        async with sessions() as session:
            async with new_saver(session=session, registry=registry) as saver:
                futures = [saver.save_soon(obj) for obj in objects]
        lines = [f"saved {f.get().id} {d}\n" for f, d in zip(futures, digests, strict=True)]
        os.write(log, "".join(lines).encode())
        mine.extend(str(f.get().id) for f in futures)
        if len(mine) > 3 and rng.random() < 0.25:
            victim = mine.pop(rng.randrange(len(mine)))
            os.write(log, f"deleting {victim}\n".encode())
            async with sessions() as session:
                await delete_manifests(session, ids=[victim])


def zygote(url: str, root: str, log_path: str) -> None:
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "go":
            return
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(save_until_killed(url, root, log_path, int(argument)))
            except BaseException as exc:  # only a kill should end a child
                sys.stderr.write(f"child {os.getpid()} failed: {exc!r}\n")
                sys.stderr.flush()
                os._exit(3)
            os._exit(0)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


# -- concurrency -------------------------------------------------------------------------


async def work(url: str, root: str, index: int, count: int, out: str) -> None:
    rng = random.Random(index)
    engine = make_engine(url)
    registry = registry_for(root)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    expected: dict[str, str] = {}
    bodies: dict[str, bytes] = {}
    deleted: list[tuple[float, bytes]] = []
    reused = checked = 0
    number = 0
    started = time.monotonic()
    while number < count:
        docs = []
        for _ in range(min(25, count - number)):
            number += 1
            if deleted and deleted[0][0] < time.monotonic() - REUSE_AFTER and rng.random() < 0.5:
                body = deleted.pop(0)[1]  # content deleted a while ago: gc may be on it now
                reused += 1
            elif rng.random() < 0.3:
                body = rng.choice(SHARED)
            else:
                body = rng.randbytes(rng.randint(1, 4000))
            docs.append(Doc({"worker": index, "n": number}, body, body_storage=storage_for(body)))
        async with sessions() as session:
            async with new_saver(session=session, registry=registry) as saver:
                futures = [saver.save_soon(doc) for doc in docs]
            records = [f.get() for f in futures]
            async with new_loader(session=session, registry=registry) as loader:
                loaded = [loader.load_soon(record, Doc) for record in records]
        for doc, record, future in zip(docs, records, loaded, strict=True):
            assert future.get() == doc, f"worker {index}: {record.id} loaded back different"
            expected[str(record.id)] = doc.digest()
            bodies[str(record.id)] = doc.body
        checked += len(docs)
        if len(expected) > 30 and rng.random() < 0.4:
            victims = rng.sample(sorted(expected), 5)
            async with sessions() as session:
                await delete_manifests(session, ids=victims)
            for victim in victims:
                del expected[victim]
                deleted.append((time.monotonic(), bodies.pop(victim)))
        await asyncio.sleep(0.04)  # spread the work over a few grace periods
    await engine.dispose()
    with open(out, "w") as file:
        elapsed = time.monotonic() - started
        result = {"expected": expected, "checked": checked, "reused": reused, "seconds": elapsed}
        json.dump(result, file)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "zygote":
        zygote(*args)
    else:
        url, root, index, count, out = args
        asyncio.run(work(url, root, int(index), int(count), out))
