"""A plain ``lakery verify`` / ``gc`` / ``show``: the default registry has every installed
extra, and storages the records name are made from their locators."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import Registry
from lakery import save_one
from lakery.builtin import DatabaseStorage
from lakery.builtin import FileStorage
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue
from lakery.cli import main
from lakery.extra.pydantic import StorableModel


class Reading(StorableModel, class_id="c11d15c0e4e0000000000000000000a1", frozen=True):
    """A pydantic model with a numpy array part."""

    site: str
    values: np.ndarray


async def _numbers() -> AsyncIterator[dict[str, int]]:
    for i in range(5):
        yield {"i": i}


def _objects() -> list[Any]:
    return [
        Reading(site="a", values=np.arange(12, dtype=np.float32)),
        StorableValue(pd.DataFrame({"x": [1, 2, 3]})),
        StorableValue(pl.DataFrame({"y": [1.5, 2.5]})),
        StorableValue(pa.table({"z": ["p", "q"]})),
        StorableValue({"json": True}),
        StorableStream(_numbers()),
    ]


async def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    status = await anyio.to_thread.run_sync(main, list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def save_all(new_session: async_sessionmaker, registry: Registry, objs: list[Any]) -> list:
    records = []
    async with new_session() as session:
        for obj in objs:
            records.append(await save_one(obj, session=session, registry=registry))
    return records


def extras_registry(storage: Any) -> Registry:
    modules = ["lakery.builtin", "lakery.extra.pydantic", "lakery.extra.numpy"]
    modules += ["lakery.extra.arrow", "lakery.extra.pandas", "lakery.extra.polars"]
    return Registry(modules=modules, default_storage=storage)


async def test_verify_a_store_of_builtins_and_extras_without_flags(
    new_session: async_sessionmaker, database_url: str, tmp_path: Path, capsys: Any
) -> None:
    # like the example: files under one root and a release under another, both with the
    # default name, and small values in the database itself
    await save_all(new_session, extras_registry(FileStorage(tmp_path / "files")), _objects())
    await save_all(new_session, extras_registry(FileStorage(tmp_path / "published")), _objects())
    await save_all(new_session, extras_registry(None), [StorableValue({"in": "database"})])
    status, out, err = await run(capsys, "verify", "--json", "-q", "--database-url", database_url)
    report = json.loads(out)
    assert status == 0 and report["ok"], report["problems"][:3]
    assert report["manifests"] == 13 and err == ""
    # gc lists the blobs of both roots: a manifest deleted under one, its blobs go
    files = {p for p in (tmp_path / "files").rglob("*/*") if p.is_file()}
    published = {p for p in (tmp_path / "published").rglob("*/*") if p.is_file()}
    status, out, _ = await run(capsys, "gc", "-q", "--json", "--database-url", database_url)
    [both] = [s for s in json.loads(out)["storages"] if s["storage"] == FileStorage.name]
    assert status == 0 and both["listed"] == len(files) + len(published) == 2 * len(files)
    assert both["recent"] == both["listed"]  # within the default grace period
    # a manifest whose blob is under the second root only: deleted, its blob is collected
    extra = FileStorage(tmp_path / "published")
    [only] = await save_all(new_session, extras_registry(extra), [StorableValue({"only": 1})])
    base = ["-q", "--database-url", database_url]
    assert (await run(capsys, "delete", str(only.id), *base))[0] == 0
    status, out, _ = await run(capsys, "gc", "--grace", "0", "--delete", "--json", *base)
    [both] = [s for s in json.loads(out)["storages"] if s["storage"] == FileStorage.name]
    assert status == 0 and both["deleted"] == 1 and both["referenced"] == 2 * len(files)
    assert {p for p in (tmp_path / "published").rglob("*/*") if p.is_file()} == published
    assert {p for p in (tmp_path / "files").rglob("*/*") if p.is_file()} == files


async def test_storages_made_from_records(
    new_session: async_sessionmaker, database_url: str, tmp_path: Path, capsys: Any
) -> None:
    archive = FileStorage(tmp_path / "archive", name="archive")
    inline = DatabaseStorage(name="inline")
    registry = Registry(modules=["lakery.builtin"], storages=[archive, inline])
    [kept, dropped] = await save_all(
        new_session,
        Registry(registries=[registry], default_storage=archive),
        [StorableValue({"kept": 1}), StorableValue({"dropped": 2})],
    )
    await save_all(
        new_session,
        Registry(registries=[registry], default_storage=inline),
        [StorableValue({"inline": 3})],
    )
    base = ["--database-url", database_url, "--json", "-q"]
    status, out, _ = await run(capsys, "verify", *base)
    assert status == 0 and json.loads(out)["parts"] == 3
    status, out, _ = await run(capsys, "show", str(kept.id), *base)
    assert json.loads(out)["contents"][0]["uri"].startswith((tmp_path / "archive").as_uri())
    # one root: gc collects it as the application's own storage would
    assert (await run(capsys, "delete", str(dropped.id), *base))[0] == 0
    status, out, _ = await run(capsys, "gc", "--grace", "0", "--delete", *base)
    collected = {s["storage"]: s for s in json.loads(out)["storages"]}
    assert status == 0 and collected["archive"]["deleted"] == 1
    assert len(list((tmp_path / "archive").rglob("*/*"))) == 1
    # a root that is gone: reported, with how to point at the data
    shutil.move(tmp_path / "archive", tmp_path / "moved")
    status, out, err = await run(capsys, "verify", "--database-url", database_url)
    assert status == 1 and "storage 'archive' is not in the registry" in out
    assert "which do not exist here; pass --storage-url archive=URL" in err
    status, out, _ = await run(
        capsys, "verify", *base, "--storage-url", f"archive={tmp_path / 'moved'}"
    )
    assert status == 0 and json.loads(out)["ok"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_s3_storage_made_from_records(
    new_session: async_sessionmaker,
    database_url: str,
    make_storage: Any,
    moto_endpoint: str,
    capsys: Any,
) -> None:
    s3 = make_storage(prefix="teams/ml", name="lake")
    registry = Registry(modules=["lakery.builtin"], default_storage=s3)
    await save_all(new_session, registry, [StorableValue({"on": "s3"})])
    base = ["--database-url", database_url, "--json", "-q", "--s3-endpoint-url", moto_endpoint]
    status, out, _ = await run(capsys, "verify", *base)
    assert status == 0 and json.loads(out)["ok"]
    status, out, _ = await run(capsys, "gc", "--grace", "0", *base)
    [lake] = [s for s in json.loads(out)["storages"] if s["storage"] == "lake"]
    assert lake["listed"] == 1 and lake["referenced"] == 1
