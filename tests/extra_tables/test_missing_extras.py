"""Without its library, each table module says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "module,blocked,extra",
    [
        ("lakery.extra.arrow", "pyarrow", "lakery[arrow]"),
        ("lakery.extra.pandas", "pandas", "lakery[pandas]"),
        ("lakery.extra.polars", "polars", "lakery[polars]"),
    ],
)
def test_import_error_names_the_extra(module: str, blocked: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # From a checkout or wheel: the name lakery on the package index is someone else's.
    assert f"pip install -e '/path/to/{extra}'" in result.stdout


def test_dagster_defaults_leave_out_missing_extras() -> None:
    code = (
        "import sys; sys.modules['polars'] = None\n"
        "from lakery_dagster import DEFAULT_REGISTRY_MODULES as m\n"
        "print(m)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "lakery.extra.pandas" in result.stdout
    assert "lakery.extra.polars" not in result.stdout
