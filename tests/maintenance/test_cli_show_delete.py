"""``lakery show`` by id prefix and with class names; ``lakery delete`` asks before a query."""

from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery.core.records import ManifestRecord
from tests.maintenance import test_cli
from tests.maintenance.test_cli import Cli

cli = test_cli.cli  # the fixture: five manifests, batches "a" (3) and "b" (2)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_show_by_unique_prefix(cli: Cli, new_session: async_sessionmaker) -> None:
    [newest] = await cli.json("find", "--limit", "1")
    assert (await cli.json("show", newest["id"][:8]))["id"] == newest["id"]
    assert (await cli.json("show", newest["id"][:13].upper()))["id"] == newest["id"]
    async with new_session() as session:
        for tail in ("1111", "2222"):
            manifest_id = uuid.UUID(f"abcd{tail}-0000-4000-8000-000000000000")
            session.add(ManifestRecord(id=manifest_id, class_id=uuid.uuid4(), unpacker_name="x"))
        await session.commit()
    status, _, err = await cli("show", "abcd")
    assert status == 2 and "ambiguous: 2 manifests begin with it" in err
    assert (await cli.json("show", "abcd1"))["id"].startswith("abcd1111")
    status, _, err = await cli("show", "ab")
    assert status == 2 and "at least 4 hex digits" in err
    status, _, err = await cli("show", "ffff0")
    assert status == 1 and "no manifest ffff0" in err


async def test_show_prints_class_names(cli: Cli, new_session: async_sessionmaker) -> None:
    [newest] = await cli.json("find", "--limit", "1")
    status, out, _ = await cli("show", newest["id"])
    assert status == 0 and "class:       tests.maintenance.helpers.Doc\n" in out
    assert (await cli.json("show", newest["id"]))["class"] == "tests.maintenance.helpers.Doc"
    manifest_id, class_id = uuid.uuid4(), uuid.uuid4()
    async with new_session() as session:
        session.add(ManifestRecord(id=manifest_id, class_id=class_id, unpacker_name="x"))
        await session.commit()
    status, out, _ = await cli("show", str(manifest_id))
    assert status == 0 and "class:       (not registered: add its module with" in out
    assert f"class_id:    {class_id.hex}" in out


async def test_delete_by_query_asks(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal
    status, _, err = await cli("delete", "--tag", "batch=b")
    assert status == 2 and "stdin is not a terminal" in err and "--yes" in err
    assert (await cli.json("delete", "--tag", "batch=b", "--dry-run"))["dry_run"]
    assert len(await cli.json("find")) == 5
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    status, _, err = await cli("delete", "--tag", "batch=b")
    assert status == 1 and "delete 2 manifest(s) with 4 part(s)" in err
    assert "nothing deleted" in err and len(await cli.json("find")) == 5
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    status, out, _ = await cli("delete", "--tag", "batch=b")
    assert status == 0 and "deleted 2 manifest(s)" in out
    status, out, _ = await cli("delete", "--tag", "batch=b")
    assert status == 0 and "nothing to delete" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert (await cli.json("delete", "--tag", "batch=a", "-y"))["deleted"] == 3
    assert await cli.json("find") == []


async def test_delete_by_id_does_not_ask_and_no_filter_speaks_flags(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    [newest] = await cli.json("find", "--limit", "1")
    assert (await cli.json("delete", newest["id"]))["deleted"] == 1
    status, _, err = await cli("delete")
    assert status == 2 and "--tag KEY=VALUE" in err and "--class CLASS_ID" in err
    assert "cls" not in err.replace("--class", "")
