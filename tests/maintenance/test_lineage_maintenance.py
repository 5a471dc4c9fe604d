"""Lineage in maintenance: delete refuses dependants unless forced, verify reports dangling
edges, and ``lakery lineage`` prints trees, JSON and DOT."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import HasDependantsError
from lakery import LineageRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import find_lineage
from lakery import save_one
from lakery.builtin import StorableValue
from lakery.maintenance import delete_manifests
from lakery.maintenance import verify_manifests
from tests.maintenance import test_cli
from tests.maintenance.test_cli import Cli

cli = test_cli.cli  # the fixture: five manifests of Doc


async def chain(new_session: async_sessionmaker, registry: Registry) -> list[ManifestRecord]:
    """raw -> clean -> report (labels "input", ""), and config -> report ("config")."""
    async with new_session() as session:

        async def save(value: str, tags: dict[str, str], derived_from=None):  # type: ignore[no-untyped-def]
            return await save_one(
                StorableValue(value),
                session=session,
                registry=registry,
                tags=tags,
                derived_from=derived_from,
            )

        raw = await save("raw", {"dagster/asset_key": "raw", "dagster/partition": "2024-01-01"})
        clean = await save("clean", {"dagster/asset_key": "clean"}, {"input": raw})
        config = await save("config", {})
        report = await save("report", {}, {"": [clean], "config": config})
    return [raw, clean, config, report]


async def count_edges(new_session: async_sessionmaker) -> int:
    async with new_session() as session:
        statement = select(func.count()).select_from(LineageRecord)
        return (await session.execute(statement)).scalar_one()


async def test_delete_refuses_dependants_unless_forced(
    new_session: async_sessionmaker, registry: Registry
) -> None:
    raw, clean, _config, report = await chain(new_session, registry)
    async with new_session() as session:
        with pytest.raises(HasDependantsError, match="--force") as caught:
            await delete_manifests(session, ids=[raw.id])
    assert caught.value.dependants == {raw.id: [clean.id]}
    assert str(clean.id) in str(caught.value) and "nothing was deleted" in str(caught.value)
    async with new_session() as session:
        dry = await delete_manifests(session, ids=[raw.id, clean.id], dry_run=True)
    assert dry.dependants == {clean.id: [report.id]}  # raw's child goes with it
    assert dry.to_dict()["dependants"] == {str(clean.id): [str(report.id)]}
    async with new_session() as session:  # a whole subtree needs no force
        await delete_manifests(session, ids=[clean.id, report.id])
    assert await count_edges(new_session) == 0
    async with new_session() as session:
        assert (await delete_manifests(session, ids=[raw.id])).deleted == 1


async def test_force_delete_leaves_dangling_edges_that_verify_reports(
    new_session: async_sessionmaker, registry: Registry
) -> None:
    raw, clean, config, report = await chain(new_session, registry)
    async with new_session() as session:
        result = await delete_manifests(session, ids=[raw.id, config.id], force=True)
    assert result.deleted == 2 and set(result.dependants) == {raw.id, config.id}
    assert await count_edges(new_session) == 3
    async with new_session() as session:
        found = await find_lineage(session, report.id, depth=None)
    assert found.missing == frozenset({raw.id, config.id})
    assert set(found.manifests) == {clean.id, report.id}
    assert len(found.edges) == 3
    async with new_session() as session:
        checked = await verify_manifests(session, registry)
    assert checked.ok and checked.manifests == 2
    assert checked.dangling_lineage == {clean.id: [raw.id], report.id: [config.id]}
    assert checked.dangling_edges == 2
    assert checked.to_dict()["dangling_lineage"]["edges"] == 2
    async with new_session() as session:
        only = await verify_manifests(session, registry, manifests=[report.id])
    assert only.dangling_lineage == {report.id: [config.id]}


async def test_cli_lineage_tree_json_and_dot(
    cli: Cli, new_session: async_sessionmaker, registry: Registry
) -> None:
    raw, clean, config, report = await chain(new_session, registry)
    status, out, err = await cli("lineage", clean.id.hex[:8])
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"lakery.builtin.storables.StorableValue  {clean.id.hex[:8]}  ")
    assert "dagster/asset_key=clean" in lines[0]
    assert lines[1] == "derived from:"
    assert lines[2].startswith(
        f"  └── [input]  lakery.builtin.storables.StorableValue  {raw.id.hex[:8]}"
    )
    assert "dagster/asset_key=raw  dagster/partition=2024-01-01" in lines[2]
    assert lines[3] == "used by:"
    assert "  └── StorableValue" not in out
    assert report.id.hex[:8] in lines[4] and "[config]" not in out

    status, out, _ = await cli("lineage", str(report.id), "--up", "--depth", "1")
    assert status == 0 and "used by:" not in out
    assert raw.id.hex[:8] not in out and "[config]" in out and clean.id.hex[:8] in out
    status, out, _ = await cli("lineage", str(raw.id), "--down", "--depth", "0")
    assert status == 0 and report.id.hex[:8] in out and "derived from:" not in out

    data = await cli.json("lineage", str(report.id), "--up")
    assert data["root"] == str(report.id)
    assert {n["id"] for n in data["nodes"]} == {str(m.id) for m in (raw, clean, config, report)}
    assert {"parent": str(config.id), "child": str(report.id), "label": "config"} in data["edges"]
    assert data["missing"] == []

    status, out, _ = await cli("lineage", str(report.id), "--dot")
    assert status == 0 and out.startswith("digraph lineage {")
    assert f'"{config.id}" -> "{report.id}" [label="config"];' in out
    assert f'"{clean.id}" -> "{report.id}";' in out
    assert out.rstrip().endswith("}")

    status, _, err = await cli("lineage", "ffff0")
    assert status == 1 and "no manifest ffff0" in err
    with pytest.raises(SystemExit, match="2"):
        await cli("lineage", str(report.id), "--up", "--down")
    assert "not allowed with argument --up" in cli.capsys.readouterr().err


async def test_cli_delete_force_and_verify_notice(
    cli: Cli, new_session: async_sessionmaker, registry: Registry
) -> None:
    raw, clean, _, _ = await chain(new_session, registry)
    status, _, err = await cli("delete", str(raw.id))
    assert status == 1 and "refusing to delete" in err and str(clean.id) in err
    status, out, _ = await cli("delete", str(raw.id), "--dry-run")
    assert status == 0 and "1 dependant(s) (needs --force)" in out
    status, out, _ = await cli("delete", str(raw.id), "--force")
    assert status == 0 and "deleted 1 manifest(s)" in out
    status, out, _ = await cli("verify")
    assert status == 0 and "NOTICE: dangling lineage: 1 edge(s) of 1 manifest(s)" in out
    assert str(clean.id) in out
    status, out, _ = await cli("verify", "--json")
    assert status == 0 and str(clean.id) in out
    status, out, _ = await cli("lineage", str(clean.id), "--up")
    assert f"(deleted)  {raw.id.hex[:8]}" in out
    data = await cli.json("lineage", str(clean.id))
    assert data["missing"] == [str(raw.id)]
    assert {"id": str(raw.id), "missing": True} in data["nodes"]
