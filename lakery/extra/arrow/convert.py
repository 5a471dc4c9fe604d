"""Tables of one library as another's, through Arrow.

pyarrow is always there; pandas and polars are imported only when a value or a target
type asks for them, so this module works with ``lakery[arrow]`` alone.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from lakery.extra.arrow.formats import as_batch

__all__ = ["as_arrow", "concat_tables", "convert_table", "is_table_type", "table_library"]


def table_library(value_or_type: Any) -> str | None:
    """The table library ("pyarrow", "pandas" or "polars") of a table or table type, else None."""
    tp = value_or_type if isinstance(value_or_type, type) else type(value_or_type)
    module = getattr(tp, "__module__", "").partition(".")[0]
    if module not in ("pyarrow", "pandas", "polars"):
        return None
    return module if _is_known(tp) else None


def _is_known(tp: type) -> bool:
    if issubclass(tp, pa.Table | pa.RecordBatch):
        return True
    pd = sys.modules.get("pandas")
    if pd is not None and issubclass(tp, pd.DataFrame):
        return True
    pl = sys.modules.get("polars")
    return pl is not None and issubclass(tp, pl.DataFrame | pl.LazyFrame)


def is_table_type(tp: Any) -> bool:
    """Whether an annotation is a table type of pyarrow, pandas or polars."""
    return isinstance(tp, type) and table_library(tp) is not None


def as_arrow(value: Any) -> pa.Table | None:
    """`value` as an Arrow table (a LazyFrame is collected), or None if it is no table."""
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    library = table_library(value)
    if library == "pandas":
        from lakery.extra.pandas import pandas_to_arrow

        return pandas_to_arrow(value)
    if library == "polars":
        pl = sys.modules["polars"]
        frame = value.collect() if isinstance(value, pl.LazyFrame) else value
        return frame.to_arrow()
    return None


def convert_table(value: Any, target: Any) -> Any:
    """`value` (any supported table) as a `target` table: `pa.Table`, `pa.RecordBatch`,
    `pd.DataFrame`, `pl.DataFrame` or `pl.LazyFrame`. A value of that type is returned as
    it is; anything else raises TypeError."""
    target = typing.get_origin(target) or target
    if isinstance(target, type) and isinstance(value, target):
        return value
    if not is_table_type(target):
        msg = f"cannot convert a table to {target!r}: not a pyarrow, pandas or polars table type"
        raise TypeError(msg)
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(value, pl.DataFrame | pl.LazyFrame):
        if issubclass(target, pl.LazyFrame):
            return value.lazy()
        if issubclass(target, pl.DataFrame):
            return value.collect() if isinstance(value, pl.LazyFrame) else value
    table = as_arrow(value)
    if table is None:
        msg = f"cannot convert {type(value).__qualname__} to {target.__qualname__}: not a table"
        raise TypeError(msg)
    if issubclass(target, pa.Table):
        return table
    if issubclass(target, pa.RecordBatch):
        return as_batch(table)
    if table_library(target) == "pandas":
        return table.to_pandas()
    frame = pl.from_arrow(table)  # type: ignore[union-attr]
    return frame.lazy() if issubclass(target, pl.LazyFrame) else frame  # type: ignore[union-attr]


def concat_tables(values: Sequence[Any]) -> Any:
    """Tables of one type, one after another, as one table of that type.

    Raises:
        TypeError: for values of different types or that are no tables.
        ValueError: when the schemas differ (names the first difference).
    """
    if not values:
        msg = "no tables to concatenate"
        raise ValueError(msg)
    kinds = {type(v) for v in values}
    if len(kinds) > 1 or table_library(values[0]) is None:
        names = sorted(k.__qualname__ for k in kinds)
        msg = f"can only concatenate tables of one type, got {', '.join(names)}"
        raise TypeError(msg)
    first = values[0]
    tables = [as_arrow(v) for v in values]
    schema = tables[0].schema  # type: ignore[union-attr]
    for position, table in enumerate(tables[1:], start=1):
        if not table.schema.equals(schema, check_metadata=False):  # type: ignore[union-attr]
            msg = f"table {position} has schema {table.schema}, the first has {schema}"  # type: ignore[union-attr]
            raise ValueError(msg)
    if isinstance(first, pa.RecordBatch):
        return as_batch(pa.concat_tables(tables))  # type: ignore[arg-type]
    if table_library(first) == "pandas":
        pd = sys.modules["pandas"]
        default = all(isinstance(v.index, pd.RangeIndex) and v.index.name is None for v in values)
        return pd.concat(values, ignore_index=default)  # default indexes: one fresh RangeIndex
    if table_library(first) == "polars":
        pl = sys.modules["polars"]
        return pl.concat(values)
    return pa.concat_tables(tables)  # type: ignore[arg-type]
