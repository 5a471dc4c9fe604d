"""The ``lakery`` command line: find, show, delete, gc, verify, db; text, JSON and progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import Registry
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.cli import main
from lakery.cli.options import parse_duration
from lakery.cli.options import parse_storage
from lakery.cli.options import parse_time
from lakery.cli.output import ProgressLine
from lakery.cli.output import human_bytes
from tests.maintenance.helpers import Doc

ROOT = Path(__file__).parents[2]


class Cli:
    def __init__(self, database_url: str, files: FileStorage, capsys: Any) -> None:
        self.base = ["--database-url", database_url, "--storage-url", f"files={files.root}"]
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        status = await anyio.to_thread.run_sync(main, [*argv, *self.base])
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    async def json(self, *argv: str) -> Any:
        status, out, err = await self(*argv, "--json")
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
async def cli(
    new_session: async_sessionmaker,
    store: Registry,
    files: FileStorage,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    async with new_session() as session:
        for i in range(5):
            tags = {"batch": "a" if i < 3 else "b", "i": str(i)}
            doc = Doc({"i": i}, f"body {i}".encode() * 10)
            await save_one(doc, session=session, registry=store, tags=tags)
    return Cli(database_url, files, capsys)


async def test_find_and_show(cli: Cli) -> None:
    found = await cli.json("find", "--tag", "batch=a")
    assert [m["tags"]["i"] for m in found] == ["2", "1", "0"]  # newest first
    assert (await cli.json("find", "--limit", "2"))[0]["tags"]["i"] == "4"
    assert len(await cli.json("find", "--limit", "0")) == 5
    assert len(await cli.json("find", "--class", Doc.__lakery_class_id__.hex)) == 5
    assert await cli.json("find", "--before", "1h") == []
    assert len(await cli.json("find", "--since", "1h")) == 5
    shown = await cli.json("show", found[0]["id"])
    assert shown["id"] == found[0]["id"]
    parts = {p["key"]: p for p in shown["contents"]}
    assert parts["body"]["storage"] == "files" and parts["body"]["uri"].startswith("file://")
    assert parts["body"]["size"] == len(b"body 2" * 10)
    status, out, _ = await cli("find")
    assert status == 0 and "5 manifest(s)" in out
    status, out, _ = await cli("show", found[0]["id"])
    assert status == 0 and "body" in out and "files" in out
    status, _, err = await cli("show", "00000000-0000-0000-0000-000000000000")
    assert status == 1 and "no manifest" in err


async def test_delete_gc_verify(cli: Cli, files: FileStorage) -> None:
    dry = await cli.json("delete", "--tag", "batch=b", "--dry-run")
    assert dry["dry_run"] and len(dry["manifests"]) == 2 and dry["deleted"] == 0
    assert len(await cli.json("find")) == 5
    done = await cli.json("delete", "--tag", "batch=b", "--yes")
    assert done["deleted"] == 2 and done["contents"] == 4
    status, out, _ = await cli("delete", "00000000-0000-0000-0000-000000000001")
    assert status == 1 and "not found" in out
    # gc: a dry run by default, and nothing is old enough yet
    report = await cli.json("gc", "--grace", "0")
    assert report["dry_run"] and report["garbage"] == 4 and report["deleted"] == 0
    assert len(list(files.root.rglob("*/*"))) == 5
    assert (await cli.json("gc", "--delete"))["deleted"] == 0  # within the default 24h
    status, out, _ = await cli("gc", "--grace", "0s", "--delete", "--storage", "files")
    assert status == 0 and "deleted 2" in out
    assert len(list(files.root.rglob("*/*"))) == 3
    verified = await cli.json("verify")
    assert verified["ok"] and verified["manifests"] == 3 and verified["parts"] == 6
    assert (await cli.json("verify", "--sample", "1"))["manifests"] == 1
    # corrupt one file: verify reports it and exits 1
    victim = next(p for p in files.root.rglob("*/*") if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"!")
    status, out, _ = await cli("verify")
    assert status == 1 and "CORRUPT" in out and "1 PROBLEM" in out
    status, out, _ = await cli("verify", "--json")
    assert status == 1 and json.loads(out)["problems"][0]["kind"] == "corrupt"


async def test_progress_goes_to_stderr(cli: Cli) -> None:
    status, out, err = await cli("verify", "--json")
    assert status == 0 and json.loads(out)["ok"]
    assert "verify: 5/5" in err
    status, out, err = await cli("verify", "--json", "--quiet")
    assert status == 0 and err == ""


def test_progress_line_on_a_terminal() -> None:
    class Terminal(list):
        def write(self, text: str) -> None:
            self.append(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    screen = Terminal()
    line = ProgressLine(screen)
    line("verify", 1, 10)
    line("verify", 2, 10)  # within 0.1 s: not redrawn
    line("verify", 10, 10)
    assert "".join(screen) == "\rverify: 1/10\rverify: 10/10\n"


async def test_options_after_the_command_and_from_the_environment(
    cli: Cli, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("LAKERY_DATABASE_URL", database_url)
    status = await anyio.to_thread.run_sync(
        main, ["find", "--json", "--registry-module", "lakery.builtin"]
    )
    assert status == 0 and len(json.loads(capsys.readouterr().out)) == 5


async def test_configuration_errors_exit_2(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAKERY_DATABASE_URL", raising=False)
    cases = [
        (["find"], "no database"),
        (["find", "--database-url", f"sqlite:///{tmp_path / 'none.db'}"], "no SQLite database"),
        (["find", "--database-url", "not a url"], "malformed database URL"),
        (["verify", "--database-url", f"sqlite:///{tmp_path / 'none.db'}"], "no SQLite database"),
    ]
    for argv, message in cases:
        status = await anyio.to_thread.run_sync(main, argv)
        err = capsys.readouterr().err
        assert status == 2 and message in err, err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").write_bytes(b"")
    assert await anyio.to_thread.run_sync(main, ["find", "--database-url", empty]) == 2
    assert "lakery db upgrade" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["gc", "--grace", "soon"])
    assert exited.value.code == 2


def test_value_parsers(tmp_path: Path) -> None:
    assert parse_duration("90").total_seconds() == 90
    assert parse_duration("1.5h").total_seconds() == 5400
    assert parse_duration("2d").days == 2
    assert parse_time("2026-01-31T12:00:00").tzinfo is not None
    storage = parse_storage(f"archive={tmp_path / 'a'}")
    assert storage.name == "archive" and isinstance(storage, FileStorage)
    assert parse_storage(f"file://{tmp_path / 'b'}").name == FileStorage.name
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(12) == "12 B"


@pytest.mark.parametrize(
    "command",
    [["-m", "lakery"], ["-c", "import sys; from lakery.cli import main; sys.exit(main())"]],
)
def test_entry_points(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("find", "show", "delete", "gc", "verify", "db"):
        assert name in result.stdout
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'lakery = "lakery.cli:main"' in pyproject
