"""`delete_manifests` and `verify_manifests` (corruption has its own file)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ConfigurationError
from lakery import ContentRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import find_manifests
from lakery import save_one
from lakery.builtin import StorableValue
from lakery.core.records import utc_now
from lakery.maintenance import delete_manifests
from lakery.maintenance import verify_manifests
from tests.maintenance.helpers import Doc


async def populate(new_session: async_sessionmaker, registry: Registry) -> list[ManifestRecord]:
    records = []
    async with new_session() as session:
        for i in range(6):
            doc = Doc({"i": i}, f"body {i}".encode())
            tags = {"parity": "even" if i % 2 == 0 else "odd", "run": "r1"}
            records.append(await save_one(doc, session=session, registry=registry, tags=tags))
        records.append(
            await save_one(StorableValue([1, 2]), session=session, registry=registry, tags={})
        )
    return records


async def counts(new_session: async_sessionmaker) -> tuple[int, int]:
    async with new_session() as session:
        manifests = (await session.execute(select(func.count(ManifestRecord.id)))).scalar()
        contents = (await session.execute(select(func.count(ContentRecord.id)))).scalar()
    return int(manifests or 0), int(contents or 0)


async def test_delete_by_ids_with_dry_run(new_session: async_sessionmaker, store: Registry) -> None:
    records = await populate(new_session, store)
    wanted = [records[0].id, str(records[1].id)]
    ghost = uuid.uuid4()
    async with new_session() as session:
        dry = await delete_manifests(session, ids=[*wanted, ghost], dry_run=True)
    assert dry.dry_run and dry.deleted == 0
    assert {m.id for m in dry.manifests} == {records[0].id, records[1].id}
    assert dry.contents == 4 and dry.content_bytes > 0 and dry.missing == [ghost]
    assert await counts(new_session) == (7, 13)
    async with new_session() as session:
        result = await delete_manifests(session, ids=wanted)
    assert result.deleted == 2 and result.to_dict()["deleted"] == 2
    assert await counts(new_session) == (5, 9)


async def test_delete_by_query(new_session: async_sessionmaker, store: Registry) -> None:
    records = await populate(new_session, store)
    async with new_session() as session:
        result = await delete_manifests(session, tags={"parity": "odd"}, cls=Doc)
        assert {m.tags["parity"] for m in result.manifests} == {"odd"}
        assert result.deleted == 3
        # ids and a query together: only the listed ids that match
        both = await delete_manifests(
            session, ids=[records[0].id, records[6].id], tags={"run": "r1"}
        )
        assert [m.id for m in both.manifests] == [records[0].id]
        assert both.missing == [records[6].id]
        newest = await delete_manifests(session, tags={"run": "r1"}, limit=1)
        assert [m.id for m in newest.manifests] == [records[4].id]
        old = await delete_manifests(session, before=utc_now() - timedelta(days=1))
        assert old.manifests == []
        left = await find_manifests(session, limit=None)
    assert {m.id for m in left} == {records[2].id, records[6].id}
    assert await counts(new_session) == (2, 3)


async def test_delete_needs_a_filter(new_session: async_sessionmaker, store: Registry) -> None:
    await populate(new_session, store)
    async with new_session() as session:
        with pytest.raises(ConfigurationError, match="needs ids or a query"):
            await delete_manifests(session)
        with pytest.raises(ConfigurationError, match="not a manifest id"):
            await delete_manifests(session, ids=["nope"])
        assert (await delete_manifests(session, ids=[])).manifests == []
    assert await counts(new_session) == (7, 13)


async def test_verify_all_some_and_a_sample(
    new_session: async_sessionmaker, store: Registry
) -> None:
    records = await populate(new_session, store)
    async with new_session() as session:
        everything = await verify_manifests(session, store)
        assert everything.ok and everything.manifests == 7 and everything.parts == 13
        assert everything.bytes == sum(c.content_size for r in records for c in r.contents)
        some = await verify_manifests(session, store, manifests=[records[0], records[1].id])
        assert some.manifests == 2 and some.parts == 4
        sample = await verify_manifests(session, store, sample=3)
        assert sample.manifests == 3
        tagged = await verify_manifests(session, store, tags={"parity": "even"})
        assert tagged.manifests == 3
        ghost = uuid.uuid4()
        missing = await verify_manifests(session, store, manifests=[ghost])
        assert [p.kind for p in missing.problems] == ["missing manifest"]
        with pytest.raises(ConfigurationError):
            await verify_manifests(session, store, sample=0)


async def test_verify_reports_unknown_components(
    new_session: async_sessionmaker, store: Registry
) -> None:
    records = await populate(new_session, store)
    async with new_session() as session:
        await session.execute(
            update(ContentRecord)
            .where(ContentRecord.manifest_id == records[0].id, ContentRecord.content_key == "body")
            .values(storage_name="gone.storage@v1")
        )
        await session.execute(
            update(ContentRecord)
            .where(ContentRecord.manifest_id == records[1].id, ContentRecord.content_key == "meta")
            .values(serializer_name="gone.serializer@v1")
        )
        await session.execute(
            update(ContentRecord)
            .where(ContentRecord.manifest_id == records[2].id, ContentRecord.content_key == "meta")
            .values(content_hash_algorithm="md5")
        )
        await session.commit()
        report = await verify_manifests(session, store)
    kinds = sorted((p.kind, str(p.manifest_id), p.content_key) for p in report.problems)
    assert kinds == sorted(
        [
            ("unknown component", str(records[0].id), "body"),
            ("unknown component", str(records[1].id), "meta"),
            ("unverifiable", str(records[2].id), "meta"),
        ]
    )
    assert "gone.storage@v1" in report.problems[0].message or "gone" in str(report.to_dict())
    assert not report.ok
