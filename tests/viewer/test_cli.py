"""`lakery serve`'s options: the ui extra, the port, the Dagster URL setting."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery.cli import build_parser
from lakery.cli import main
from lakery.cli.settings import resolve_settings
from lakery.viewer.links import ASSET_KEY_TAG
from lakery.viewer.links import RUN_ID_TAG
from lakery.viewer.links import dagster_links


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lakery.db'}"
    BaseRecord.create_all(create_async_engine(url)).run()
    return url


def test_without_the_extra_it_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from lakery.cli import main\n"
        f"sys.exit(main(['serve', '--database-url', 'sqlite:///{tmp_path / 'none.db'}']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "lakery serve needs starlette and uvicorn" in result.stderr
    # from a checkout: the name lakery on the package index is someone else's
    assert "pip install -e '/path/to/lakery[ui]'" in result.stderr


def test_a_port_in_use_is_a_clear_error(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["serve", "--database-url", sqlite_url, "--port", str(port)])
    assert status == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use: pick another with --port" in err


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--port", port])
    assert exit_info.value.code == 2
    assert "expected a port number from 0 to 65535" in capsys.readouterr().err


def test_a_host_that_is_not_here(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["serve", "--database-url", sqlite_url, "--host", "192.0.2.1", "--port", "0"])
    assert status == 2
    assert "--host '192.0.2.1' is not an address of this machine" in capsys.readouterr().err


def test_the_dagster_url_setting(tmp_path: Path) -> None:
    config = tmp_path / "lakery.toml"
    config.write_text('dagster_url = "http://from-config:3000"\n')

    def resolve(argv: list[str], env: dict[str, str]) -> str:
        args: argparse.Namespace = build_parser().parse_args(argv)
        return resolve_settings(args, env).dagster_url

    base = ["serve", "--config", str(config)]
    assert resolve(base, {}) == "http://from-config:3000"
    assert resolve(base, {"LAKERY_DAGSTER_URL": "http://env:3000"}) == "http://env:3000"
    flag = [*base, "--dagster-url", "http://flag:3000"]
    assert resolve(flag, {"LAKERY_DAGSTER_URL": "http://env:3000"}) == "http://flag:3000"
    assert resolve(["find", "--config", str(config)], {}) == "http://from-config:3000"


def test_dagster_links() -> None:
    tags = {RUN_ID_TAG: "abc-123", ASSET_KEY_TAG: "sales/daily report"}
    assert dagster_links(tags, None) == []
    assert dagster_links(tags, "http://127.0.0.1:3000/") == [
        ("Dagster run abc-123", "http://127.0.0.1:3000/runs/abc-123"),
        ("Dagster asset sales/daily report", "http://127.0.0.1:3000/assets/sales/daily%20report"),
    ]
    assert dagster_links({"other": "x"}, "http://127.0.0.1:3000") == []


def test_the_tag_names_are_lakery_dagsters() -> None:
    pytest.importorskip("dagster")
    from lakery_dagster import tags

    assert (RUN_ID_TAG, ASSET_KEY_TAG) == (tags.RUN_ID, tags.ASSET_KEY)
