"""The examples of docs/integrations/azure.md run against Azurite.

Its Azure blocks are marked ``<!-- notest azure -->`` (tests/test_docs.py has no emulator and
skips them); here they run top to bottom like notebook cells, with the standard
``AZURE_STORAGE_CONNECTION_STRING`` variable pointing the storage at Azurite.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from lakery.extra.azure import AzureBlobStorage
from tests.markdown import python_blocks
from tests.markdown import run_page

PAGE = Path(__file__).parents[2] / "docs" / "integrations" / "azure.md"


def test_page_has_runnable_examples() -> None:
    assert len(python_blocks(PAGE, marked="azure")) >= 2
    assert re.search(r"^<!-- notest -->\n```python\n", PAGE.read_text(), re.M), "config-only"


def test_azure_examples_run(
    connection_string: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)
        run_page(python_blocks(PAGE, marked="azure"), namespace)
    record = namespace["record"]
    stored = {c.storage_name for c in record.contents}  # type: ignore[attr-defined]
    assert AzureBlobStorage.name in stored
