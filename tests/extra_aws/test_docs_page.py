"""The examples of docs/integrations/s3.md run against the moto server.

Its S3 blocks are marked ``<!-- notest s3 -->`` (tests/test_docs.py has no S3 server and skips
them); here they run top to bottom like notebook cells, with the standard
``AWS_ENDPOINT_URL_S3`` variable pointing botocore at moto.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path

import pytest

from lakery.extra.aws import S3Storage
from tests.markdown import python_blocks
from tests.markdown import run_page

PAGE = Path(__file__).parents[2] / "docs" / "integrations" / "s3.md"


def s3_blocks() -> list[str]:
    return python_blocks(PAGE, marked="s3")


def test_page_has_runnable_examples() -> None:
    assert len(s3_blocks()) >= 2
    assert re.search(r"^<!-- notest -->\n```python\n", PAGE.read_text(), re.M), "config-only"


def test_s3_examples_run(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.chdir(tmp_path)

    async def create_bucket() -> None:
        async with S3Storage("my-bucket") as storage:
            try:
                await storage.call("CreateBucket", None)
            except Exception as exc:  # already made by an earlier run in this session
                assert "BucketAlready" in repr(exc.__cause__), exc

    asyncio.run(create_bucket())
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the examples pin their class ids: no warnings
        warnings.simplefilter("ignore", ResourceWarning)
        run_page(s3_blocks(), namespace)
    record = namespace["record"]
    stored = {c.content_key: c.storage_name for c in record.contents}  # type: ignore[attr-defined]
    assert S3Storage.name in stored.values() and "lakery.database@v1" in stored.values()
