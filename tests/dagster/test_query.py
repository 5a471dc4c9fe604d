"""The core query API (lakery.core.query) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import ConfigurationError
from lakery import InvalidClassIdError
from lakery import ManifestRecord
from lakery import Registry
from lakery import StorableTypeError
from lakery import fetch_contents
from lakery import find_manifests
from lakery import get_manifests
from lakery import load_one
from lakery import new_loader
from lakery import save_one
from lakery import select_manifests
from lakery.builtin import StorableValue
from tests.dagster.storables import Reading

T0 = datetime(2024, 5, 1, tzinfo=UTC)
OTHER_CLASS = uuid.UUID("00000000000000000000000000abcdef")


async def _insert(engine: AsyncEngine, rows: list[dict]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(ManifestRecord), rows)


def _row(minutes: int, tags: dict[str, str], class_id: uuid.UUID = OTHER_CLASS) -> dict:
    return {
        "id": uuid.uuid4(),
        "created_at": T0 + timedelta(minutes=minutes),
        "class_id": class_id,
        "unpacker_name": "test.unpacker@v1",
        "tags": tags,
    }


async def test_filters_order_and_limit(engine: AsyncEngine, new_session: async_sessionmaker):
    reading_id = uuid.UUID("7e57da7a0000000000000000000000a1")
    rows = [
        _row(0, {"project": "alpha", "stage": "raw"}),
        _row(1, {"project": "alpha", "stage": "clean"}, reading_id),
        _row(2, {"project": "beta", "stage": "clean"}),
        _row(3, {"project": "alpha", "stage": "clean", "extra": "x"}),
        _row(4, {"project": "alpha"}, reading_id),
    ]
    await _insert(engine, rows)
    ids = [r["id"] for r in rows]
    async with new_session() as session:
        found = await find_manifests(session, tags={"project": "alpha", "stage": "clean"})
        assert [r.id for r in found] == [ids[3], ids[1]]  # all tags must match, newest first
        found = await find_manifests(session, cls=Reading)
        assert [r.id for r in found] == [ids[4], ids[1]]
        assert [r.id for r in await find_manifests(session, cls=reading_id.hex[-8:])] == []
        assert [r.id for r in await find_manifests(session, cls=str(reading_id))] == [
            ids[4],
            ids[1],
        ]
        window = await find_manifests(
            session, since=T0 + timedelta(minutes=1), before=T0 + timedelta(minutes=3)
        )
        assert [r.id for r in window] == [ids[2], ids[1]]  # since inclusive, before exclusive
        assert [r.id for r in await find_manifests(session, limit=2)] == [ids[4], ids[3]]
        assert len(await find_manifests(session, limit=None)) == 5
        assert await find_manifests(session, tags={"project": "gamma"}) == []
        combined = await find_manifests(
            session, tags={"project": "alpha"}, cls=OTHER_CLASS, before=T0 + timedelta(minutes=3)
        )
        assert [r.id for r in combined] == [ids[0]]
        await session.commit()
    assert combined[0].tags == {"project": "alpha", "stage": "raw"}  # detached: still readable


async def test_equal_times_break_ties_by_id(engine: AsyncEngine, new_session):
    rows = [_row(0, {"batch": "1"}) for _ in range(5)]
    await _insert(engine, rows)
    async with new_session() as session:
        found = await find_manifests(session, tags={"batch": "1"})
    assert [r.id for r in found] == sorted((r["id"] for r in rows), reverse=True)


async def test_unusual_tag_keys(engine: AsyncEngine, new_session: async_sessionmaker):
    tags = {
        'we"ird': "1",
        "dotted.key": "2",
        "dagster/asset_key": "a/b",
        "ünï": "ç",
        "back\\slash": "3",
        "a[0]": "4",
    }
    rows = [_row(0, tags), _row(1, {"dotted": "2"})]
    await _insert(engine, rows)
    async with new_session() as session:
        for key, value in tags.items():
            found = await find_manifests(session, tags={key: value})
            assert [r.id for r in found] == [rows[0]["id"]], key
        assert await find_manifests(session, tags={'we"ird': "2"}) == []


async def test_contents_and_loading_found_records(
    engine: AsyncEngine, new_session: async_sessionmaker, registry: Registry
) -> None:
    async with new_session() as session:
        saved = [
            await save_one(Reading(f"s{i}", [float(i)]), session=session, registry=registry)
            for i in range(3)
        ]
        await save_one(StorableValue("other"), session=session, registry=registry)
    async with new_session() as session:
        found = await find_manifests(session, cls=Reading, with_contents=True)
        by_id = await get_manifests(session, [saved[0].id, str(saved[1].id), uuid.uuid4()])
        plain = await find_manifests(session, cls=Reading)
        contents = await fetch_contents(session, [*plain, uuid.uuid4()])
        await session.commit()  # expire_on_commit=True: found records are detached
    assert {r.id for r in found} == {r.id for r in saved}
    assert set(by_id) == {saved[0].id, saved[1].id}
    assert all(sorted(c.content_key for c in r.contents) == ["sensor", "values"] for r in found)
    assert len(contents) == 4 and sum(len(v) for v in contents.values()) == 6
    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            futures = [loader.load_soon(r, Reading) for r in plain]
        first = await load_one(by_id[saved[0].id], Reading, session=session, registry=registry)
    assert sorted(f.get().sensor for f in futures) == ["s0", "s1", "s2"]
    assert first == Reading("s0", [0.0])


async def test_bad_arguments(new_session: async_sessionmaker) -> None:
    async with new_session() as session:
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            await find_manifests(session, since=datetime(2024, 1, 1))
        with pytest.raises(ConfigurationError, match="limit must be a positive int"):
            await find_manifests(session, limit=0)
        with pytest.raises(InvalidClassIdError):
            await find_manifests(session, cls="not-hex")
        with pytest.raises(StorableTypeError, match="storable class"):
            await find_manifests(session, cls=dict)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="not a manifest id"):
            await get_manifests(session, ["nope"])
        with pytest.raises(Exception, match="str values"):
            await find_manifests(session, tags={"n": 1})  # type: ignore[dict-item]


async def test_query_plans_use_indexes(engine: AsyncEngine) -> None:
    dialect = engine.dialect.name
    rows = [
        _row(i, {"asset": f"a{i % 400}", "partition": str(i)}, uuid.UUID(int=3 if i < 10 else 1))
        for i in range(4000)
    ]
    await _insert(engine, rows)
    by_tags = select_manifests(dialect=dialect, tags={"asset": "a7", "partition": "7"}, limit=None)
    by_class = select_manifests(dialect=dialect, cls=uuid.UUID(int=3), limit=10)
    async with engine.connect() as connection:
        if dialect == "postgresql":
            await connection.execute(text("ANALYZE lakery_manifests"))
            await connection.execute(text("SET enable_seqscan = off"))
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "

        async def plan(statement) -> str:  # type: ignore[no-untyped-def]
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            result = await connection.execute(text(prefix + str(compiled)))
            return "\n".join(str(row[-1]) for row in result)

        if dialect == "postgresql":
            # JSONB has no literal renderer: put the one bound value in by hand.
            sql = str(by_tags.compile(engine))
            assert "@>" in sql and sql.count("$") == 1
            sql = sql.replace("$1", "'" + json.dumps({"asset": "a7", "partition": "7"}) + "'")
            await connection.execute(text("SET enable_indexscan = off"))  # leave bitmap scans
            result = await connection.execute(text(prefix + sql))
            await connection.execute(text("SET enable_indexscan = on"))
            assert "ix_lakery_manifests_tags_gin" in "\n".join(row[0] for row in result)
        assert "ix_lakery_manifests_class_id" in await plan(by_class)  # either class index
