"""With ``LAKERY_STORAGE_URL=s3://...`` the published release goes to S3 (a moto server on
127.0.0.1), its records stay in the example's database, and it loads back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest

from example_project import analysis
from example_project.definitions import REPORTING_JOB
from example_project.definitions import build_defs
from example_project.definitions import lakery_resources
from example_project.run import QUIET_LOGS
from example_project.settings import DATA_DIR_ENV
from example_project.settings import S3_ENDPOINT_ENV
from example_project.settings import S3_REGION_ENV
from example_project.settings import STORAGE_ENV
from example_project.settings import ExampleSettings
from lakery.extra.aws import S3Storage
from lakery.testing.s3_server import start_moto_server
from lakery.testing.s3_server import stop_process
from tests.example_project.conftest import clean_environment
from tests.example_project.conftest import make_dagster_home
from tests.extra_aws.conftest import ACCESS_KEY_ID
from tests.extra_aws.conftest import REGION
from tests.extra_aws.conftest import SECRET_ACCESS_KEY

pytestmark = pytest.mark.slow

BUCKET = "lakery-example"


@pytest.fixture
def s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with dummy credentials; nothing from ~/.aws."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    process, url = start_moto_server(timeout=20)
    try:
        yield url
    finally:
        stop_process(process)


def test_release_is_published_to_s3(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "example"))
    monkeypatch.setenv("DAGSTER_HOME", str(make_dagster_home(tmp_path / "dagster_home")))
    monkeypatch.setenv(STORAGE_ENV, f"s3://{BUCKET}/releases")
    monkeypatch.setenv(S3_ENDPOINT_ENV, s3_endpoint)
    monkeypatch.setenv(S3_REGION_ENV, REGION)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    settings = ExampleSettings.from_env()
    assert settings.publishes_to_s3
    files, published = lakery_resources(settings)

    # The report, as the site_report asset saves it (here from three days, in memory); the
    # release's input falls back to the newest manifest of site_report in lakery.
    raw = {d: analysis.simulate_day(d) for d in ["2026-01-01", "2026-01-02", "2026-01-03"]}
    features = {d: analysis.features_of(m) for d, m in raw.items()}
    fits = {d: analysis.fit_cycle(d, {k: features[k] for k in features if k <= d}) for d in raw}
    report = analysis.report_of(fits, features)
    try:
        saved_report = files.save(report, tags={"dagster/asset_key": "site_report"})
        with dg.DagsterInstance.get() as instance:
            result = (
                build_defs(settings)
                .resolve_job_def(REPORTING_JOB)
                .execute_in_process(
                    instance=instance,
                    asset_selection=[dg.AssetKey("forecast_release")],
                    run_config=QUIET_LOGS,
                )
            )
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = event.event_specific_data.materialization.metadata
        assert f"| site_report | — | [{saved_report.id}](" in metadata["lakery/inputs"].value

        record = published.get(str(metadata["lakery/manifest_id"].value))
        assert {c.storage_name for c in record.contents} == {S3Storage.name}
        assert {c.storage_data["bucket"] for c in record.contents} == {BUCKET}
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert len(keys) >= len(record.contents)
        assert all(key.startswith("releases/") for key in keys)
        assert published.load(record) == analysis.release_of(report)
        assert not list((tmp_path / "example").glob("published/**/*.*"))  # nothing local
    finally:
        files.close()
        published.close()
