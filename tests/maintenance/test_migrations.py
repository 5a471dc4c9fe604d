"""The Alembic migrations build exactly the schema of `BaseRecord.create_all`."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ConfigurationError
from lakery.cli import main
from lakery.maintenance import BASELINE_REVISION
from lakery.maintenance import HEAD_REVISION
from lakery.maintenance import database_revision
from lakery.maintenance import upgrade_database
from lakery.maintenance.schema import TABLES
from lakery.maintenance.schema import alembic_config
from lakery.maintenance.schema import object_filter

ROOT = Path(__file__).parents[2]


def structure(connection: Connection) -> dict[str, Any]:
    """Everything reflection tells about lakery's tables (SQLite's reflection skips the
    expression index on tags, with a warning: `index_sql` compares that one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
        return _structure(connection)


def _structure(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    found: dict[str, Any] = {}
    for table in TABLES:
        if not inspector.has_table(table):  # e.g. lakery_lineage before revision 0003
            continue
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": [
                (f["constrained_columns"], f["referred_table"], f["referred_columns"], f["options"])
                for f in inspector.get_foreign_keys(table)
            ],
            "indexes": sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    sorted(i.get("dialect_options", {}).items()),
                )
                for i in inspector.get_indexes(table)
            ),
            "unique constraints": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return found


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"include_object": object_filter(connection.dialect.name), "compare_type": True},
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
        warnings.filterwarnings("ignore", "autogenerate skipping .* expression-based index")
        return compare_metadata(context, BaseRecord.metadata)


async def inspect_database(url: str) -> tuple[dict[str, Any], list[Any], str | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            shape = await connection.run_sync(structure)
            diff = await connection.run_sync(differences)
        return shape, diff, await database_revision(engine)
    finally:
        await engine.dispose()


async def create_all(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await BaseRecord.create_all(engine)
    finally:
        await engine.dispose()


def test_migrations_build_the_create_all_schema(new_database: Callable[[], str]) -> None:
    by_create_all, by_migrations = new_database(), new_database()
    asyncio.run(create_all(by_create_all))
    assert main(["db", "upgrade", "--database-url", by_migrations, "-q"]) == 0
    expected, expected_diff, before = asyncio.run(inspect_database(by_create_all))
    migrated, diff, revision = asyncio.run(inspect_database(by_migrations))
    assert expected_diff == [] and before is None
    assert diff == []
    assert migrated == expected
    assert revision == HEAD_REVISION
    indexes = {i[0] for i in migrated["lakery_manifests"]["indexes"]}
    assert "ix_lakery_manifests_class_id_created_at" in indexes
    gin = "ix_lakery_manifests_tags_gin" in indexes
    assert gin == by_migrations.startswith("postgresql")
    dialect = "postgresql" if gin else "sqlite"
    assert index_sql(by_migrations, dialect) == index_sql(by_create_all, dialect)


def index_sql(url: str, dialect: str) -> str:
    """The definition of the tag index as the database keeps it (reflection skips
    expression indexes on SQLite)."""
    name = f"ix_lakery_manifests_tag_keys_{dialect}"
    if dialect == "sqlite":
        query = text("SELECT sql FROM sqlite_master WHERE name = :name")
    else:
        query = text("SELECT indexdef FROM pg_indexes WHERE indexname = :name")

    async def read() -> str:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(query, {"name": name})).scalar_one()
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_upgrade_adopts_create_all_tables_and_is_idempotent(
    new_database: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_database()
    asyncio.run(create_all(url))
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "marked them as revision 0001" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url, "--json"]) == 0
    assert f'"before": "{HEAD_REVISION}"' in capsys.readouterr().out
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == HEAD_REVISION
    assert asyncio.run(inspect_database(url))[1] == []


def test_downgrade_and_partial_schemas(new_database: Callable[[], str]) -> None:
    url = new_database()

    async def scenario() -> None:
        engine = create_async_engine(url)
        try:
            change = await upgrade_database(engine)
            assert (change.before, change.after, change.adopted) == (None, HEAD_REVISION, False)

            def downgrade(connection: Connection) -> None:
                from alembic import command

                config = alembic_config()
                config.attributes["connection"] = connection
                command.downgrade(config, "base")

            async with engine.begin() as connection:
                await connection.run_sync(downgrade)
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert not set(names) & set(TABLES)
            async with engine.begin() as connection:
                await connection.execute(text("DROP TABLE lakery_alembic_version"))
                await connection.run_sync(BaseRecord.metadata.tables["lakery_blobs"].create)
            with pytest.raises(ConfigurationError, match="only some of lakery's tables"):
                await upgrade_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_one_head_and_packaged_scripts() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD_REVISION]
    chain = [script.get_revision(HEAD_REVISION)]
    while chain[-1].down_revision is not None:
        chain.append(script.get_revision(chain[-1].down_revision))
    assert [r.revision for r in chain] == ["0003", "0002", BASELINE_REVISION]
    base = ROOT / "lakery" / "migrations"
    assert (base / "env.py").is_file() and (base / "script.py.mako").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"lakery.migrations" = ["script.py.mako"]' in pyproject


def test_downgrade_one_step_and_back(
    new_database: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_database()
    assert main(["db", "upgrade", "--database-url", url, "-q"]) == 0
    capsys.readouterr()
    assert main(["db", "downgrade", BASELINE_REVISION, "--database-url", url]) == 0
    assert f"from {HEAD_REVISION} to {BASELINE_REVISION}" in capsys.readouterr().out
    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"

    async def tag_index_present() -> bool:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: {i["name"] for i in _quiet_indexes(c)})
                if dialect == "sqlite":  # reflection skips expression indexes there
                    sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
                    names |= set((await connection.execute(text(sql))).scalars())
            return f"ix_lakery_manifests_tag_keys_{dialect}" in names
        finally:
            await engine.dispose()

    assert not asyncio.run(tag_index_present())
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == BASELINE_REVISION
    assert main(["db", "downgrade", BASELINE_REVISION, "--database-url", url]) == 0
    assert "already at revision 0001" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url, "-q"]) == 0
    assert asyncio.run(tag_index_present())


def _quiet_indexes(connection: Connection) -> list[Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
        return inspect(connection).get_indexes("lakery_manifests")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("base", "refusing to downgrade to base"),
        ("0999", "unknown revision '0999'; lakery's revisions are 0001, 0002, 0003"),
        (HEAD_REVISION, None),
    ],
)
def test_downgrade_refuses_what_loses_data_or_makes_no_sense(
    new_database: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
    target: str,
    message: str | None,
) -> None:
    url = new_database()
    assert main(["db", "downgrade", "0001", "--database-url", url]) == 2
    assert "no lakery revision: run `lakery db upgrade` first" in capsys.readouterr().err
    assert main(["db", "upgrade", "--database-url", url, "-q", "--revision", "0001"]) == 0
    capsys.readouterr()
    status = main(["db", "downgrade", target, "--database-url", url])
    if message is None:  # newer than the database
        assert status == 2
        assert "newer than the database's 0001: use db upgrade" in capsys.readouterr().err
    else:
        assert status == 2
        assert message in capsys.readouterr().err
    assert asyncio.run(inspect_database(url))[2] == BASELINE_REVISION


def test_adopting_tables_of_an_older_create_all_adds_the_lineage_table(
    new_database: Callable[[], str],
) -> None:
    """Tables made before lineage existed (no lakery_lineage) are adopted, then upgraded."""
    url = new_database()

    async def older_create_all() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                for name in ("lakery_manifests", "lakery_contents", "lakery_blobs"):
                    await connection.run_sync(BaseRecord.metadata.tables[name].create)
        finally:
            await engine.dispose()

    asyncio.run(older_create_all())
    assert main(["db", "upgrade", "--database-url", url, "-q"]) == 0
    shape, diff, revision = asyncio.run(inspect_database(url))
    assert revision == HEAD_REVISION and diff == []
    assert shape["lakery_lineage"]["primary key"] == ["child_id", "parent_id", "label"]


def test_downgrade_0002_drops_only_the_lineage_table(new_database: Callable[[], str]) -> None:
    url = new_database()
    assert main(["db", "upgrade", "--database-url", url, "-q"]) == 0
    assert main(["db", "downgrade", "0002", "--database-url", url, "-q"]) == 0

    async def tables() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    names = asyncio.run(tables())
    assert "lakery_lineage" not in names and "lakery_manifests" in names
    assert main(["db", "upgrade", "--database-url", url, "-q"]) == 0
    assert "lakery_lineage" in asyncio.run(tables())
    assert asyncio.run(inspect_database(url))[1] == []
