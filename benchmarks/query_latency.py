"""Latency of finding the latest manifest for an (asset, partition) tag pair.

The manifests table is filled with `rows` manifests tagged the way `LakeryIOManager` tags
them (asset key, partition, run id, ...): `assets` assets, each with `partitions`
partitions, each materialized several times (newer ones later). PostgreSQL is filled with
COPY (indexes built afterwards, then ANALYZE), SQLite with executemany through SQLAlchemy
(then ANALYZE). The query is `lakery.core.query.find_manifests(session, tags={asset,
partition}, limit=1)` for random pairs, each in its own call on one open session; the
median and 95th percentile latency are reported. On the same table, `lineage_latency`
then times `find_lineage` of a 20-deep chain. The tables are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks import lineage_latency
from benchmarks.common import Row
from lakery import BaseRecord
from lakery import ManifestRecord
from lakery.core.query import find_manifests

CLASS_ID = uuid.UUID("5be1d0c4e2a94f7c9a1b3c5d7e9f0a2b")
ASSET = "dagster/asset_key"
PARTITION = "dagster/partition"
START = datetime(2024, 1, 1, tzinfo=UTC)


def _shape(rows: int) -> tuple[int, int, int]:
    """(assets, partitions per asset, materializations per partition) for `rows` rows."""
    versions = 4
    partitions = 250
    assets = max(1, rows // (partitions * versions))
    return assets, partitions, versions


def _rows(rows: int, seed: int = 7) -> list[dict[str, Any]]:
    """The manifests, oldest first (created_at increases by one millisecond per row)."""
    assets, partitions, versions = _shape(rows)
    random.seed(seed)
    result = []
    index = 0
    for version in range(versions):
        for asset in range(assets):
            run_id = uuid.uuid4().hex
            for partition in range(partitions):
                result.append(
                    {
                        "id": uuid.uuid4(),
                        "created_at": START + timedelta(milliseconds=index),
                        "class_id": CLASS_ID,
                        "unpacker_name": "lakery.builtin.value@v1",
                        "tags": {
                            ASSET: f"warehouse/table_{asset:04d}",
                            PARTITION: f"2024-{1 + partition // 28:02d}-{1 + partition % 28:02d}",
                            "dagster/run_id": run_id,
                            "dagster/job": "__ASSET_JOB",
                            "dagster/step": f"table_{asset:04d}",
                            "dagster/output": "result",
                            "lakery/wrapped": "true" if version % 2 else "false",
                        },
                    }
                )
                index += 1
    return result


async def _reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(BaseRecord.metadata.drop_all)
        await connection.run_sync(BaseRecord.metadata.create_all)


async def _fill_postgres(engine: AsyncEngine, url: str, rows: list[dict[str, Any]]) -> None:
    import asyncpg

    table = ManifestRecord.__table__
    async with engine.begin() as connection:
        for index in table.indexes:  # built after the load: much faster than row by row
            await connection.execute(text(f'DROP INDEX IF EXISTS "{index.name}"'))
    parsed = make_url(url)
    raw = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        records = [
            (r["id"], r["created_at"], r["class_id"], r["unpacker_name"], json.dumps(r["tags"]))
            for r in rows
        ]
        await raw.copy_records_to_table(
            "lakery_manifests",
            records=records,
            columns=["id", "created_at", "class_id", "unpacker_name", "tags"],
        )
    finally:
        await raw.close()
    async with engine.begin() as connection:
        for index in table.indexes:
            await connection.run_sync(lambda sync, i=index: i.create(sync))
        await connection.execute(text("ANALYZE lakery_manifests"))


async def _fill_sqlite(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        for start in range(0, len(rows), 20_000):
            await connection.execute(insert(ManifestRecord), rows[start : start + 20_000])
        await connection.execute(text("ANALYZE"))


async def _measure(
    engine: AsyncEngine, rows: list[dict[str, Any]], queries: int
) -> tuple[list[float], int]:
    """Latencies in ms of `queries` random lookups (after a warm-up); and misses."""
    random.seed(11)
    pairs = [rows[random.randrange(len(rows))]["tags"] for _ in range(queries + 20)]
    latest: dict[tuple[str, str], uuid.UUID] = {}
    for row in rows:  # oldest first: the last one seen per pair is the newest
        latest[(row["tags"][ASSET], row["tags"][PARTITION])] = row["id"]
    latencies = []
    wrong = 0
    new_session = async_sessionmaker(engine)
    async with new_session() as session:
        for number, tags in enumerate(pairs):
            wanted = {ASSET: tags[ASSET], PARTITION: tags[PARTITION]}
            started = time.perf_counter()
            found = await find_manifests(session, tags=wanted, limit=1)
            elapsed = (time.perf_counter() - started) * 1000
            if number >= 20:
                latencies.append(elapsed)
                if not found or found[0].id != latest[(tags[ASSET], tags[PARTITION])]:
                    wrong += 1
    return latencies, wrong


async def _plan(engine: AsyncEngine, rows: list[dict[str, Any]]) -> str:
    """The database's plan for one lookup (the SQL that `find_manifests` sends)."""
    from lakery.core.query import select_manifests

    tags = rows[len(rows) // 2]["tags"]
    wanted = {ASSET: tags[ASSET], PARTITION: tags[PARTITION]}
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            sql = (
                "EXPLAIN SELECT * FROM lakery_manifests WHERE tags @> CAST(:wanted AS JSONB) "
                "ORDER BY created_at DESC, id DESC LIMIT 1"
            )
            result = await connection.execute(text(sql), {"wanted": json.dumps(wanted)})
        else:
            statement = select_manifests(dialect="sqlite", tags=wanted, limit=1)
            compiled = statement.compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}
            )
            result = await connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        return "\n".join(" ".join(str(c) for c in row) for row in result)


async def _one(url: str, rows: list[dict[str, Any]], queries: int) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        await _reset(engine)
        started = time.perf_counter()
        if url.startswith("postgresql"):
            await _fill_postgres(engine, url, rows)
        else:
            await _fill_sqlite(engine, rows)
        fill = time.perf_counter() - started
        plan = await _plan(engine, rows)
        latencies, wrong = await _measure(engine, rows, queries)
        lineage = await lineage_latency.measure(engine, url, rows, queries)
        return {
            "latencies": latencies,
            "wrong": wrong,
            "fill_seconds": fill,
            "plan": plan,
            "lineage": lineage,
        }
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(BaseRecord.metadata.drop_all)
        await engine.dispose()


def run(
    *,
    postgres_rows: int,
    sqlite_rows: int,
    queries: int,
    postgres_url: str | None,
    work: Path,
    log: Any = print,
) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    targets = [("sqlite", sqlite_rows, None)]
    if postgres_url is not None:
        targets.append(("postgresql", postgres_rows, postgres_url))
    out = []
    for database, count, url in targets:
        rows = _rows(count)
        with tempfile.TemporaryDirectory(dir=work, prefix="query-") as temp:
            target = url or f"sqlite+aiosqlite:///{Path(temp) / 'query.db'}"
            result = asyncio.run(_one(target, rows, queries))
        latencies = result["latencies"]
        p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else max(latencies)
        log(
            f"  query {database} {len(rows):,} manifests: median "
            f"{statistics.median(latencies):.2f} ms, p95 {p95:.2f} ms "
            f"(filled in {result['fill_seconds']:.1f}s)"
        )
        is_goal = database == "postgresql"
        out.append(
            Row(
                "query",
                f"latest manifest by (asset, partition), {database}, {len(rows):,} manifests",
                "ms",
                False,
                latencies,
                goal="< 5 ms median" if is_goal else "",
                goal_limit=5.0 if is_goal else None,
                checks={"every answer is the newest manifest": result["wrong"] == 0},
                extra={
                    "manifests": len(rows),
                    "p95_ms": p95,
                    "wrong_answers": result["wrong"],
                    "fill_seconds": result["fill_seconds"],
                    "plan": result["plan"],
                },
            )
        )
        out.append(lineage_latency.row(database, len(rows), result["lineage"], log))
    return out
