"""pandas DataFrames as Parquet (or Arrow IPC), through Arrow.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.pandas"])
```

The index is kept (a default ``RangeIndex`` as metadata, any other index as columns) and
dtypes come back as they were — categoricals, timezone-aware datetimes, nullable integers
and booleans, strings — because pyarrow records pandas' own metadata with the table. A
column Arrow cannot type (an ``object`` column of mixed Python objects) is refused with
the column's name. Needs the ``pandas`` extra
(``pip install -e '/path/to/lakery[pandas]'``).
"""

from __future__ import annotations

from typing import ClassVar

try:
    import pandas as pd
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.pandas needs pandas and pyarrow: install them with "
        "pip install -e '/path/to/lakery[pandas]'"
    )
    raise ImportError(msg) from exc

from lakery.extra.arrow.formats import IpcFormat
from lakery.extra.arrow.serializers import IPC_CONTENT_TYPE
from lakery.extra.arrow.serializers import TableSerializer

__all__ = ["PandasIpcSerializer", "PandasParquetSerializer", "pandas_to_arrow"]


def pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame as an Arrow table with pandas' metadata (index and dtypes)."""
    if not isinstance(frame, pd.DataFrame):
        msg = f"expected a pandas.DataFrame, got {type(frame).__qualname__}"
        raise TypeError(msg)
    bad = [name for name in frame.columns if not isinstance(name, str)]
    if bad:
        msg = (
            f"column names must be str, got {bad[:5]!r}; rename them, e.g. "
            "df.columns = df.columns.map(str)"
        )
        raise TypeError(msg)
    try:
        return pa.Table.from_pandas(frame)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        msg = (
            f"{exc}; Arrow needs one type per column: convert the column to a single type "
            "(e.g. df[col].astype(str)), or keep such objects in a JSON-able field"
        )
        raise TypeError(msg) from exc


class PandasParquetSerializer(TableSerializer[pd.DataFrame]):
    """A `pandas.DataFrame` as Parquet (zstd, page checksums), index and dtypes kept."""

    name = "lakery.pandas.parquet@v1"
    types: ClassVar[tuple[type, ...]] = (pd.DataFrame,)

    def to_arrow(self, value: pd.DataFrame) -> pa.Table:
        return pandas_to_arrow(value)

    def from_arrow(self, table: pa.Table) -> pd.DataFrame:
        return table.to_pandas()


class PandasIpcSerializer(PandasParquetSerializer):
    """A `pandas.DataFrame` in the Arrow IPC file format (chosen by name or class only)."""

    name = "lakery.pandas.ipc@v1"
    types = ()
    format_class = IpcFormat
    content_type = IPC_CONTENT_TYPE
