"""Headless smoke test: `dagster dev -m example_project`, driven through its GraphQL API.

Starts the real command (webserver, daemon and code server) on 127.0.0.1 in a session of
its own, launches a run of one day of ``daily_pipeline`` with the ``launchRun`` mutation,
waits for it to succeed, reads the materialization metadata (manifest id, ``dagster/uri``,
input manifest ids, data version) back through GraphQL and checks it against lakery's
records. Then SIGINT to the process group (as Ctrl-C would), with SIGKILL as a last resort,
and a check that no process of the group is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from example_project.definitions import REGISTRY_MODULES
from example_project.settings import DATA_DIR_ENV
from lakery_dagster import LakeryResource
from tests.conftest import IN_CI
from tests.example_project.conftest import clean_environment
from tests.example_project.conftest import make_dagster_home
from tests.example_project.conftest import subprocess_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DAY = "2026-01-01"
START_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

# Python ignores SIGINT when it starts with SIGINT ignored, as children of a non-interactive
# shell's background jobs do; restore the default so that dagster dev gets Ctrl-C semantics.
LAUNCHER = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with _OPENER.open(request, timeout=60) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"GraphQL error {exc.code}: {exc.read()[:2000]!r}") from exc
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Processes in the process group `pgid` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _wait_until_up(server: DevServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"dagster dev exited early:\n{server.log.read_text()[-4000:]}")
        try:
            with _OPENER.open(f"{server.url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"dagster dev did not answer in {START_TIMEOUT} s:\n{server.log.read_text()[-4000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> tuple[bool, list[int]]:
    """SIGINT to the group, then SIGKILL whatever is left; (clean exit, leftovers)."""
    pgid = process.pid  # the leader of its own session and group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    clean = True
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        clean = False
    deadline = time.monotonic() + 10
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = _group_members(pgid)
    if leftovers or process.poll() is None:
        clean = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
    return clean, leftovers


@pytest.fixture
def dagster_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevServer]:
    if find_spec("dagster_webserver") is None:
        problem = "dagster dev needs the dagster-webserver package, which is not installed"
        if IN_CI:
            pytest.fail(f"{problem} (CI=true: the smoke test must run)", pytrace=False)
        pytest.skip(f"SKIPPING THE DAGSTER DEV SMOKE TEST: {problem}")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to check that no process is left behind")
    clean_environment(monkeypatch)
    data_dir = tmp_path / "example"
    home = make_dagster_home(tmp_path / "dagster_home")
    env = subprocess_env(DAGSTER_HOME=str(home), **{DATA_DIR_ENV: str(data_dir)})
    port = _free_port()
    dagster = Path(sys.executable).with_name("dagster")
    command = [dagster, "dev", "-m", "example_project", "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *map(str, command)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(process, f"http://127.0.0.1:{port}", data_dir, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        clean, leftovers = _stop(process)
    assert clean, (
        f"dagster dev did not stop on SIGINT (left: {leftovers}):\n{log.read_text()[-3000:]}"
    )


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""

MATERIALIZATION = """
query Materialization($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId
        partition
        tags { key value }
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on JsonMetadataEntry { jsonString }
          ... on IntMetadataEntry { intValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on UrlMetadataEntry { url }
        }
      }
    }
  }
}
"""


def _materialization(server: DevServer, asset: str, partition: str) -> dict[str, Any]:
    data = server.graphql(MATERIALIZATION, {"key": {"path": [asset]}, "partitions": [partition]})
    [event] = data["assetOrError"]["assetMaterializations"]
    metadata = {}
    for entry in event["metadataEntries"]:
        if "jsonString" in entry:
            metadata[entry["label"]] = json.loads(entry["jsonString"])
        else:
            values = [entry.get(k) for k in ("text", "intValue", "mdStr", "url")]
            metadata[entry["label"]] = next((v for v in values if v is not None), None)
    tags = {tag["key"]: tag["value"] for tag in event["tags"]}
    return {"run_id": event["runId"], "metadata": metadata, "tags": tags}


REPOSITORIES = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } } }
  }
}
"""


def _repository(server: DevServer) -> dict[str, Any]:
    """The example's repository, once the code location has loaded."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        nodes = server.graphql(REPOSITORIES)["repositoriesOrError"].get("nodes")
        if nodes:
            [repository] = nodes
            return repository
        time.sleep(0.5)
    pytest.fail(f"the code location did not load:\n{server.log.read_text()[-4000:]}")


def test_dagster_dev_runs_the_example(dagster_dev: DevServer) -> None:
    server = dagster_dev
    location = _repository(server)
    assert location["location"]["name"] == "example_project"
    params = {
        "selector": {
            "repositoryLocationName": location["location"]["name"],
            "repositoryName": location["name"],
            "jobName": "daily_pipeline",
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }
    launched = server.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(0.5)
    assert status == "SUCCESS", f"run {run_id}: {status}\n{server.log.read_text()[-4000:]}"

    features = _materialization(server, "daily_features", DAY)
    fit = _materialization(server, "cycle_fit", DAY)
    for event in (features, fit):
        assert event["run_id"] == run_id
        assert event["metadata"]["dagster/uri"].startswith(("file://", "lakery://manifest/"))
        assert event["metadata"]["dagster/size_bytes"] > 0
        content_hash = event["metadata"]["lakery/content_hash"]
        assert event["tags"]["dagster/data_version"] == content_hash[:32]
    features_id = features["metadata"]["lakery/manifest_id"]
    fit_id = fit["metadata"]["lakery/manifest_id"]
    # The example links its materializations to the viewer of its printed `lakery serve`.
    viewer = "http://127.0.0.1:8321/manifests/"
    assert fit["metadata"]["lakery/url"] == viewer + fit_id
    assert f"| daily_features | {DAY} | [{features_id}]({viewer}{features_id}) |" in (
        fit["metadata"]["lakery/inputs"]
    )

    # The same, from lakery's own records (the example's default SQLite file).
    lakery = LakeryResource(
        database_url=f"sqlite+aiosqlite:///{server.data_dir / 'lakery.db'}",
        registry_modules=REGISTRY_MODULES,
        storage_url=(server.data_dir / "files").as_uri(),
    )
    try:
        record = lakery.get(fit_id)
        assert record.tags["dagster/run_id"] == run_id
        assert record.tags["dagster/partition"] == DAY
        assert record.tags[f"dagster/input/daily_features/{DAY}"] == features_id
        assert lakery.load(record).window == [DAY]
        [edge] = lakery.lineage(fit_id, down=False, depth=1).edges
        assert (str(edge.parent_id), edge.label) == (features_id, "daily_features")
    finally:
        lakery.close()
