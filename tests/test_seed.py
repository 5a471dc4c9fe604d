"""The user's own description (tests/data/seed_overview.md, verbatim): its dataclass
snippets run as written, on SQLite and PostgreSQL, with the one correction that
`save_one` is awaited. The pydantic snippets are run in tests/extra_pydantic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakery import BaseRecord
from lakery import LakeryWarning
from lakery import ManifestRecord
from tests.markdown import await_save_one
from tests.markdown import python_blocks
from tests.markdown import run_block

SEED = Path(__file__).parent / "data" / "seed_overview.md"
SHARED_SEED = Path(__file__).parents[2] / "shared" / "seeds" / "000_4c98809d10a640ce.txt"


def seed_block(containing: str) -> str:
    matches = [b for b in map(await_save_one, python_blocks(SEED)) if containing in b]
    assert len(matches) == 1, containing
    return matches[0]


@pytest.mark.skipif(not SHARED_SEED.exists(), reason="the shared seed is not beside the repo")
def test_copy_is_verbatim() -> None:
    assert SEED.read_text() == SHARED_SEED.read_text()


async def test_dataclass_snippets(database_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    setup = seed_block("create_async_engine(")
    if not database_url.startswith("sqlite"):
        setup = setup.replace("sqlite+aiosqlite:///temp.db", database_url)
    # Run as a notebook would; the page's setup uses BaseRecord without importing it.
    namespace: dict[str, object] = {"__name__": "__main__", "BaseRecord": BaseRecord}
    await run_block(setup, namespace)
    await run_block(seed_block("registry = Registry("), namespace)
    with pytest.warns(LakeryWarning, match="__main__.ExperimentData has no class_id"):
        await run_block(seed_block("class ExperimentData(StorableDataclass)"), namespace)
    for code in [
        seed_block("record = await save_one(obj, session=session, registry=registry)\n"),
        seed_block("loaded_obj = await load_one("),
    ]:
        await run_block(code, namespace)
    assert namespace["loaded_obj"] == namespace["obj"]

    await run_block(seed_block("future_records = [ms.save_soon(s)"), namespace)
    saved = namespace["record"]  # the page names the list `record`, and loads `records`
    assert isinstance(saved, list) and all(isinstance(r, ManifestRecord) for r in saved)
    namespace["records"] = saved
    await run_block(seed_block("future_objs = [ml.load_soon("), namespace)
    assert namespace["loaded_objs"] == namespace["objs"]

    await run_block(seed_block('tags={"experiment_type": "baseline"'), namespace)
    tagged = namespace["record"]
    assert isinstance(tagged, ManifestRecord)
    assert tagged.tags == {"experiment_type": "baseline", "model": "cnn"}
    engine = namespace["engine"]
    await engine.dispose()  # type: ignore[attr-defined]
    if database_url.startswith("sqlite"):
        assert os.path.exists(tmp_path / "temp.db")
