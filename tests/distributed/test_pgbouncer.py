"""lakery through PgBouncer in transaction mode: saves, loads and finds from many threads at
once work with ``statement_cache_size=0``, and fail without it (the setting matters)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lakery.builtin import StorableValue
from lakery.testing.s3_server import stop_process
from lakery_dagster import LakeryResource
from tests.conftest import IN_CI
from tests.conftest import empty_postgres
from tests.distributed.pgbouncer import find_pgbouncer
from tests.distributed.pgbouncer import start_pgbouncer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pgbouncer(postgres_base_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """PgBouncer with 2 server connections: its URL and its folder."""
    if find_pgbouncer() is None:
        problem = "pgbouncer is not installed (scripts/ensure_pgbouncer.sh installs it)"
        if IN_CI:
            pytest.fail(f"{problem}; CI=true: the PgBouncer test must run", pytrace=False)
        pytest.skip(problem)
    process, url = start_pgbouncer(postgres_base_url, tmp_path / "pgbouncer", pool_size=2)
    try:
        yield url, tmp_path / "pgbouncer"
    finally:
        stop_process(process)  # type: ignore[arg-type]


def _work(lakery: LakeryResource, worker: int, label: str = "yes") -> list[int]:
    """Save, get, load and find, each in its own transaction(s)."""
    values = []
    for i in range(8):
        tags = {"pgbouncer": label, "worker": str(worker), "i": str(i)}
        record = lakery.save(StorableValue({"worker": worker, "i": i}), tags=tags)
        assert lakery.get(record.id).id == record.id
        values.append(lakery.load(record).value["i"])
        [found] = lakery.find(tags=tags, limit=None)
        assert found.id == record.id
    return values


def test_concurrent_work_through_pgbouncer(pgbouncer: tuple[str, Path]) -> None:
    url, _ = pgbouncer
    # 8 client connections share PgBouncer's 2 server connections, transaction by transaction
    lakery = LakeryResource(database_url=url, statement_cache_size=0, pool_size=8, max_overflow=0)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda w: _work(lakery, w), range(8)))
        assert results == [list(range(8))] * 8
        assert len(lakery.find(tags={"pgbouncer": "yes"}, limit=None)) == 64
    finally:
        lakery.close()
    # a null pool too: a connection per session, none kept
    lakery = LakeryResource(database_url=url, statement_cache_size=0, null_pool=True)
    try:
        with ThreadPoolExecutor(4) as pool:
            assert (
                list(pool.map(lambda w: _work(lakery, w), range(100, 104))) == [list(range(8))] * 4
            )
    finally:
        lakery.close()


def test_without_the_setting_it_fails(postgres_base_url: str, tmp_path: Path) -> None:
    """A statement prepared (and cached) in one transaction is used in a later one, which
    PgBouncer may run on another server connection: 'prepared statement ... does not exist'
    (from two processes, asyncpg's numbered names also meet: '... already exists')."""
    if find_pgbouncer() is None:
        pytest.skip("pgbouncer is not installed")
    asyncio.run(empty_postgres(postgres_base_url))  # the tables, made without PgBouncer
    process, url = start_pgbouncer(postgres_base_url, tmp_path / "pgbouncer", pool_size=2)
    lakery = LakeryResource(database_url=url, pool_size=8, max_overflow=0, create_tables=False)
    try:
        with pytest.raises(Exception) as caught:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda w: _work(lakery, w, "off"), range(8)))
        text = repr(caught.value) + repr(caught.value.__cause__)
        assert "prepared statement" in text, text
    finally:
        lakery.close()
        stop_process(process)  # type: ignore[arg-type]
    assert isinstance(process, subprocess.Popen)
