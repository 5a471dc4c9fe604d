"""A Hypothesis state machine: save / load / delete / gc against a dict of what should be
there. After every step the database holds exactly the model's manifests; every model
object loads back equal; gc within the grace period deletes nothing, and gc after it
leaves exactly the blobs that the model's manifests reference."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import consumes
from hypothesis.stateful import invariant
from hypothesis.stateful import multiple
from hypothesis.stateful import rule
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import get_manifests
from lakery import load_one
from lakery import new_saver
from lakery.builtin import FileStorage
from lakery.core.records import utc_now
from lakery.maintenance import collect_garbage
from lakery.maintenance import delete_manifests
from tests.maintenance.helpers import GRACE
from tests.maintenance.helpers import Doc
from tests.maintenance.helpers import DocUnpacker
from tests.maintenance.helpers import blobs

STORAGES = ("files", "lakery.database@v1")
bodies = st.one_of(st.sampled_from([b"", b"a", b"shared" * 20]), st.binary(max_size=40))
docs = st.builds(
    lambda n, body, where: Doc({"n": n}, body, meta_storage=where[0], body_storage=where[1]),
    st.integers(0, 3),
    bodies,
    st.tuples(st.sampled_from(STORAGES), st.sampled_from(STORAGES)),
)


class StoreMachine(RuleBasedStateMachine):
    manifests = Bundle("manifests")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="lakery-stateful-"))
        self.loop = asyncio.Runner()
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.directory / 'db.sqlite'}")
        self.run(BaseRecord.create_all(self.engine))
        self.files = FileStorage(self.directory / "files", name="files")
        self.registry = Registry(
            modules=["lakery.builtin"], storages=[self.files], unpackers=[DocUnpacker()]
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.model: dict[uuid.UUID, Doc] = {}

    def run(self, awaitable: Any) -> Any:
        async def wrapper() -> Any:
            return await awaitable

        return self.loop.run(wrapper())

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- rules -------------------------------------------------------------------------------

    @rule(target=manifests, objects=st.lists(docs, min_size=1, max_size=4))
    def save(self, objects: list[Doc]) -> Any:
        async def save() -> list[ManifestRecord]:
            async with self.sessions() as session:
                async with new_saver(session=session, registry=self.registry) as saver:
                    futures = [saver.save_soon(obj) for obj in objects]
            return [f.get() for f in futures]

        records = self.run(save())
        for record, obj in zip(records, objects, strict=True):
            self.model[record.id] = obj
        return multiple(*(r.id for r in records))

    @rule(manifest=manifests)
    def load(self, manifest: uuid.UUID) -> None:
        async def load() -> Doc | None:
            async with self.sessions() as session:
                found = await get_manifests(session, [manifest])
                if manifest not in found:
                    return None
                return await load_one(found[manifest], Doc, session=session, registry=self.registry)

        assert self.run(load()) == self.model.get(manifest)

    @rule(manifest=consumes(manifests))
    def delete(self, manifest: uuid.UUID) -> None:
        async def delete() -> int:
            async with self.sessions() as session:
                return (await delete_manifests(session, ids=[manifest])).deleted

        assert self.run(delete()) == (1 if self.model.pop(manifest, None) is not None else 0)

    @rule()
    def gc_within_grace(self) -> None:
        async def collect() -> int:
            async with self.sessions() as session:
                report = await collect_garbage(session, self.registry, grace=GRACE, delete=True)
            return report.deleted

        assert self.run(collect()) == 0  # every blob was written just now

    @rule()
    def gc_after_grace(self) -> None:
        async def collect() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
            async with self.sessions() as session:
                later = utc_now() + GRACE + timedelta(seconds=5)
                report = await collect_garbage(
                    session, self.registry, grace=GRACE, delete=True, now=later
                )
                assert not report.errors
                left = {
                    name: set(await blobs(session, self.registry.get_storage(name)))
                    for name in STORAGES
                }
                rows = (
                    await session.execute(
                        select(ContentRecord.storage_name, ContentRecord.content_hash).where(
                            ContentRecord.manifest_id.in_(list(self.model))
                        )
                    )
                ).all()
            wanted: dict[str, set[str]] = {name: set() for name in STORAGES}
            for storage, digest in rows:
                wanted[storage].add(digest)
            return left, wanted

        left, wanted = self.run(collect())
        all_wanted = set().union(*wanted.values())
        for name in STORAGES:
            assert wanted[name] <= left[name]  # nothing referenced was removed
            assert left[name] <= all_wanted  # nothing unreferenced was kept

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        async def ids() -> set[uuid.UUID]:
            async with self.sessions() as session:
                return set((await session.execute(select(ManifestRecord.id))).scalars())

        assert self.run(ids()) == set(self.model)


StoreMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStore = pytest.mark.slow(StoreMachine.TestCase)
