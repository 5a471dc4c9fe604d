"""The composite index on the asset key and partition tags serves `find_manifests`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select
from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ManifestRecord
from lakery import find_manifests
from lakery import select_manifests
from lakery.core.tag_index import INDEXED_TAG_KEYS
from lakery.core.tag_index import tag_text

ASSET, PARTITION = INDEXED_TAG_KEYS
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def rows(count: int) -> list[dict[str, Any]]:
    """`count` manifests over 20 assets x 50 partitions, a few versions each."""
    return [
        {
            "id": uuid.uuid4(),
            "created_at": T0 + timedelta(seconds=i),
            "class_id": uuid.UUID(int=1),
            "unpacker_name": "test.unpacker@v1",
            "tags": {ASSET: f"a{i % 20}", PARTITION: f"p{i % 50}", "team": f"t{i % 7}"},
        }
        for i in range(count)
    ]


async def explain(connection: AsyncConnection, statement: Select[Any]) -> str:
    """The query plan of `statement`, with its parameters written in as literals."""
    dialect = connection.dialect.name
    compiled = statement.compile(connection.engine)
    sql = str(compiled)
    if dialect == "postgresql":
        values = [compiled.params[name] for name in compiled.positiontup or []]
        for number in range(len(values), 0, -1):  # $10 before $1
            sql = sql.replace(f"${number}", literal(values[number - 1]))
        result = await connection.execute(text("EXPLAIN " + sql))
    else:
        literal_sql = str(
            statement.compile(connection.engine, compile_kwargs={"literal_binds": True})
        )
        result = await connection.execute(text("EXPLAIN QUERY PLAN " + literal_sql))
    return "\n".join(str(row[-1]) for row in result)


def literal(value: Any) -> str:
    if isinstance(value, dict):
        value = json.dumps(value)
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def test_newest_of_an_asset_partition_uses_the_index(
    engine: AsyncEngine, new_session: async_sessionmaker
) -> None:
    data = rows(5000)
    async with engine.begin() as connection:
        await connection.execute(insert(ManifestRecord), data)
        await connection.execute(text("ANALYZE"))
    dialect = engine.dialect.name
    wanted = {ASSET: "a7", PARTITION: "p17"}
    statement = select_manifests(dialect=dialect, tags=wanted, limit=1)
    async with engine.connect() as connection:
        plan = await explain(connection, statement)
    assert f"ix_lakery_manifests_tag_keys_{dialect}" in plan, plan
    newest = max(
        (r for r in data if r["tags"].items() >= wanted.items()), key=lambda r: r["created_at"]
    )
    async with new_session() as session:
        found = await find_manifests(session, tags=wanted, limit=1)
        asset_only = await find_manifests(session, tags={ASSET: "a7"}, limit=None)
        with_more = await find_manifests(session, tags={**wanted, "team": "t0"}, limit=None)
    assert [m.id for m in found] == [newest["id"]]
    assert len(asset_only) == 250
    assert {m.id for m in with_more} == {
        r["id"] for r in data if r["tags"].items() >= {**wanted, "team": "t0"}.items()
    }


async def test_an_index_of_your_own_on_sqlite(tmp_path: Path) -> None:
    """The docs' recipe (SQLite only: PostgreSQL answers other keys with the GIN index):
    an expression index written as `tag_text` writes the value."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    await BaseRecord.create_all(engine)
    async with engine.begin() as connection:
        await connection.execute(insert(ManifestRecord), rows(2000))
        team = tag_text(ManifestRecord.__table__.c.tags, "team", "sqlite")
        ddl = str(team.compile(engine))
        assert ddl == """json_extract(lakery_manifests.tags, '$."team"')"""
        await connection.execute(
            text(
                "CREATE INDEX ix_team ON lakery_manifests "
                """(json_extract(tags, '$."team"'), created_at)"""
            )
        )
        await connection.execute(text("ANALYZE"))
        plan = await explain(connection, select_manifests(dialect="sqlite", tags={"team": "t3"}))
    await engine.dispose()
    assert "ix_team" in plan, plan
