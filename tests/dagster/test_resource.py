"""LakeryResource: configuration, storage URLs, the synchronous API, one engine per process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakery import NotFoundError
from lakery.builtin import FileStorage
from lakery.builtin import StorableValue
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from lakery_dagster import engines
from tests.dagster.storables import Reading


def test_sync_api(lakery: LakeryResource) -> None:
    first = lakery.save(Reading("a", [1.0]), tags={"kind": "reading"})
    more = lakery.save_many(
        [StorableValue(1), StorableValue(2)], tags=[{"kind": "n", "i": "1"}, {"kind": "n"}]
    )
    assert [r.tags for r in more] == [{"kind": "n", "i": "1"}, {"kind": "n"}]
    assert lakery.load(first) == Reading("a", [1.0])
    assert lakery.load(str(first.id), Reading) == Reading("a", [1.0])
    assert [v.value for v in lakery.load_many([more[1].id, more[0]])] == [2, 1]
    assert [r.id for r in lakery.find(tags={"kind": "n"})] == sorted(
        (r.id for r in more), reverse=True
    )
    assert [r.id for r in lakery.find(cls=Reading)] == [first.id]
    got = lakery.get(first.id)
    assert got.tags == {"kind": "reading"} and len(got.contents) == 2
    assert set(lakery.contents([first])) == {first.id}
    with pytest.raises(NotFoundError, match="no lakery manifest"):
        lakery.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(Exception, match="one per object"):
        lakery.save_many([StorableValue(1)], tags=[{}, {}])


def test_default_database_in_dagster_home(dagster_home: Path) -> None:
    lakery = LakeryResource()
    assert lakery.engine_settings().url == f"sqlite+aiosqlite:///{dagster_home / 'lakery.db'}"
    record = lakery.save(StorableValue("kept"))
    lakery.close()
    assert (dagster_home / "lakery.db").exists()
    again = LakeryResource()
    assert again.load(record.id).value == "kept"
    again.close()


def test_default_database_in_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert LakeryResource().engine_settings().url.endswith(f"{tmp_path}/lakery.db")
    # Plain driver names get async drivers.
    url = LakeryResource(database_url="postgresql://u@h/db").engine_settings().url
    assert url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize("form", ["file-url", "relative"])
def test_file_storage_url(
    lakery_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = (tmp_path / "blobs").as_uri() if form == "file-url" else "blobs"
    lakery = LakeryResource(database_url=lakery_url, storage_url=url)
    assert isinstance(lakery.registry.default_storage, FileStorage)
    record = lakery.save(StorableValue({"big": list(range(100))}))
    [content] = record.contents
    assert content.storage_name == "lakery.file@v1"
    assert (tmp_path / "blobs" / content.storage_data["key"]).exists()
    assert lakery.load(record).value == {"big": list(range(100))}
    lakery.close()


def test_uri_metadata_for_file_storage(lakery_url: str, tmp_path: Path) -> None:
    lakery = LakeryResource(database_url=lakery_url, storage_url=str(tmp_path / "files"))
    instance = dg.DagsterInstance.ephemeral()

    @dg.asset
    def stored() -> list[int]:
        return [1, 2, 3]

    dg.materialize(
        [stored], resources={"io_manager": LakeryIOManager(lakery=lakery)}, instance=instance
    )
    event = instance.get_latest_materialization_event(dg.AssetKey("stored"))
    uri = event.asset_materialization.metadata["dagster/uri"].value
    assert uri.startswith((tmp_path / "files").as_uri())
    lakery.close()


def test_one_engine_per_process_shared_and_kept_for_the_next_run(lakery_url: str) -> None:
    from lakery.common.sync import run_sync

    first = LakeryResource(database_url=lakery_url)
    second = LakeryResource(database_url=lakery_url)
    before = dict(engines._ENGINES)
    assert first.client is not second.client
    settings = first.engine_settings()
    engine = first.client._engine
    assert engine is second.client._engine
    assert engines._ENGINES[settings].references == 2 + (
        before[settings].references if settings in before else 0
    )
    first.close()
    second.close()
    # Nobody uses it now: it stays open, idle, for the next run in this process.
    assert engines._ENGINES[settings].references == (
        before[settings].references if settings in before else 0
    )
    third = LakeryResource(database_url=lakery_url)
    assert third.client._engine is engine
    third.close()
    run_sync(engines.dispose_idle_engines())
    assert settings not in engines._ENGINES or engines._ENGINES[settings].references > 0


def test_idle_engines_beyond_the_limit_are_disposed(tmp_path: Path) -> None:
    from lakery.common.sync import run_sync

    run_sync(engines.dispose_idle_engines())
    urls = [f"sqlite:///{tmp_path / f'{i}.db'}" for i in range(engines.MAX_IDLE_ENGINES + 2)]
    settings = []
    for url in urls:
        resource = LakeryResource(database_url=url)
        resource.save(StorableValue(url))
        settings.append(resource.engine_settings())
        resource.close()
    idle = [s for s, entry in engines._ENGINES.items() if entry.references == 0]
    assert idle == settings[-engines.MAX_IDLE_ENGINES :]  # the least recently used went first
    run_sync(engines.dispose_idle_engines())
    assert not [s for s in settings if s in engines._ENGINES]


def test_configured_from_run_config(lakery_url: str, tmp_path: Path) -> None:
    @dg.asset
    def configured(lakery: LakeryResource) -> None:
        assert lakery.storage_url == str(tmp_path / "cfg")
        lakery.save(StorableValue("from config"), tags={"via": "config"})

    defs = dg.Definitions(
        assets=[configured],
        resources={"lakery": LakeryResource.configure_at_launch()},
    )
    job = defs.resolve_implicit_global_asset_job_def()
    config = {"database_url": lakery_url, "storage_url": str(tmp_path / "cfg")}
    result = job.execute_in_process(run_config={"resources": {"lakery": {"config": config}}})
    assert result.success
    # A FileStorage reads only under its own root: the reader names the same one.
    checker = LakeryResource(database_url=lakery_url, storage_url=str(tmp_path / "cfg"))
    [record] = checker.find(tags={"via": "config"})
    assert checker.load(record).value == "from config"
    checker.close()


def test_s3_storage_url_builds_s3_storage() -> None:
    lakery = LakeryResource(
        database_url="sqlite://",
        storage_url="s3://my-bucket/some/prefix/",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_region="eu-west-1",
    )
    storage: Any = lakery.build_registry().default_storage
    assert type(storage).__name__ == "S3Storage"
    assert storage.bucket == "my-bucket"
    assert "some/prefix" in str(storage.prefix)


def test_sqlite_engines_use_wal_and_busy_timeout(tmp_path: Path) -> None:
    from sqlalchemy import text

    from lakery.common.sync import run_sync

    lakery = LakeryResource(database_url=f"sqlite:///{tmp_path / 'wal.db'}", sqlite_busy_timeout=7)

    engine = lakery.client._engine
    assert engine is not None

    async def pragmas() -> tuple[str, int]:
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
            return mode, busy

    assert run_sync(pragmas()) == ("wal", 7000)
    lakery.close()


def test_forked_child_opens_its_own_engine(lakery: LakeryResource) -> None:
    import gc
    import os
    import signal

    parent_record = lakery.save(StorableValue("parent"))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Collecting garbage in the child must not close the parent's connections
            # (this once left the parent's next query waiting forever on PostgreSQL).
            gc.collect()
            record = lakery.save(StorableValue("child"), tags={"from": "child"})
            gc.collect()
            ok = lakery.load(parent_record).value == "parent" and lakery.load(record).value
            code = 0 if ok == "child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    def too_slow(*_: object) -> None:
        raise TimeoutError("the parent's engine hangs after the child used its own")

    previous = signal.signal(signal.SIGALRM, too_slow)  # fail, don't hang, on a regression
    signal.alarm(60)
    try:
        [child_record] = lakery.find(tags={"from": "child"})
        assert lakery.load(child_record).value == "child"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_in_memory_database_goes_with_its_last_resource() -> None:
    first = LakeryResource(database_url="sqlite://")
    first.save(StorableValue(1), tags={"kind": "memory"})
    settings = first.engine_settings()
    first.close()
    assert settings not in engines._ENGINES
    second = LakeryResource(database_url="sqlite://")
    assert second.find(tags={"kind": "memory"}) == []  # a new, empty database
    second.close()


def test_copies_for_a_run_skip_the_config_schema(lakery: LakeryResource) -> None:
    """Dagster copies a resource several times per run; unchanged values copy cheaply."""
    opened = lakery.client
    same = lakery._with_updated_values({"database_url": lakery.database_url})
    assert same is not lakery and same.model_dump() == lakery.model_dump()
    assert same._client is None and same._lock is not lakery._lock
    assert lakery._client is opened  # the original keeps its engine reference
    changed = lakery._with_updated_values({"pool_size": 7})
    assert changed.pool_size == 7 and changed.database_url == lakery.database_url
    from_env = LakeryResource(database_url=dg.EnvVar("LAKERY_TEST_UNSET_URL"))
    assert from_env._has_values({"database_url": "sqlite://"}) is False  # resolved: not a copy


def test_dumps_and_reprs_hide_the_database_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = "postgresql+asyncpg://lakery:pa55word@db.example/lakery"
    resource = LakeryResource(database_url=url)
    for shown in (repr(resource), str(resource.model_dump()), resource.model_dump_json()):
        assert "pa55word" not in shown and "lakery:***@db.example" in shown
    assert resource.database_url == url  # the attribute keeps what it was given
    monkeypatch.setenv("LAKERY_TEST_DB", url)
    from_env = LakeryResource(database_url=dg.EnvVar("LAKERY_TEST_DB"))
    assert from_env.model_dump()["database_url"] == "LAKERY_TEST_DB"


def test_lineage_sync_face(lakery: LakeryResource) -> None:
    raw = lakery.save(StorableValue("raw"))
    config = lakery.save(StorableValue("config"))
    report = lakery.save(
        StorableValue("report"), derived_from={"raw": raw, "config": str(config.id)}
    )
    both = lakery.save_many([StorableValue(1), StorableValue(2)], derived_from=[report.id])
    per = lakery.save_many([StorableValue(3), StorableValue(4)], derived_from=[[raw], None])
    found = lakery.lineage(str(report.id))
    assert set(found.manifests) == {raw.id, config.id, report.id, *(r.id for r in both)}
    assert {(e.parent_id, e.label) for e in found.edges if e.child_id == report.id} == {
        (raw.id, "raw"),
        (config.id, "config"),
    }
    assert set(lakery.lineage(raw, up=False, depth=1).manifests) == {raw.id, report.id, per[0].id}
    assert set(lakery.lineage(per[1]).manifests) == {per[1].id}
    with pytest.raises(NotFoundError, match="do not exist"):
        lakery.save(StorableValue(5), derived_from=["00000000-0000-0000-0000-000000000000"])
    with pytest.raises(Exception, match="one per object"):
        lakery.save_many([StorableValue(1)], derived_from=[[raw], [raw]])
