"""Fault injection: failing and torn writes, failing and truncated reads, failing deletes,
streams cancelled midway, commits that fail. After each: nothing visible is broken, a retry
stores the same content once, and gc removes exactly the unreferenced blobs."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ContentRecord
from lakery import IntegrityError
from lakery import LakeryError
from lakery import Registry
from lakery import new_saver
from lakery.builtin import FileStorage
from lakery.builtin import StorableStream
from lakery.core.storage import Storage
from lakery.maintenance import delete_manifests
from tests.maintenance.faults import FailingCommitSession
from tests.maintenance.faults import FaultyStorage
from tests.maintenance.faults import InjectedFault
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import DocUnpacker
from tests.maintenance.helpers import assert_consistent
from tests.maintenance.helpers import assert_gc_exact
from tests.maintenance.helpers import blobs
from tests.maintenance.helpers import gc_after_grace
from tests.maintenance.helpers import leftover_files
from tests.maintenance.helpers import load_all


class Setup:
    def __init__(self, engine: AsyncEngine, root: Path) -> None:
        self.files = FileStorage(root, name="files")
        self.faulty = FaultyStorage(self.files)
        self.registry = Registry(
            modules=["lakery.builtin"], storages=[self.faulty], unpackers=[DocUnpacker()]
        )
        self.sessions = async_sessionmaker(engine, class_=FailingCommitSession)
        self.database = self.registry.get_storage("lakery.database@v1")

    @property
    def storages(self) -> list[Storage]:
        return [self.faulty, self.database]

    async def save(self, objects: list[Any], session: Any = None) -> list[Any]:
        own = session is None
        session = session or self.sessions()
        try:
            async with new_saver(session=session, registry=self.registry) as saver:
                futures = [saver.save_soon(obj) for obj in objects]
        finally:
            if own:
                await session.close()
        return [f.get() for f in futures]


def doc(i: int, body: bytes | None = None) -> Doc:
    return Doc({"i": i}, body or f"body number {i}".encode() * 50, body_storage="faulty")


async def items(values: list[int]) -> AsyncIterator[int]:
    for value in values:
        yield value
        await anyio.lowlevel.checkpoint()


def stream(seed: int) -> StorableStream[int]:
    values = list(range(seed, seed + 3000))
    return StorableStream(items(values), storage="faulty")


async def baseline(setup: Setup) -> None:
    """Four documents and a stream, one document deleted (its blobs are garbage)."""
    records = await setup.save([doc(0), doc(1), doc(2), doc(3), stream(100)])
    async with setup.sessions() as session:
        await delete_manifests(session, ids=[records[3].id])


def batch() -> list[Any]:
    """Objects that write new content, share content with the baseline, and stream."""
    return [doc(10), doc(11, body=b"body number 1" * 50), doc(12), stream(500)]


async def expect_failure(setup: Setup, objects: list[Any]) -> None:
    with pytest.raises((LakeryError, OSError)):
        await setup.save(objects)


async def after_fault(setup: Setup, retry: list[Any] | None) -> None:
    """What must hold after any fault."""
    await assert_consistent(setup.sessions, setup.registry)
    if retry is not None:
        records = await setup.save(retry)
        loaded = await load_all(setup.sessions, setup.registry)
        for record, obj in zip(records, retry, strict=True):
            if isinstance(obj, Doc):
                assert loaded[record.id] == obj
            else:
                assert len(loaded[record.id]) == 3000
        async with setup.sessions() as session:
            stored = await blobs(session, setup.faulty)
        for record in records:  # the retried content is stored, complete, once
            for content in record.contents:
                if content.storage_name == "faulty":
                    assert stored[content.content_hash] == content.content_size
    await assert_gc_exact(setup.sessions, setup.registry, setup.storages)
    assert leftover_files(setup.files.root) == []
    await assert_consistent(setup.sessions, setup.registry)


@pytest.fixture
async def setup(engine: AsyncEngine, tmp_path: Path) -> Setup:
    made = Setup(engine, tmp_path / "files")
    await baseline(made)
    FailingCommitSession.injected = 0
    return made


@pytest.mark.parametrize(("nth", "mode"), [(1, "error"), (3, "error"), (2, "truncate")])
async def test_value_write_fails(setup: Setup, nth: int, mode: str) -> None:
    setup.faulty.arm("write", nth, mode)
    await expect_failure(setup, batch()[:3])
    assert setup.faulty.injected == 1
    await after_fault(setup, retry=batch()[:3])


@pytest.mark.parametrize("mode", ["error", "truncate"])
async def test_stream_write_fails(setup: Setup, mode: str) -> None:
    setup.faulty.arm("write", 1, mode)
    await expect_failure(setup, [stream(900)])
    assert setup.faulty.injected == 1
    await after_fault(setup, retry=[stream(900)])


async def test_save_cancelled_mid_stream(setup: Setup) -> None:
    setup.faulty.arm("stream", 1, "cancel")
    with anyio.move_on_after(0.5) as scope:
        await setup.save([doc(20), stream(700)])
    assert scope.cancelled_caught and setup.faulty.injected == 1
    await after_fault(setup, retry=[doc(20), stream(700)])


@pytest.mark.parametrize("when", ["before", "after"])
async def test_commit_fails(setup: Setup, when: str) -> None:
    session = setup.sessions()
    session.fail_commits, session.when = 1, when
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            await setup.save(batch(), session=session)
    finally:
        await session.close()
    assert FailingCommitSession.injected == 1
    committed = len(await load_all(setup.sessions, setup.registry))
    # "after": the database did commit before the error reached the saver
    assert committed == (4 + 4 if when == "after" else 4)
    await after_fault(setup, retry=batch())


@pytest.mark.parametrize("mode", ["error", "truncate"])
async def test_read_fails(setup: Setup, mode: str) -> None:
    setup.faulty.arm("read", 2, mode)
    expected = IntegrityError if mode == "truncate" else InjectedFault
    with pytest.raises(expected):
        await load_all(setup.sessions, setup.registry)
    assert setup.faulty.injected == 1
    await after_fault(setup, retry=None)


async def test_delete_fails_during_gc(setup: Setup) -> None:
    setup.faulty.arm("delete", 1)
    async with setup.sessions() as session:
        report = await gc_after_grace(session, setup.registry)
    assert setup.faulty.injected == 1
    [faulty] = [s for s in report.storages if s.storage == "faulty"]
    assert len(faulty.errors) == 1 and "injected delete failure" in faulty.errors[0]
    assert faulty.deleted == len(faulty.garbage) - 1
    await after_fault(setup, retry=None)  # the next collection removes what is left


@pytest.mark.slow
async def test_fault_storm(setup: Setup) -> None:
    """Random faults of every kind, round after round, checked after each round."""
    rng = random.Random(7)
    kinds = ["write-error", "write-truncate", "stream", "cancel", "commit", "read", "delete"]
    counter = 1000
    for _ in range(30):
        kind = rng.choice(kinds)
        counter += 10
        objects = [doc(counter + k) for k in range(rng.randint(1, 4))]
        if rng.random() < 0.5:
            objects.append(doc(counter + 9, body=f"body number {rng.randint(0, 2)}".encode() * 50))
        if kind in {"stream", "cancel"}:
            objects.append(stream(counter))
        if kind.startswith("write"):
            setup.faulty.arm("write", rng.randint(1, len(objects)), kind.split("-")[1])
            await expect_failure(setup, objects)
        elif kind == "stream":
            setup.faulty.arm("stream", 1, rng.choice(["error", "truncate"]))
            await expect_failure(setup, objects)
        elif kind == "cancel":
            setup.faulty.arm("stream", 1, "cancel")
            with anyio.move_on_after(0.2):
                await setup.save([stream(counter)])
        elif kind == "commit":
            session = setup.sessions()
            session.fail_commits, session.when = 1, rng.choice(["before", "after"])
            try:
                with pytest.raises(Exception):  # noqa: B017 - any driver error
                    await setup.save(objects, session=session)
            finally:
                await session.close()
        elif kind == "read":
            await setup.save(objects)
            setup.faulty.arm("read", rng.randint(1, 3), rng.choice(["error", "truncate"]))
            with pytest.raises((IntegrityError, InjectedFault)):
                await load_all(setup.sessions, setup.registry)
        else:
            records = await setup.save(objects)
            async with setup.sessions() as session:
                await delete_manifests(session, ids=[records[0].id])
                setup.faulty.arm("delete", 1)
                await gc_after_grace(session, setup.registry)
        setup.faulty.disarm()
        await assert_consistent(setup.sessions, setup.registry)
        if rng.random() < 0.3:
            async with setup.sessions() as session:
                await gc_after_grace(session, setup.registry)
    assert setup.faulty.injected + FailingCommitSession.injected == 30  # one per round
    await after_fault(setup, retry=[doc(1), stream(100)])
    async with setup.sessions() as session:
        assert (await session.execute(ContentRecord.__table__.select())).first() is not None
