"""The examples of docs/integrations/gcs.md run against gcp-storage-emulator.

Its GCS blocks are marked ``<!-- notest gcs -->`` (tests/test_docs.py has no emulator and
skips them); here they run top to bottom like notebook cells, with the standard
``STORAGE_EMULATOR_HOST`` variable pointing the storage at the emulator.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from lakery.extra.gcs import GCSStorage
from tests.markdown import python_blocks
from tests.markdown import run_page

PAGE = Path(__file__).parents[2] / "docs" / "integrations" / "gcs.md"


def test_page_has_runnable_examples() -> None:
    assert len(python_blocks(PAGE, marked="gcs")) >= 2
    assert re.search(r"^<!-- notest -->\n```python\n", PAGE.read_text(), re.M), "config-only"


def test_gcs_examples_run(
    gcs_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)
        run_page(python_blocks(PAGE, marked="gcs"), namespace)
    record = namespace["record"]
    stored = {c.storage_name for c in record.contents}  # type: ignore[attr-defined]
    assert GCSStorage.name in stored
