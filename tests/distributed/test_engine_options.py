"""The connection-budget settings of `EngineOptions`: the null pool and asyncpg's statement
cache, as they reach SQLAlchemy and asyncpg, and what a null pool holds while idle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlalchemy.pool import QueuePool

from lakery.config.engine import EngineOptions
from lakery.config.engine import create_engine
from lakery_dagster import LakeryResource

PG_URL = "postgresql+asyncpg://user@127.0.0.1:1/db"


def test_default_pool_is_bounded() -> None:
    engine = create_engine(PG_URL)
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (5, 10)  # type: ignore[attr-defined]
    assert EngineOptions().max_connections() == 15
    assert EngineOptions(pool_size=2, max_overflow=1).max_connections() == 3


def test_null_pool() -> None:
    engine = create_engine(PG_URL, EngineOptions(null_pool=True))
    assert isinstance(engine.sync_engine.pool, NullPool)
    assert EngineOptions(null_pool=True).max_connections() == 0


def test_statement_cache_off_for_asyncpg() -> None:
    arguments = _connect_args(create_engine(PG_URL, EngineOptions(statement_cache_size=0)))
    assert arguments["statement_cache_size"] == 0
    assert arguments["prepared_statement_cache_size"] == 0
    name = arguments["prepared_statement_name_func"]
    assert name() != name()  # unique per statement
    default = _connect_args(create_engine(PG_URL))
    assert "statement_cache_size" not in default
    assert "prepared_statement_name_func" not in default
    cached = _connect_args(create_engine(PG_URL, EngineOptions(statement_cache_size=50)))
    assert cached["statement_cache_size"] == cached["prepared_statement_cache_size"] == 50
    assert "prepared_statement_name_func" not in cached


def _connect_args(engine: AsyncEngine) -> dict[str, Any]:
    """What the engine passes to the driver's connect(), captured before it connects."""
    captured: dict[str, Any] = {}

    @event.listens_for(engine.sync_engine, "do_connect")
    def capture(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        captured.update(cparams)
        raise ConnectionRefusedError("captured")

    async def connect() -> None:
        async with engine.connect():
            pass

    with pytest.raises(ConnectionRefusedError, match="captured"):
        asyncio.run(connect())
    return captured


def test_resource_passes_the_settings() -> None:
    resource = LakeryResource(database_url=PG_URL, null_pool=True, statement_cache_size=0)
    options = resource.engine_settings().options
    assert options.null_pool
    assert options.statement_cache_size == 0


@pytest.mark.postgres
async def test_null_pool_holds_nothing_while_idle(postgres_base_url: str) -> None:
    database = make_url(postgres_base_url).database
    engine = create_engine(postgres_base_url, EngineOptions(null_pool=True))
    monitor = create_engine(postgres_base_url, EngineOptions(pool_size=1, max_overflow=0))
    try:
        # Counted against a baseline: other engines of this test process may hold idle
        # connections to the same database (the monitor's own is in the baseline too).
        before = await _connections(monitor, database)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            assert await _connections(monitor, database) == before + 1
        assert await _connections(monitor, database) == before  # closed when it ended
    finally:
        await engine.dispose()
        await monitor.dispose()


async def _connections(monitor: AsyncEngine, database: str | None) -> int:
    async with monitor.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
        )
    return int(count or 0)
