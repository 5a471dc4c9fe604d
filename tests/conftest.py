"""Shared fixtures: the asyncio backend, and real SQLite and PostgreSQL databases.

`database_url` (and everything built on it) runs each test on SQLite and on PostgreSQL.
PostgreSQL is `LAKERY_TEST_POSTGRES_URL` or postgresql+asyncpg://postgres@127.0.0.1:5432/test;
each test run works in a database of its own, created and dropped here. With CI=true an
unreachable server fails the run; elsewhere its tests are skipped with a loud notice.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import Registry

POSTGRES_URL = os.environ.get(
    "LAKERY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_postgres_problem: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every `async def` test on the anyio plugin (marked before anyio collects it)."""
    if inspect.iscoroutinefunction(obj) and name.startswith("test"):
        pytest.mark.anyio(obj)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def admin_sql(sql: str) -> None:
    """Run one statement as the PostgreSQL server's admin (e.g. CREATE DATABASE)."""
    import asyncpg

    url = make_url(POSTGRES_URL)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=5,
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, with lakery's tables."""
    name = f"lakery_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        problem = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: PostgreSQL tests must run)", pytrace=False)
        _postgres_problem.append(problem)
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {problem}")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres_problem:
        terminalreporter.section("PostgreSQL tests were SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.write_line(_postgres_problem[0])
        terminalreporter.write_line("Start PostgreSQL or set LAKERY_TEST_POSTGRES_URL.")


_postgres_tables_ready: list[str] = []


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database URL; each test sees empty lakery tables."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lakery.db'}"
    return request.getfixturevalue("postgres_base_url")


async def empty_postgres(url: str) -> None:
    """Create lakery's tables in the PostgreSQL database at `url` if missing; empty them."""
    engine = create_async_engine(url)
    try:
        await BaseRecord.create_all(engine)
        async with engine.begin() as connection:
            tables = ", ".join(t.name for t in BaseRecord.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    finally:
        await engine.dispose()
    if url not in _postgres_tables_ready:
        _postgres_tables_ready.append(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    if database_url not in _postgres_tables_ready:
        await BaseRecord.create_all(engine)
    if database_url.startswith("postgresql"):
        # Always emptied: an earlier test may have filled the tables by another path (its
        # own engine, a migration) without going through this fixture.
        async with engine.begin() as connection:
            tables = ", ".join(t.name for t in BaseRecord.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        if database_url not in _postgres_tables_ready:
            _postgres_tables_ready.append(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def new_session(engine: AsyncEngine) -> async_sessionmaker:
    """A session maker like the seed's (`expire_on_commit=True`)."""
    return async_sessionmaker(engine, expire_on_commit=True)


@pytest.fixture
def registry() -> Registry:
    return Registry(modules=["lakery.builtin"])
