"""The example on a distributed deployment (`bash scripts/example.sh --distributed`).

    python -m example_project.distributed [--data DIR] [--workers 3]

Everything runs here, as it would across machines:

* the Dagster instance on PostgreSQL (``dagster-postgres``: run, event-log and schedule
  storage) in a database of its own, configured by ``<data>/dagster_home/dagster.yaml``;
* the ``dagster-celery`` executor with the Redis broker (``LAKERY_EXAMPLE_REDIS_URL``,
  default ``redis://127.0.0.1:6379/0``) and ``--workers`` Celery workers started with
  ``dagster-celery worker start`` (one task at a time each);
* lakery's records in PostgreSQL and all content in S3 (a moto S3 server on 127.0.0.1,
  or ``LAKERY_S3_ENDPOINT_URL`` when set), with a small pool per step process.

PostgreSQL is reached as ``LAKERY_EXAMPLE_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), which may create the databases
``lakery_example_dagster`` and ``lakery_example`` (made when missing). Then the example
pipeline runs on the workers (each day, then the reporting job) and everything is read
back through lakery and compared with what the Dagster instance recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from contextlib import suppress
from pathlib import Path
from typing import TextIO

import dagster as dg
from sqlalchemy.engine import make_url

from example_project.assets import DAYS
from example_project.assets import PUBLISHED_IO_MANAGER
from example_project.assets import cycle_fit
from example_project.assets import daily_features
from example_project.assets import forecast_release
from example_project.assets import raw_measurements
from example_project.assets import readings_archive
from example_project.assets import readings_table
from example_project.assets import sensor_summary
from example_project.assets import site_report
from example_project.definitions import ASSETS
from example_project.definitions import DAILY_JOB
from example_project.definitions import REGISTRY_MODULES
from example_project.definitions import REPORTING_JOB
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource

__all__ = ["MAX_OVERFLOW", "POOL_SIZE", "build_celery_defs", "daily_job", "main", "reporting_job"]

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ENV = "LAKERY_EXAMPLE_POSTGRES_URL"
REDIS_ENV = "LAKERY_EXAMPLE_REDIS_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DAGSTER_DATABASE = "lakery_example_dagster"
LAKERY_DATABASE = "lakery_example"
BUCKET = "lakery-example"
POOL_SIZE = 1
MAX_OVERFLOW = 1
"""Per step process and resource configuration: at most 2 connections (docs/deploying.md)."""

DAILY = [raw_measurements, daily_features, cycle_fit, readings_table]
REPORTING = [site_report, readings_archive, forecast_release, sensor_summary]


def build_celery_defs() -> dg.Definitions:
    """The example's assets and jobs on the Celery executor, lakery on PostgreSQL + S3.

    Read from the environment the runner sets (``LAKERY_DATABASE_URL``,
    ``LAKERY_FILES_URL``, ``LAKERY_STORAGE_URL``, ``LAKERY_S3_ENDPOINT_URL``,
    ``LAKERY_EXAMPLE_REDIS_URL``), in the run's process and in every worker alike.
    """
    from dagster_celery import celery_executor

    redis = os.environ.get(REDIS_ENV, DEFAULT_REDIS)

    def resource(storage_env: str) -> LakeryResource:
        return LakeryResource(
            database_url=dg.EnvVar("LAKERY_DATABASE_URL"),
            registry_modules=REGISTRY_MODULES,
            storage_url=os.environ.get(storage_env, ""),
            s3_endpoint_url=os.environ.get("LAKERY_S3_ENDPOINT_URL", ""),
            s3_region="us-east-1",
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )

    files, published = resource("LAKERY_FILES_URL"), resource("LAKERY_STORAGE_URL")
    executor = celery_executor.configured({"broker": redis, "backend": redis})
    return dg.Definitions(
        assets=ASSETS,
        jobs=[
            dg.define_asset_job(DAILY_JOB, selection=DAILY, executor_def=executor),
            dg.define_asset_job(REPORTING_JOB, selection=REPORTING, executor_def=executor),
        ],
        resources={
            "io_manager": LakeryIOManager(lakery=files),
            PUBLISHED_IO_MANAGER: LakeryIOManager(lakery=published),
            "lakery": files,
        },
    )


def daily_job() -> dg.JobDefinition:
    return build_celery_defs().resolve_job_def(DAILY_JOB)


def reporting_job() -> dg.JobDefinition:
    return build_celery_defs().resolve_job_def(REPORTING_JOB)


# -- the runner ---------------------------------------------------------------------------

DAGSTER_YAML = """\
# The example's distributed Dagster instance (example_project/distributed.py).
storage:
  postgres:
    postgres_url: {url}
telemetry:
  enabled: false
"""
CELERY_YAML = """\
execution:
  config:
    broker: {redis}
    backend: {redis}
"""


async def _create_database(admin_url: str, name: str) -> None:
    import asyncpg

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=10,
    )
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """``LAKERY_S3_ENDPOINT_URL`` if set, else a moto S3 server on 127.0.0.1 (stopped after)."""
    given = os.environ.get("LAKERY_S3_ENDPOINT_URL", "")
    if given:
        yield given
        return
    from lakery.testing.s3_server import start_moto_server
    from lakery.testing.s3_server import stop_process

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    process, url = start_moto_server()
    try:
        yield url
    finally:
        stop_process(process)


@contextmanager
def celery_workers(count: int, home: Path, out: TextIO) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` workers, as users start them: ``dagster-celery worker start`` (in the
    foreground, each in its own process group), one task at a time each."""
    config = home / "celery.yaml"
    config.write_text(CELERY_YAML.format(redis=os.environ.get(REDIS_ENV, DEFAULT_REDIS)))
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    workers = []
    logs = home / "workers"
    logs.mkdir(exist_ok=True)
    try:
        for i in range(1, count + 1):
            command = [
                str(bin_dir / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config),
                "-n",
                f"lakery-example-{i}@%h",
                "-l",
                "WARNING",
                "--",
                "--concurrency=1",
            ]
            log = (logs / f"worker-{i}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        _wait_for_workers(count, env, config)
        print(f"  {count} Celery workers up (logs in {logs})", file=out, flush=True)
        yield workers
    finally:
        for worker in workers:
            with suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def _wait_for_workers(count: int, env: dict[str, str], config: Path) -> None:
    from celery import Celery

    redis = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    app = Celery(broker=redis, backend=redis)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the {count} Celery workers did not answer within 90 s")


def prepare(data: Path) -> dict[str, str]:
    """The databases, the Dagster home and the environment of the deployment."""
    admin = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    for name in (DAGSTER_DATABASE, LAKERY_DATABASE):
        asyncio.run(_create_database(admin, name))
    base = make_url(admin)
    dagster_url = base.set(drivername="postgresql+psycopg2", database=DAGSTER_DATABASE)
    lakery_url = base.set(drivername="postgresql+asyncpg", database=LAKERY_DATABASE)
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        DAGSTER_YAML.format(url=dagster_url.render_as_string(hide_password=False))
    )
    return {
        "DAGSTER_HOME": str(home),
        "LAKERY_DATABASE_URL": lakery_url.render_as_string(hide_password=False),
        "LAKERY_FILES_URL": f"s3://{BUCKET}/files",
        "LAKERY_STORAGE_URL": f"s3://{BUCKET}/published",
    }


class ConnectionSampler:
    """Samples ``pg_stat_activity`` for lakery's database every 0.1 s, in a thread."""

    def __init__(self, url: str) -> None:
        import threading

        parsed = make_url(url)
        self.database = parsed.database
        self.dsn = (
            parsed.set(drivername="postgresql+psycopg2")
            .render_as_string(hide_password=False)
            .replace("postgresql+psycopg2", "postgresql")
        )
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg2

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                while not self._stop.wait(0.1):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()",
                        (self.database,),
                    )
                    self.peak = max(self.peak, int(cursor.fetchone()[0]))
        finally:
            connection.close()

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def connection_bound(workers: int) -> int:
    """The documented bound: step processes x resource configurations x pool (2 x 2 here)."""
    return workers * 2 * (POOL_SIZE + MAX_OVERFLOW)


def run_distributed(
    data: Path, workers: int, out: TextIO, *, days: int | None = None
) -> dict[str, list[str]]:
    """Run the example on `workers` Celery workers; return the manifest ids per asset.

    `days`: only the first days' daily runs, and no reporting (which needs every day).
    """
    os.environ.update(prepare(data))
    home = Path(os.environ["DAGSTER_HOME"])
    manifests: dict[str, list[str]] = {}
    with s3_endpoint() as endpoint:
        os.environ["LAKERY_S3_ENDPOINT_URL"] = endpoint
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        with suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=BUCKET)
        print(f"lakery example, distributed: Dagster instance in {home}", file=out)
        sampler = ConnectionSampler(os.environ["LAKERY_DATABASE_URL"])
        with celery_workers(workers, home, out), dg.DagsterInstance.get() as instance, sampler:
            started = time.monotonic()
            all_days = DAYS.get_partition_keys()
            runs = [
                (dg.reconstructable(daily_job), {"dagster/partition": d}) for d in all_days[:days]
            ]
            if days is None or days >= len(all_days):
                runs.append((dg.reconstructable(reporting_job), {}))
            for job, tags in runs:
                with dg.execute_job(job, instance=instance, tags=tags) as result:
                    if not result.success:
                        raise SystemExit(f"FAILED: {result.job_def.name} {tags}")
                    pids = {e.pid for e in result.all_events if e.is_step_start}
                    for event in result.get_asset_materialization_events():
                        m = event.event_specific_data.materialization
                        manifests.setdefault(m.asset_key.to_user_string(), []).append(
                            str(m.metadata["lakery/manifest_id"].value)
                        )
                    print(
                        f"  {result.job_def.name:15} {tags.get('dagster/partition', ''):10} "
                        f"{len(result.get_asset_materialization_events())} assets on "
                        f"{len(pids)} worker processes",
                        file=out,
                        flush=True,
                    )
            print(f"Done in {time.monotonic() - started:.1f} s.", file=out)
            check_instance(instance, manifests)
        print(
            f"Peak connections to lakery's database (pg_stat_activity, every 0.1 s): "
            f"{sampler.peak}; documented bound {connection_bound(workers)} "
            f"({workers} workers x 2 resource configurations x pool {POOL_SIZE}+{MAX_OVERFLOW})",
            file=out,
        )
        os.environ["LAKERY_EXAMPLE_PEAK_CONNECTIONS"] = str(sampler.peak)
        read_back(manifests, out)
    return manifests


def check_instance(instance: dg.DagsterInstance, manifests: dict[str, list[str]]) -> None:
    """The newest materialization of each asset in the Dagster instance (PostgreSQL) names a
    manifest this invocation saved."""
    for asset, ids in manifests.items():
        [record] = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        assert record.asset_materialization is not None
        assert str(record.asset_materialization.metadata["lakery/manifest_id"].value) in ids


def read_back(manifests: dict[str, list[str]], out: TextIO) -> None:
    """Load every manifest back through lakery (sizes and sha256 checked)."""
    lakery = LakeryResource(
        database_url=os.environ["LAKERY_DATABASE_URL"],
        registry_modules=REGISTRY_MODULES,
        storage_url=os.environ["LAKERY_FILES_URL"],  # registers the S3 storage
        s3_endpoint_url=os.environ["LAKERY_S3_ENDPOINT_URL"],
        s3_region="us-east-1",
    )
    try:
        print("Read back through lakery (records in PostgreSQL, content in S3):", file=out)
        for asset, ids in manifests.items():
            records = [lakery.get(i) for i in ids]
            lakery.load_many(records)
            storages = sorted({c.storage_name for r in records for c in r.contents})
            parts = sum(len(r.contents) for r in records)
            print(f"  {asset:17} {len(ids):>3} manifests {parts:>4} parts  {storages}", file=out)
    finally:
        lakery.close()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m example_project.distributed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=ROOT / ".lakery" / "distributed")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--days", type=int, default=None, help="only the first days, no report")
    args = parser.parse_args(argv)
    run_distributed(args.data.resolve(), args.workers, out or sys.stdout, days=args.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
