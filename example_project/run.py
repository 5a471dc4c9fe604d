"""Materialize the whole example, then show what lakery stored (`bash scripts/example.sh`).

    python -m example_project.run [--data DIR]

Runs the ``daily_pipeline`` job once per day (readings, features, the 7-day model fit),
then the ``reporting`` job, in this process and on a persistent Dagster instance
(``DAGSTER_HOME``, default ``<data>/dagster_home``) so that `dagster dev` shows the runs.
Prints a line per materialized asset and partition, then reads everything back through
lakery and says where it lives. Safe to run again: the data is deterministic, so the new
manifests point at content that is already stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from typing import TextIO
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import dagster as dg

from example_project.assets import DAYS
from example_project.definitions import DAILY_JOB
from example_project.definitions import REGISTRY_MODULES
from example_project.definitions import REPORTING_JOB
from example_project.definitions import build_defs
from example_project.settings import DATA_DIR_ENV
from example_project.settings import DEFAULT_DATA_DIR
from example_project.settings import ExampleSettings
from lakery.core.records import ManifestRecord
from lakery_dagster import LakeryResource
from lakery_dagster.engines import redact_url

__all__ = ["Materialized", "main", "prepare_dagster_home", "run_example"]

ASSET_ORDER = [
    "raw_measurements",
    "daily_features",
    "cycle_fit",
    "site_report",
    "readings_archive",
    "forecast_release",
    "readings_table",
    "sensor_summary",
]
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DAGSTER_YAML = """\
# Written by example_project/run.py for the lakery example's own Dagster instance.
telemetry:
  enabled: false
"""


@dataclass
class Materialized:
    """One materialization of this invocation: asset, partition and the manifest it saved."""

    asset: str
    partition: str | None
    manifest_id: str
    size: int
    seconds: float


@dataclass
class Outcome:
    """What `run_example` did: the materializations, in order, and how long it took."""

    settings: ExampleSettings
    dagster_home: Path
    materialized: list[Materialized] = field(default_factory=list)
    seconds: float = 0.0
    files_before: int = 0
    """Bytes in the files folder before this run."""


def prepare_dagster_home(settings: ExampleSettings) -> Path:
    """``DAGSTER_HOME`` if set, else ``<data>/dagster_home`` (created, telemetry off)."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = settings.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_example(settings: ExampleSettings, out: TextIO) -> Outcome:
    """Materialize every asset and partition; print a line per materialization."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(settings, prepare_dagster_home(settings))
    outcome.files_before = _disk_usage(settings.files_dir)
    defs = build_defs(settings)
    days = DAYS.get_partition_keys()
    total = sum(len(days) if a.partitions_def else 1 for a in defs.resolve_all_asset_specs())
    started = time.monotonic()
    print(f"Materializing {total} asset partitions ({days[0]} to {days[-1]}):", file=out)
    with dg.DagsterInstance.get() as instance:
        runs: list[tuple[str, dict[str, Any]]] = [
            (DAILY_JOB, {"partition_key": day}) for day in days
        ]
        runs.append((REPORTING_JOB, {}))
        for job_name, options in runs:
            job = defs.resolve_job_def(job_name)
            result = job.execute_in_process(
                instance=instance, run_config=QUIET_LOGS, raise_on_error=False, **options
            )
            for item in _materializations(result):
                outcome.materialized.append(item)
                _print_step(item, len(outcome.materialized), total, out)
            if not result.success:
                raise SystemExit(_failure(result, job_name, options))
    outcome.seconds = time.monotonic() - started
    return outcome


def _materializations(result: dg.ExecuteInProcessResult) -> Iterator[Materialized]:
    seconds = {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.event_type_value == "STEP_SUCCESS"
    }
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        yield Materialized(
            asset=materialization.asset_key.to_user_string(),
            partition=materialization.partition,
            manifest_id=str(metadata["lakery/manifest_id"].value),
            size=int(metadata["dagster/size_bytes"].value),
            seconds=seconds.get(event.step_key, 0.0),
        )


def _print_step(item: Materialized, done: int, total: int, out: TextIO) -> None:
    width = len(str(total))
    print(
        f"  [{done:>{width}}/{total}] {item.asset:17} {item.partition or '':10}  "
        f"{_size(item.size):>9}  manifest {item.manifest_id[:8]}  {item.seconds:5.2f} s",
        file=out,
        flush=True,
    )


def _failure(result: dg.ExecuteInProcessResult, job_name: str, options: dict[str, Any]) -> str:
    """What failed and why, in a few lines (Dagster has logged the traceback above)."""
    where = f"{job_name} {options.get('partition_key', '')}".strip()
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause  # the user-code error behind Dagster's wrapper
            step = f" in step {event.step_key}" if event.step_key else ""
            return f"\nFAILED: {where}{step}: {error.message.strip()}"
    return f"\nFAILED: {where}"


def summarize(outcome: Outcome, out: TextIO) -> None:
    """Read every manifest of this invocation back through lakery and say where it lives."""
    settings = outcome.settings
    files = LakeryResource(
        database_url=settings.database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.files_dir.as_uri(),
    )
    published = LakeryResource(
        database_url=settings.database_url,
        registry_modules=REGISTRY_MODULES,
        storage_url=settings.published_storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    try:
        _summarize(outcome, files, published, out)
    finally:
        files.close()
        published.close()


def _summarize(
    outcome: Outcome, files: LakeryResource, published: LakeryResource, out: TextIO
) -> None:
    by_asset: dict[str, list[Materialized]] = {}
    for item in outcome.materialized:
        by_asset.setdefault(item.asset, []).append(item)
    print(f"\nDone in {outcome.seconds:.1f} s. Read back through lakery:", file=out)
    print(f"  {'asset':17} {'manifests':>9} {'parts':>6} {'stored':>9}  class", file=out)
    loaded: dict[str, list[Any]] = {}
    records: dict[str, list[ManifestRecord]] = {}
    for asset in ASSET_ORDER:
        resource = published if asset == "forecast_release" else files
        ids = [item.manifest_id for item in by_asset.get(asset, [])]
        records[asset] = [resource.get(i) for i in ids]
        loaded[asset] = resource.load_many(records[asset])  # sizes and hashes are checked
        parts = sum(len(r.contents) for r in records[asset])
        size = sum(c.content_size for r in records[asset] for c in r.contents)
        kind = _kind(loaded[asset][0]) if loaded[asset] else "-"
        print(
            f"  {asset:17} {len(ids):>9} {parts:>6} {_size(size):>9}  {kind}",
            file=out,
        )
    [archive] = loaded["readings_archive"]
    rows = asyncio.run(_count_rows(archive))
    print(
        f"  every part loaded and checked against its sha256; the archive streamed back "
        f"{rows:,} of {archive.row_count:,} rows",
        file=out,
    )
    [summary] = loaded["sensor_summary"]
    table = summary.value
    print(
        f"  sensor_summary: {table.height} rows ({table['day'].n_unique()} days x "
        f"{table['sensor'].n_unique()} sensors) from {len(loaded['readings_table'])} daily "
        "tables, concatenated and read three columns at a time",
        file=out,
    )
    [report] = loaded["site_report"]
    print(f"\n{report.summary.strip()}", file=out)
    [fit] = [f for f in loaded["cycle_fit"] if f.day == report.last_day]
    fit_record = records["cycle_fit"][loaded["cycle_fit"].index(fit)]
    inputs = sorted(k for k in fit_record.tags if k.startswith("dagster/input/daily_features/"))
    print(
        f"\nLineage: cycle_fit {fit.day} was fitted on {len(fit.window)} days of "
        f"daily_features; its manifest {fit_record.id} is tagged with their manifest ids "
        f"({inputs[0].rsplit('/', 1)[1]}: {fit_record.tags[inputs[0]][:8]}..., ...).",
        file=out,
    )
    _print_locations(outcome, records, published, out)


def _kind(obj: Any) -> str:
    """The class of a loaded object; for a wrapped plain value, also the value's."""
    value = getattr(obj, "value", None)
    if type(obj).__name__ == "StorableValue" and value is not None:
        return f"StorableValue({type(value).__module__.split('.')[0]}.{type(value).__name__})"
    return type(obj).__name__


async def _count_rows(archive: Any) -> int:
    count = 0
    async for _ in archive.rows:
        count += 1
    return count


def _print_locations(
    outcome: Outcome,
    records: dict[str, list[ManifestRecord]],
    published: LakeryResource,
    out: TextIO,
) -> None:
    settings = outcome.settings
    [release] = records["forecast_release"]
    release_uris = sorted(
        {
            published.registry.get_storage(c.storage_name).uri(c.storage_data) or "?"
            for c in release.contents
        }
    )
    all_saved = published.find(tags={"project": "lakery-example"}, limit=None)
    on_disk = _disk_usage(settings.files_dir)
    print("\nWhere it lives:", file=out)
    print(f"  records   {redact_url(settings.database_url)}", file=out)
    print(
        f"            {len(all_saved)} manifests of this example so far "
        "(each run adds its own; identical content is stored once)",
        file=out,
    )
    added = on_disk - outcome.files_before
    print(
        f"  content   {settings.files_dir}  ({_size(on_disk)} in files, "
        f"{_size(added)} new this run)",
        file=out,
    )
    print(f"  release   {settings.published_storage_url}", file=out)
    print(f"            e.g. {release_uris[0]}", file=out)
    print(f"  dagster   {outcome.dagster_home}", file=out)
    print("\nBrowse the assets, their lineage and metadata in the Dagster UI:", file=out)
    print(f"  {ui_command(settings, outcome.dagster_home)}", file=out)
    if any(_redacted(v) != v for v in settings.lakery_env.values()):
        print("  (the password is shown as ***: put the real one in its place)", file=out)
    print("  then open http://127.0.0.1:3000", file=out)
    print("\nBrowse what was stored, its previews and lineage in the lakery viewer:", file=out)
    print(f"  {viewer_command(settings)}", file=out)
    print(f"  then open {settings.viewer_url} (materializations link there)", file=out)
    if find_spec("dagster_webserver") is None:
        print(
            "  (the UI needs the package dagster-webserver: pip install dagster-webserver)",
            file=out,
        )


def ui_command(settings: ExampleSettings, dagster_home: Path) -> str:
    """The shell command that opens this data in the Dagster UI (from the repository root).

    It sets every ``LAKERY_*`` variable this run was given, so that runs launched from the
    UI write to the same database and storage; a password in a URL shows as ``***``.
    """
    root = Path(__file__).resolve().parents[1]
    env = [f"DAGSTER_HOME={_shell_path(dagster_home, root)}"]
    if settings.data_dir != DEFAULT_DATA_DIR:
        env.insert(0, f"{DATA_DIR_ENV}={_shell_path(settings.data_dir, root)}")
    env += [f"{k}={shlex.quote(_redacted(v))}" for k, v in settings.lakery_env.items()]
    command = f"{' '.join(env)} .venv/bin/dagster dev -m example_project"
    if Path.cwd().resolve() != root:
        command = f"cd {shlex.quote(str(root))} && {command}"
    return command


def viewer_command(settings: ExampleSettings) -> str:
    """The shell command that serves this data in ``lakery serve`` (from the repository root),
    linked to the Dagster UI of `ui_command`; a password in a URL shows as ``***``."""
    root = Path(__file__).resolve().parents[1]
    port = urlsplit(settings.viewer_url).port or 8321
    env = [f"{k}={shlex.quote(_redacted(v))}" for k, v in settings.lakery_env.items()]
    database = [] if settings.database_from_env else ["--database-url", settings.database_url]
    if not settings.database_from_env and settings.data_dir.is_relative_to(root):
        relative = (settings.data_dir / "lakery.db").relative_to(root).as_posix()
        database = ["--database-url", f"sqlite:///{relative}"]
    words = [
        *env,
        ".venv/bin/lakery",
        "serve",
        *[shlex.quote(w) for w in database],
        "--registry-module",
        "example_project.storables",
        "--port",
        str(port),
        "--dagster-url",
        "http://127.0.0.1:3000",
    ]
    command = " ".join(words)
    if Path.cwd().resolve() != root:
        command = f"cd {shlex.quote(str(root))} && {command}"
    return command


def _redacted(url: str) -> str:
    """`url` as given, but with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def _shell_path(path: Path, root: Path) -> str:
    if path.is_relative_to(root):
        return f'"$PWD/{path.relative_to(root).as_posix()}"'
    return shlex.quote(str(path))


def _disk_usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The command line: materialize, summarize; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="python -m example_project.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"the example's data folder (default: ${DATA_DIR_ENV} or .lakery/example)",
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    settings = ExampleSettings.from_env(data_dir=args.data)
    print(f"lakery example: data in {settings.data_dir}", file=out)
    outcome = run_example(settings, out)
    summarize(outcome, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
