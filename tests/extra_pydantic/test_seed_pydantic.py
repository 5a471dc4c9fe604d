"""The pydantic snippets of the user's description (tests/data/seed_overview.md, verbatim),
on SQLite and PostgreSQL, with the one correction that `save_one` is awaited.

The page's snippets build on each other like notebook cells; where the page itself is
inconsistent the test says so (it saves a list as `record` and loads `records`; its setup
uses `BaseRecord` without importing it; its registry lacks 'lakery.extra.numpy', which the
array model needs: saving fails with an error that says to add it, then works once added).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakery import BaseRecord
from lakery import LakeryWarning
from lakery import ManifestRecord
from lakery import NotRegisteredError
from lakery import Registry
from lakery.extra.aws import S3Storage
from tests.markdown import await_save_one
from tests.markdown import python_blocks
from tests.markdown import run_block

SEED = Path(__file__).parents[1] / "data" / "seed_overview.md"


def seed_block(containing: str) -> str:
    matches = [b for b in map(await_save_one, python_blocks(SEED)) if containing in b]
    assert len(matches) == 1, containing
    return matches[0]


SETUP = "create_async_engine("
REGISTRY = "registry = Registry("
SAVE_ONE = "record = await save_one(obj, session=session, registry=registry)\n"
LOAD_ONE = "loaded_obj = await load_one("
SAVE_MANY = "future_records = [ms.save_soon(s)"
LOAD_MANY = "future_objs = [ml.load_soon("
MANIFEST_TAGS = 'tags={"experiment_type": "baseline"'
CONTENT_SPEC = "ContentSpec(storage=S3Storage"
SEED_MODULES = ["lakery.builtin", "lakery.extra.pydantic"]  # as the page's registry has


def model_block(results: str) -> str:
    """The page's `StorableModel` block whose `results` field is annotated `results`."""
    matches = [
        b
        for b in python_blocks(SEED)
        if "class ExperimentData(StorableModel):" in b and f"    results: {results}\n" in b
    ]
    assert len(matches) == 1, results
    return matches[0]


async def start(database_url: str, tmp_path: Path, monkeypatch: Any) -> dict[str, Any]:
    """Run the page's database and registry setup; return the notebook namespace."""
    monkeypatch.chdir(tmp_path)
    setup = seed_block(SETUP)
    if not database_url.startswith("sqlite"):
        setup = setup.replace("sqlite+aiosqlite:///temp.db", database_url)
    namespace: dict[str, Any] = {"__name__": "__main__", "BaseRecord": BaseRecord}
    await run_block(setup, namespace)
    await run_block(seed_block(REGISTRY), namespace)
    return namespace


async def test_pydantic_model_snippets(database_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    namespace = await start(database_url, tmp_path, monkeypatch)
    with pytest.warns(LakeryWarning, match=r"__main__\.ExperimentData has no class_id"):
        await run_block(model_block("dict[str, list[float]]"), namespace)

    await run_block(seed_block(SAVE_ONE), namespace)
    assert isinstance(namespace["record"], ManifestRecord)
    assert [c.content_key for c in namespace["record"].contents] == ["model"]
    await run_block(seed_block(LOAD_ONE), namespace)
    assert namespace["loaded_obj"] == namespace["obj"]
    assert type(namespace["loaded_obj"]) is namespace["ExperimentData"]

    await run_block(seed_block(SAVE_MANY), namespace)
    namespace["records"] = namespace["record"]  # the page saves `record` and loads `records`
    await run_block(seed_block(LOAD_MANY), namespace)
    assert namespace["loaded_objs"] == namespace["objs"]
    assert len(namespace["loaded_objs"]) == 2

    await run_block(seed_block(MANIFEST_TAGS), namespace)
    assert namespace["record"].tags == {"experiment_type": "baseline", "model": "cnn"}
    await namespace["engine"].dispose()


async def test_numpy_model_snippet(database_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    namespace = await start(database_url, tmp_path, monkeypatch)
    with pytest.warns(LakeryWarning, match=r"__main__\.ExperimentData has no class_id"):
        await run_block(model_block("dict[str, np.ndarray]"), namespace)

    # The page's registry has no serializer for arrays: the error says which module to add.
    with pytest.raises(NotRegisteredError, match=r"add 'lakery\.extra\.numpy' to Registry"):
        await run_block(seed_block(SAVE_ONE), namespace)

    namespace["registry"] = Registry(modules=[*SEED_MODULES, "lakery.extra.numpy"])
    await run_block(seed_block(SAVE_ONE), namespace)
    obj = namespace["obj"]
    assert isinstance(obj.results["accuracy"], np.ndarray)  # the page passes lists
    np.testing.assert_array_equal(obj.results["loss"], [0.5, 0.4, 0.3])
    await run_block(seed_block(LOAD_ONE), namespace)
    loaded = namespace["loaded_obj"]
    assert loaded == obj
    assert loaded.results["accuracy"].dtype == np.float64

    await run_block(seed_block(SAVE_MANY), namespace)
    namespace["records"] = namespace["record"]
    await run_block(seed_block(LOAD_MANY), namespace)
    assert namespace["loaded_objs"] == namespace["objs"]
    await namespace["engine"].dispose()


async def test_content_spec_snippet(
    database_url: str,
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
    s3_storage: S3Storage,
    raw_s3: Any,
    bucket: str,
) -> None:
    namespace = await start(database_url, tmp_path, monkeypatch)
    await run_block("import numpy as np", namespace)  # imported by the page's earlier block
    with pytest.warns(LakeryWarning, match=r"__main__\.ExperimentData has no class_id"):
        await run_block(seed_block(CONTENT_SPEC), namespace)

    # The S3Storage named by the ContentSpec is found in the registry by its class.
    namespace["registry"] = Registry(
        modules=[*SEED_MODULES, "lakery.extra.numpy"], storages=[s3_storage]
    )
    await run_block(seed_block(SAVE_ONE), namespace)
    record = namespace["record"]
    contents = {c.content_key: c for c in record.contents}
    assert set(contents) == {"model", "/results", "/results/accuracy", "/results/loss"}
    assert contents["model"].storage_name == "lakery.database@v1"
    assert contents["model"].tags == {}
    for key in ("/results", "/results/accuracy", "/results/loss"):
        assert contents[key].storage_name == "lakery.aws.s3@v1"
        assert contents[key].tags == {"type": "results"}
        assert contents[key].storage_data["bucket"] == bucket
    assert contents["/results/loss"].serializer_name == "lakery.numpy.npy@v1"

    # The content tags reach the storage: S3 tags the objects with them.
    key = contents["/results/loss"].storage_data["key"]
    tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=key)
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"type": "results"}

    await run_block(seed_block(LOAD_ONE), namespace)
    assert namespace["loaded_obj"] == namespace["obj"]
    await namespace["engine"].dispose()
