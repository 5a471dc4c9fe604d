"""Latency of `lakery.core.find_lineage` on the manifests table of `query_latency`.

Half of the manifests get one derived-from edge to a random older manifest (background
lineage, so the edge table and its indexes are big), and the 21 newest form a 20-deep chain
(each derived from the one before). Each query is ``find_lineage(session, node, depth=20)``
(both directions) for a random node of the chain, on one open session; every answer must
hold the whole chain. PostgreSQL is filled with COPY, SQLite with executemany.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker

from benchmarks.common import Row
from lakery.core.lineage import find_lineage
from lakery.core.records import LineageRecord

CHAIN = 20
"""Edges of the measured chain."""


def _edges(rows: list[dict[str, Any]], seed: int = 5) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Background edges (half of the older rows, each to a random older row), then the
    chain's edges; and the chain's ids, oldest first."""
    random.seed(seed)
    ids = [row["id"] for row in rows]
    chain = ids[-(CHAIN + 1) :]
    background = ids[: -(CHAIN + 1)]
    edges = [
        (background[i], background[random.randrange(i)], "input")
        for i in range(1, len(background))
        if random.random() < 0.5
    ]
    edges += [(chain[i], chain[i - 1], "previous") for i in range(1, len(chain))]
    return edges, chain


async def _fill(engine: AsyncEngine, url: str, edges: list[tuple[Any, ...]]) -> None:
    if url.startswith("postgresql"):
        import asyncpg

        parsed = make_url(url)
        raw = await asyncpg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
        )
        try:
            await raw.copy_records_to_table(
                "lakery_lineage", records=edges, columns=["child_id", "parent_id", "label"]
            )
        finally:
            await raw.close()
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE lakery_lineage"))
        return
    rows = [{"child_id": c, "parent_id": p, "label": label} for c, p, label in edges]
    async with engine.begin() as connection:
        for start in range(0, len(rows), 20_000):
            await connection.execute(insert(LineageRecord), rows[start : start + 20_000])
        await connection.execute(text("ANALYZE"))


async def measure(
    engine: AsyncEngine, url: str, rows: list[dict[str, Any]], queries: int
) -> dict[str, Any]:
    """Fill the edges, then time `queries` lookups (after a warm-up)."""
    edges, chain = _edges(rows)
    started = time.perf_counter()
    await _fill(engine, url, edges)
    fill = time.perf_counter() - started
    random.seed(13)
    latencies: list[float] = []
    wrong = 0
    whole = set(chain)
    async with async_sessionmaker(engine)() as session:
        for number in range(queries + 10):
            node: uuid.UUID = chain[random.randrange(len(chain))]
            began = time.perf_counter()
            found = await find_lineage(session, node, depth=CHAIN)
            elapsed = (time.perf_counter() - began) * 1000
            if number >= 10:
                latencies.append(elapsed)
                if set(found.manifests) != whole or len(found.edges) != CHAIN:
                    wrong += 1
    return {"latencies": latencies, "wrong": wrong, "fill_seconds": fill, "edges": len(edges)}


def row(database: str, manifests: int, result: dict[str, Any], log: Any) -> Row:
    """The benchmark row of one database's `measure` result."""
    latencies = result["latencies"]
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else max(latencies)
    log(
        f"  lineage {database} {manifests:,} manifests, {result['edges']:,} edges: "
        f"find_lineage of a {CHAIN}-deep chain median {statistics.median(latencies):.2f} ms, "
        f"p95 {p95:.2f} ms (edges filled in {result['fill_seconds']:.1f}s)"
    )
    is_goal = database == "postgresql"
    return Row(
        "query",
        f"find_lineage, {CHAIN}-deep chain, {database}, {manifests:,} manifests",
        "ms",
        False,
        latencies,
        goal="< 20 ms median" if is_goal else "",
        goal_limit=20.0 if is_goal else None,
        checks={"every answer is the whole chain": result["wrong"] == 0},
        extra={
            "manifests": manifests,
            "edges": result["edges"],
            "p95_ms": p95,
            "wrong_answers": result["wrong"],
            "fill_seconds": result["fill_seconds"],
        },
    )
