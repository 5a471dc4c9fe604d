"""The whole example, materialized by its runner on SQLite and PostgreSQL, loads back.

Every asset and partition is loaded through lakery and compared with the same numbers
computed again; some are also loaded through Dagster's IO managers. Lineage (input
manifest tags and metadata) and content-based data versions are checked, and on SQLite
the runner's command is run a second time on the same data: it stores no new content.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import polars as pl
import pytest

from example_project import analysis
from example_project import run
from example_project.assets import DAYS
from example_project.assets import WINDOW_DAYS
from example_project.definitions import REGISTRY_MODULES
from example_project.definitions import build_defs
from example_project.settings import ExampleSettings
from example_project.storables import ReadingsArchive
from example_project.storables import SiteReport
from example_project.tables import SUMMARY_COLUMNS
from example_project.tables import readings_frame
from example_project.tables import sensor_summary
from lakery import NotFoundError
from lakery.core.records import ManifestRecord
from lakery_dagster import LakeryResource
from tests.example_project.conftest import ExampleEnv
from tests.example_project.conftest import clean_environment
from tests.example_project.conftest import make_dagster_home
from tests.example_project.conftest import subprocess_env
from tests.markdown import python_blocks
from tests.markdown import run_page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "example.md"
ASSETS = run.ASSET_ORDER
PARTITIONED = ["raw_measurements", "daily_features", "cycle_fit", "readings_table"]
DAY_KEYS = DAYS.get_partition_keys()


def test_whole_example_materializes_and_loads_back(
    example_env: ExampleEnv, database_url: str
) -> None:
    out = io.StringIO()
    assert run.main([], out=out) == 0
    check_runner_output(out.getvalue(), example_env)

    settings = example_env.settings
    files = LakeryResource(
        database_url=settings.database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.files_dir.as_uri(),
    )
    published = LakeryResource(
        database_url=settings.database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.published_storage_url,
    )
    try:
        with dg.DagsterInstance.get() as instance:
            latest = latest_materializations(instance)
            loaded = load_through_lakery(files, published, latest)
            check_values(loaded)
            check_lineage(files, latest)
            check_io_managers(instance, loaded)
            run_docs_examples()
            versions = data_versions(latest)
        assert all(len(v) == 32 for v in versions.values())  # lakery's, from content hashes
        if database_url.startswith("sqlite"):
            check_rerun_stores_nothing_new(example_env, files, versions)
    finally:
        files.close()
        published.close()


def check_runner_output(text: str, env: ExampleEnv) -> None:
    steps = re.findall(r"^\s+\[\s*(\d+)/60\] (\w+)", text, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, 61))
    assert {name for _, name in steps} == set(ASSETS)
    rows = dict(re.findall(r"^  (\w+)\s+(\d+)\s+\d+\s+[\d.]+ [kMG]?B  \S+$", text, re.M))
    assert rows == {name: "14" if name in PARTITIONED else "1" for name in ASSETS}
    assert "the archive streamed back 161,280 of 161,280 rows" in text
    assert "# Forecast for 2026-01-15" in text
    assert "Lineage: cycle_fit 2026-01-14 was fitted on 7 days of daily_features" in text
    assert f"content   {env.data_dir / 'files'}" in text
    assert "sensor_summary: 112 rows (14 days x 8 sensors) from 14 daily tables" in text
    assert "60 manifests of this example so far" in text
    assert ".venv/bin/dagster dev -m example_project" in text
    assert f"DAGSTER_HOME={env.dagster_home}" in text


def latest_materializations(instance: dg.DagsterInstance) -> dict[tuple[str, str | None], Any]:
    """``{(asset, partition): materialization}`` of the newest materialization of each."""
    latest: dict[tuple[str, str | None], Any] = {}
    for asset in ASSETS:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        for record in records:  # newest first
            latest.setdefault((asset, record.partition_key), record.asset_materialization)
    expected = {(a, d) for a in PARTITIONED for d in DAY_KEYS}
    expected |= {(a, None) for a in ASSETS if a not in PARTITIONED}
    assert set(latest) == expected
    return latest


def manifest_id(materialization: Any) -> str:
    return str(materialization.metadata["lakery/manifest_id"].value)


def load_through_lakery(
    files: LakeryResource, published: LakeryResource, latest: dict[tuple[str, str | None], Any]
) -> dict[tuple[str, str | None], tuple[ManifestRecord, Any]]:
    """Every manifest, loaded in bulk by the resource whose storage holds it (content sizes
    and hashes are verified)."""
    keys = sorted(latest, key=lambda k: (k[0], k[1] or ""))
    records = [files.get(manifest_id(latest[k])) for k in keys]
    # The release is on the published storage (a local folder in these tests): only a
    # storage with that root reads it, the files storage refuses to look outside its own.
    release = keys.index(("forecast_release", None))
    with pytest.raises(NotFoundError, match="reads only under its own root"):
        files.load(records[release])
    others = [r for i, r in enumerate(records) if i != release]
    objects = files.load_many(others)
    objects.insert(release, published.load(records[release]))
    for (asset, partition), record in zip(keys, records, strict=True):
        assert record.tags["dagster/asset_key"] == asset
        assert record.tags.get("dagster/partition") == partition
        assert record.tags["project"] == "lakery-example"
    return {k: (r, o) for k, r, o in zip(keys, records, objects, strict=True)}


def check_values(loaded: dict[tuple[str, str | None], tuple[ManifestRecord, Any]]) -> None:
    """What was stored equals the same numbers computed again."""

    def value(asset: str, partition: str | None = None) -> Any:
        return loaded[asset, partition][1]

    features = {}
    fits = {}
    for day in DAY_KEYS:
        raw = value("raw_measurements", day)
        assert raw == analysis.simulate_day(day)
        assert raw.temperature_c.shape == (8, 1440)
        features[day] = value("daily_features", day)
        assert features[day] == analysis.features_of(raw)
        window = DAY_KEYS[max(0, DAY_KEYS.index(day) - WINDOW_DAYS + 1) : DAY_KEYS.index(day) + 1]
        fits[day] = value("cycle_fit", day)
        assert fits[day].window == window
        assert fits[day] == analysis.fit_cycle(day, {d: features[d] for d in window})
    report = value("site_report")
    assert isinstance(report, SiteReport)
    assert report == analysis.report_of(fits, features)
    assert report.forecast_c.shape == (8, 24)
    assert value("forecast_release") == analysis.release_of(report)

    archive = value("readings_archive")
    assert isinstance(archive, ReadingsArchive)
    assert archive.row_count == 14 * 8 * 1440
    rows = asyncio.run(_rows(archive))
    assert len(rows) == archive.row_count
    expected = asyncio.run(_first_rows({d: value("raw_measurements", d) for d in DAY_KEYS}, 3))
    assert rows[:3] == expected
    assert {r["day"] for r in rows} == set(DAY_KEYS)

    tables = {day: value("readings_table", day).value for day in DAY_KEYS}
    for day, frame in tables.items():
        pd.testing.assert_frame_equal(frame, readings_frame(value("raw_measurements", day)))
    summary = value("sensor_summary").value
    assert isinstance(summary, pl.DataFrame)
    every_day = pl.from_pandas(pd.concat([tables[d] for d in DAY_KEYS])[SUMMARY_COLUMNS])
    assert summary.equals(sensor_summary(every_day))
    assert summary.height == 14 * 8


async def _rows(archive: ReadingsArchive) -> list[dict[str, Any]]:
    return [row async for row in archive.rows]


async def _first_rows(raw: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows = []
    async for row in analysis.archive_rows(raw):
        rows.append(row)
        if len(rows) == n:
            break
    return rows


def linked_inputs(materialization: Any) -> dict[str, dict[str, str]]:
    """``lakery/inputs`` of a materialization (the example links it to its viewer) read back
    as ``{input: {item: manifest id}}``, checking that each id links to its viewer page."""
    inputs: dict[str, dict[str, str]] = {}
    for line in materialization.metadata["lakery/inputs"].value.splitlines()[2:]:
        name, item, link = (cell.strip() for cell in line.strip("|").split("|"))
        found = re.fullmatch(r"\[([0-9a-f-]{36})\]\(http://127\.0\.0\.1:8321/manifests/\1\)", link)
        assert found, line
        inputs.setdefault(name, {})["" if item == "—" else item] = found[1]
    return inputs


def check_lineage(files: LakeryResource, latest: dict[tuple[str, str | None], Any]) -> None:
    """Each manifest is derived from the manifests it was computed from (lineage edges,
    tags and linked metadata)."""
    last = DAY_KEYS[-1]
    fit = latest["cycle_fit", last]
    window = DAY_KEYS[-WINDOW_DAYS:]
    expected = {day: manifest_id(latest["daily_features", day]) for day in window}
    assert linked_inputs(fit) == {"daily_features": expected}
    assert fit.metadata["lakery/url"].value.endswith(f"/manifests/{manifest_id(fit)}")
    tags = files.get(manifest_id(fit)).tags
    for day, features_id in expected.items():
        assert tags[f"dagster/input/daily_features/{day}"] == features_id
    edges = files.lineage(manifest_id(fit), down=False, depth=1).edges
    assert {(str(e.parent_id), e.label) for e in edges} == {
        (features_id, "daily_features") for features_id in expected.values()
    }

    report = latest["site_report", None]
    inputs = linked_inputs(report)
    assert set(inputs) == {"cycle_fit", "daily_features"}
    assert inputs["cycle_fit"] == {d: manifest_id(latest["cycle_fit", d]) for d in DAY_KEYS}

    # Loaded by the files IO manager, saved by the published one: lineage still recorded.
    release = latest["forecast_release", None]
    assert linked_inputs(release) == {"site_report": {"": manifest_id(report)}}
    # The release goes back through the report and the fits to every day's readings.
    ancestors = files.lineage(manifest_id(release), down=False, depth=None).manifests
    readings = {manifest_id(latest["raw_measurements", day]) for day in DAY_KEYS}
    assert readings <= {str(i) for i in ancestors}
    for key, materialization in latest.items():
        metadata = materialization.metadata
        assert metadata["dagster/uri"].value.startswith(("file://", "lakery://manifest/")), key
        assert metadata["dagster/size_bytes"].value > 0
        assert len(metadata["lakery/contents"].value.records) >= 1


def check_io_managers(
    instance: dg.DagsterInstance,
    loaded: dict[tuple[str, str | None], tuple[ManifestRecord, Any]],
) -> None:
    """Dagster's own loading path (the IO managers' load_input) gives the same objects."""
    defs = build_defs()
    with defs.get_asset_value_loader(instance=instance) as loader:
        day = DAY_KEYS[4]
        for asset in PARTITIONED:
            value = loader.load_asset_value(asset, partition_key=day)
            if asset == "readings_table":  # loaded unwrapped, as the asset returned it
                pd.testing.assert_frame_equal(value, loaded[asset, day][1].value)
            else:
                assert value == loaded[asset, day][1]
        summary = loader.load_asset_value("sensor_summary")
        assert summary.equals(loaded["sensor_summary", None][1].value)
        assert loader.load_asset_value("site_report") == loaded["site_report", None][1]
        assert loader.load_asset_value("forecast_release") == loaded["forecast_release", None][1]


def run_docs_examples() -> None:
    """The Python blocks of docs/example.md marked ``<!-- notest example -->``."""
    blocks = python_blocks(DOC, marked="example")
    assert len(blocks) == 2
    run_page(blocks, {"__name__": "__main__"})


def data_versions(latest: dict[tuple[str, str | None], Any]) -> dict[tuple[str, str | None], str]:
    versions = {}
    for key, materialization in latest.items():
        version = materialization.tags["dagster/data_version"]
        assert version == materialization.metadata["lakery/content_hash"].value[:32]
        versions[key] = version
    return versions


def check_rerun_stores_nothing_new(
    env: ExampleEnv, files: LakeryResource, versions: dict[tuple[str, str | None], str]
) -> None:
    """`python -m example_project.run` (what scripts/example.sh runs) on the same data."""
    before = sorted(_files(env.data_dir / "files"))
    result = subprocess.run(
        [sys.executable, "-m", "example_project.run"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert "[60/60] " in result.stdout
    assert "120 manifests of this example so far" in result.stdout
    assert ", 0 B new this run)" in result.stdout
    assert sorted(_files(env.data_dir / "files")) == before  # identical content, stored once
    assert len(files.find(tags={"project": "lakery-example"}, limit=None)) == 120
    with dg.DagsterInstance.get() as instance:
        again = latest_materializations(instance)
    assert data_versions(again) == versions  # same content: same data versions


def _files(folder: Path) -> Iterator[str]:
    for path in folder.rglob("*"):
        if path.is_file():
            yield path.relative_to(folder).as_posix()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_runner_help_and_ui_command(database_url: str, example_env: ExampleEnv) -> None:
    settings = example_env.settings
    command = run.ui_command(settings, example_env.dagster_home)
    assert f"LAKERY_EXAMPLE_DIR={settings.data_dir}" in command
    assert command.endswith(".venv/bin/dagster dev -m example_project")
    with pytest.raises(SystemExit) as exited:
        run.main(["--help"], out=io.StringIO())
    assert exited.value.code == 0


def test_ui_command_sets_the_lakery_environment(tmp_path: Path) -> None:
    """Runs launched from the UI must use the database and storage this run used."""
    environ = {
        "LAKERY_DATABASE_URL": "postgresql+asyncpg://me:s3cret@db.example:5432/lakery",
        "LAKERY_STORAGE_URL": "s3://bucket/with space",
        "LAKERY_S3_REGION": "eu-west-1",
    }
    settings = ExampleSettings.from_env(environ, data_dir=tmp_path / "data")
    command = run.ui_command(settings, tmp_path / "home")
    assert "s3cret" not in command
    assert "LAKERY_DATABASE_URL='postgresql+asyncpg://me:***@db.example:5432/lakery' " in command
    assert "LAKERY_STORAGE_URL='s3://bucket/with space' " in command
    assert "LAKERY_S3_REGION=eu-west-1 " in command
    assert "LAKERY_S3_ENDPOINT_URL" not in command
    assert command.endswith(".venv/bin/dagster dev -m example_project")
    # Without a password the URL is given as it is; without the variables, nothing is added.
    environ["LAKERY_DATABASE_URL"] = "postgresql+asyncpg://postgres@127.0.0.1:5432/lakery"
    command = run.ui_command(ExampleSettings.from_env(environ), tmp_path / "home")
    assert f"LAKERY_DATABASE_URL={environ['LAKERY_DATABASE_URL']} " in command
    command = run.ui_command(ExampleSettings.from_env({}), tmp_path / "home")
    assert "LAKERY_" not in command.replace("LAKERY_EXAMPLE_DIR", "")


def test_runner_stops_at_the_first_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    clean_environment(monkeypatch)
    monkeypatch.setenv("DAGSTER_HOME", str(make_dagster_home(tmp_path / "home")))
    monkeypatch.setenv("LAKERY_DATABASE_URL", "mysql://nobody@127.0.0.1/example")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        run.main(["--data", str(tmp_path / "data")], out=out)
    message = str(exited.value.code)
    assert message.strip().startswith("FAILED: daily_pipeline 2026-01-01:")
    assert "ConfigurationError" in message and "'mysql' backend" in message
    assert "[ 1/45]" not in out.getvalue()
