"""Tables the tests share, and equality that checks what `==` cannot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

MODULES = ["lakery.builtin", "lakery.extra.arrow", "lakery.extra.pandas", "lakery.extra.polars"]


def arrow_table(rows: int = 50) -> pa.Table:
    rng = np.random.default_rng(rows)
    return pa.table(
        {
            "i": pa.array(np.arange(rows), pa.int64()),
            "f": pa.array(rng.random(rows)),
            "s": pa.array([f"w{n % 7}" if n % 5 else None for n in range(rows)]),
            "b": pa.array([n % 3 == 0 for n in range(rows)]),
            "t": pa.array(np.arange(rows).astype("datetime64[ms]"), pa.timestamp("ms", "UTC")),
            "l": pa.array([[n, n + 1] for n in range(rows)]),
        }
    )


def pandas_frame() -> pd.DataFrame:
    """Every dtype the issue names: categoricals, tz-aware datetimes, nullable ints, str."""
    return pd.DataFrame(
        {
            "cat": pd.Categorical(["a", "b", "a", None], categories=["b", "a"]),
            "ordered": pd.Categorical(["lo", "hi", "lo", "hi"], ["lo", "hi"], ordered=True),
            "when": pd.date_range("2026-03-29", periods=4, freq="h", tz="Europe/Paris"),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
            "text": pd.array(["x", None, "z", "é"], dtype="str"),
            "obj": np.array(["p", "q", None, "s"], dtype=object),
            "f32": np.array([1.5, np.nan, 3, 4], dtype=np.float32),
        },
        index=pd.Index([10, 20, 30, 40], name="reading"),
    )


def pandas_frames() -> list[pd.DataFrame]:
    multi = pd.DataFrame(
        {"v": [1.0, 2.0, 3.0]},
        index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["k", "n"]),
    )
    dated = pd.DataFrame(
        {"v": [1, 2]}, index=pd.DatetimeIndex(["2026-01-01", "2026-01-02"], tz="UTC")
    )
    return [
        pandas_frame(),
        pd.DataFrame({"x": [1, 2, 3]}),  # a RangeIndex
        multi,
        dated,
        pd.DataFrame({"x": pd.Series([], dtype="int64")}),  # no rows
        pd.DataFrame(index=pd.Index([1, 2, 3], name="k")),  # no columns
    ]


def polars_frame(rows: int = 40) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "i": list(range(rows)),
            "f": [n / 3 if n % 4 else None for n in range(rows)],
            "s": [f"w{n % 5}" for n in range(rows)],
            "c": pl.Series([f"c{n % 3}" for n in range(rows)], dtype=pl.Categorical),
            "d": pl.datetime_range(
                pl.datetime(2026, 1, 1),
                pl.datetime(2026, 1, 1) + pl.duration(hours=rows - 1),
                "1h",
                time_zone="UTC",
                eager=True,
            ),
            "l": [[n] * (n % 3) for n in range(rows)],
        }
    )


def assert_tables_equal(loaded: Any, original: Any) -> None:
    """Same type, schema and values (pandas: dtypes and index too)."""
    assert type(loaded) is type(original)
    if isinstance(original, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, original, check_exact=True)
    elif isinstance(original, pl.LazyFrame):
        assert loaded.collect().equals(original.collect())
        assert loaded.collect_schema() == original.collect_schema()
    elif isinstance(original, pl.DataFrame):
        assert loaded.equals(original)
        assert loaded.schema == original.schema
    else:
        assert loaded.schema.equals(original.schema, check_metadata=False), loaded.schema
        assert loaded.equals(original)
        assert loaded.num_rows == original.num_rows
