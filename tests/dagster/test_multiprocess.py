"""One run on the multiprocess executor, on a persistent instance: several partitions at
once, step processes writing to the same database concurrently, nothing lost."""

from __future__ import annotations

import multiprocessing.forkserver
import os
from pathlib import Path

import dagster as dg
import pytest

from lakery_dagster import LakeryResource
from tests.dagster import defs_multiprocess
from tests.dagster.storables import Reading

pytestmark = pytest.mark.slow


def test_multiprocess_executor(lakery_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAKERY_TEST_MP_DATABASE_URL", lakery_url)
    tags = {"dagster/asset_partition_range_start": "p1", "dagster/asset_partition_range_end": "p4"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        job = dg.reconstructable(defs_multiprocess.lakery_multiprocess_job)
        with dg.execute_job(job, instance=instance, tags=tags) as result:
            assert result.success, [
                e.event_specific_data for e in result.all_events if e.is_failure
            ]
            pids = {
                event.pid for event in result.all_events if event.event_type_value == "STEP_START"
            }
            assert len(pids) == 4  # each step ran in a process of its own
        events = {}
        for name in ["numbers", "total", "readings", "longest"]:
            records = instance.fetch_materializations(dg.AssetKey(name), limit=10).records
            events[name] = {r.partition_key: r.asset_materialization for r in records}
            assert sorted(events[name]) == ["p1", "p2", "p3", "p4"]

    lakery = LakeryResource(database_url=lakery_url)
    try:
        for name in ["total", "readings", "longest"]:
            stress = lakery.find(tags={"stress": name}, limit=None)
            assert sorted(int(r.tags["i"]) for r in stress) == list(range(15))
        loaded = {}
        for name, by_partition in events.items():
            for partition, materialization in by_partition.items():
                manifest_id = materialization.metadata["lakery/manifest_id"].value
                record = lakery.get(manifest_id)
                assert record.tags["dagster/partition"] == partition
                assert record.tags["dagster/asset_key"] == name
                loaded[name, partition] = lakery.load(record)
        for partition in ["p1", "p2", "p3", "p4"]:
            n = int(partition[1:]) * 3
            assert loaded["numbers", partition].value == list(range(n))
            assert loaded["total", partition].value == sum(range(n))
            assert loaded["longest", partition].value == n
            assert loaded["readings", partition] == Reading(partition, [float(v) for v in range(n)])
        assert len(lakery.find(tags={"dagster/asset_key": "readings"}, limit=None)) == 4
    finally:
        lakery.close()


def test_multiprocess_unpartitioned_chain(
    lakery_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step in its own process: inputs come from lakery's records, checked against the
    instance (no records of the same run are at hand in another process)."""
    monkeypatch.setenv("LAKERY_TEST_MP_DATABASE_URL", lakery_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    manifests: dict[str, str] = {}
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        job = dg.reconstructable(defs_multiprocess.lakery_multiprocess_chain_job)
        for _ in range(2):  # the second run rematerializes everything over the first
            with dg.execute_job(job, instance=instance) as result:
                assert result.success, [
                    e.event_specific_data for e in result.all_events if e.is_failure
                ]
                run_id = result.run_id
        for name in ["base", "doubled", "report"]:
            [record] = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
            assert record.run_id == run_id
            manifests[name] = record.asset_materialization.metadata["lakery/manifest_id"].value

    lakery = LakeryResource(database_url=lakery_url)
    try:
        report = lakery.get(manifests["report"])
        assert lakery.load(report).value == {"base": 6, "doubled": 12}
        assert report.tags["dagster/input/base"] == manifests["base"]
        assert report.tags["dagster/input/doubled"] == manifests["doubled"]
        assert lakery.get(manifests["doubled"]).tags["dagster/input/base"] == manifests["base"]
    finally:
        lakery.close()


def test_multiprocess_forkserver_preload(
    lakery_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forkserver start method with a preloaded module that has opened lakery's engine
    (bridge loop running, a pooled connection): each step process is forked from it, drops
    what it inherited (os.register_at_fork) and opens its own engine.

    PostgreSQL only: the forkserver lives as long as the process that started it (here
    the test process) and its children get its environment, not the current one, so a
    second run with another database URL would go to the first one's database.
    """
    if not lakery_url.startswith("postgresql"):
        pytest.skip("one forkserver per process: run once, on PostgreSQL (pooled connections)")
    monkeypatch.setenv("LAKERY_TEST_MP_DATABASE_URL", lakery_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        job = dg.reconstructable(defs_multiprocess.lakery_forkserver_job)
        with dg.execute_job(job, instance=instance) as result:
            assert result.success, [
                e.event_specific_data for e in result.all_events if e.is_failure
            ]
            pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
            assert len(pids) == 4
        [record] = instance.fetch_materializations(dg.AssetKey("fork_report"), limit=1).records
        manifest_id = record.asset_materialization.metadata["lakery/manifest_id"].value

    lakery = LakeryResource(database_url=lakery_url)
    try:
        forked = lakery.load(lakery.get(manifest_id)).value
        assert forked["pid"] in pids
        assert forked["inherited_engines"] >= 1  # forked from the preloaded forkserver
        assert forked["saved"] == 3
        assert forked["parent"] != os.getpid()  # a child of the forkserver, not of pytest
        assert lakery.load(lakery.find(tags={"dagster/asset_key": "report"}, limit=1)[0]).value == {
            "base": 6,
            "doubled": 12,
        }
    finally:
        lakery.close()
        _stop_forkserver()


def _stop_forkserver() -> None:
    """Stop this process's forkserver (it keeps the environment it started with)."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()
