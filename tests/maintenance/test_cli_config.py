"""Where the ``lakery`` command's settings come from, and the checks of them."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import pytest

from lakery.cli import build_parser
from lakery.cli import main
from lakery.cli.context import registry_modules
from lakery.cli.settings import Settings
from lakery.cli.settings import resolve_settings
from lakery.common.exceptions import ConfigurationError
from lakery.config import default_registry_modules
from lakery.config import normalize_database_url
from lakery.config import redact_url
from lakery_dagster import engines
from tests.maintenance import test_cli
from tests.maintenance.test_cli import Cli

cli = test_cli.cli  # the fixture: five manifests in the database and the "files" storage
ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LAKERY_DATABASE_URL", "LAKERY_REGISTRY_MODULES", "LAKERY_STORAGE_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no lakery.toml around


async def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    status = await anyio.to_thread.run_sync(main, list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_version(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"lakery {version('lakery')}\n"


def test_help_documents_the_environment_and_the_config_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lakery", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    for text in ("LAKERY_DATABASE_URL", "LAKERY_REGISTRY_MODULES", "LAKERY_STORAGE_URLS"):
        assert text in result.stdout
    assert "lakery.toml" in result.stdout and "--config PATH" in result.stdout
    assert "--version" in result.stdout


def test_one_url_check_for_the_cli_and_dagster() -> None:
    assert normalize_database_url("postgres://u:pw@h/db") == "postgresql+asyncpg://u:pw@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_database_url("").startswith("sqlite+aiosqlite:///")
    for url, message in [
        ("mysql://u@h/db", "names the 'mysql' backend"),
        ("postgresql+psycopg2://u@h/db", "not an installed async driver"),
        ("sqlite+pysqlite:///x.db", "not an installed async driver"),
        ("not a url", "malformed database URL"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            normalize_database_url(url)
    with pytest.raises(ConfigurationError, match="malformed database_url"):
        engines.normalize_database_url("not a url")
    with pytest.raises(ConfigurationError, match="database_url 'mysql://u:\\*\\*\\*@h/db'"):
        engines.normalize_database_url("mysql://u:secret@h/db")
    assert engines.redact_url is redact_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:secret@localhost/db", "names the 'mysql' backend"),
        ("postgresql+psycopg2://localhost/db", "not an installed async driver"),
    ],
)
async def test_unsupported_databases_exit_2(url: str, message: str, capsys: Any) -> None:
    status, _, err = await run(capsys, "find", "--database-url", url)
    assert status == 2 and message in err and "Traceback" not in err
    assert "secret" not in err


async def test_a_short_password_is_hidden_without_garbling_the_message(capsys: Any) -> None:
    url = "mysql://u:p@h/db"
    status, _, err = await run(capsys, "find", "--database-url", url)
    assert status == 2 and "'mysql://u:***@h/db'" in err
    assert "supports 'postgresql+asyncpg://...'" in err


async def test_bad_modules_and_storages_fail_clearly(cli: Cli, capsys: Any) -> None:
    [newest] = await cli.json("find", "--limit", "1")
    for command in (["find"], ["show", newest["id"]], ["delete", newest["id"], "--dry-run"]):
        status, _, err = await cli(*command, "--registry-module", "no_such_module_here")
        assert status == 2 and "cannot import registry module 'no_such_module_here'" in err
        status, _, err = await cli(*command, "--storage-url", "ftp://host/data")
        assert status == 2 and "unsupported scheme 'ftp'" in err


def test_registry_modules_add_to_the_defaults() -> None:
    defaults = default_registry_modules()
    assert defaults[0] == "lakery.builtin"
    for extra in ("pydantic", "numpy", "arrow", "pandas", "polars"):
        assert f"lakery.extra.{extra}" in defaults
    assert registry_modules(Settings(registry_modules=["my.storables"])) == [
        *defaults,
        "my.storables",
    ]
    assert registry_modules(Settings(registry_modules=["lakery.builtin"])) == defaults


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "find"])


def test_precedence_flags_environment_config_file(tmp_path: Path) -> None:
    config = tmp_path / "lakery.toml"
    config.write_text(
        'database_url = "sqlite:///from-file.db"\n'
        'registry_modules = ["file.module"]\n'
        'storage_urls = ["files=/from/file"]\n'
        's3_region = "eu-west-1"\n'
    )
    settings = resolve_settings(_args(), {})
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.registry_modules == ["file.module"]
    assert settings.storage_urls == ["files=/from/file"] and settings.s3_region == "eu-west-1"
    assert settings.config_path == Path("lakery.toml")
    env = {
        "LAKERY_DATABASE_URL": "sqlite:///from-env.db",
        "LAKERY_REGISTRY_MODULES": "env.one, env.two,",
        "LAKERY_STORAGE_URLS": "a=/env/a,s3://bucket/prefix",
    }
    settings = resolve_settings(_args(), env)
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.registry_modules == ["env.one", "env.two"]
    assert settings.storage_urls == ["a=/env/a", "s3://bucket/prefix"]
    assert settings.s3_region == "eu-west-1"  # still from the file
    flags = ["--database-url", "sqlite:///flag.db", "--registry-module", "flag.module"]
    settings = resolve_settings(_args(*flags, "--storage-url", "/flag"), env)
    assert settings.database_url == "sqlite:///flag.db"
    assert settings.registry_modules == ["flag.module"] and settings.storage_urls == ["/flag"]
    other = tmp_path / "other.toml"
    other.write_text('database_url = "sqlite:///other.db"\n')
    assert resolve_settings(_args("--config", str(other)), {}).database_url.endswith("other.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('database_url = "x"\nregistry_module = ["a"]\n', "unknown keys ['registry_module']"),
        ('registry_modules = "a,b"\n', "must be a list of strings"),
        ("database_url = 5\n", "must be a string"),
        ("database_url = \n", "cannot read the config file"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "lakery.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        resolve_settings(_args(), {})


async def test_settings_from_the_environment_and_a_config_file(
    cli: Cli, database_url: str, files: Any, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    (tmp_path / "lakery.toml").write_text(
        f"database_url = {json.dumps(database_url)}\n"
        'registry_modules = ["tests.maintenance.helpers_missing"]\n'
    )
    status, _, err = await run(capsys, "find")
    assert status == 2 and "'tests.maintenance.helpers_missing'" in err  # read from the file
    monkeypatch.setenv("LAKERY_REGISTRY_MODULES", "lakery.builtin")  # the environment wins
    monkeypatch.setenv("LAKERY_STORAGE_URLS", f"files={files.root}")
    status, out, _ = await run(capsys, "verify", "--json", "-q")
    assert status == 0 and json.loads(out)["manifests"] == 5
    monkeypatch.setenv("LAKERY_STORAGE_URLS", "ftp://nowhere")
    assert (await run(capsys, "find"))[0] == 2
    status, _, err = await run(capsys, "find", "--config", str(tmp_path / "none.toml"))
    assert status == 2 and "no config file at" in err


async def test_no_database_names_every_source(capsys: Any) -> None:
    status, _, err = await run(capsys, "find")
    assert status == 2 and "--database-url" in err and "LAKERY_DATABASE_URL" in err
    assert "lakery.toml" in err
