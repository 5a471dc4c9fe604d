"""One phase of the tables benchmark for one side, run in the tables venv (see `tables_env`).

    python benchmarks/tables_driver.py '{"phase": "save", "side": "lakery",
        "library": "polars", "rows": 100000, "seed": 2, "work": "/tmp/x"}'

Each phase runs in a fresh process, through the side's IO manager called as Dagster calls
it (`handle_output` / `load_input` with contexts from `dagster.build_output_context` /
`build_input_context`), after a warm-up on a tiny table (imports, engine, schema):

- ``save``: build the table, one timed `handle_output`; the bytes written;
- ``load``: one timed full `load_input`, then one timed `load_input` of two of the twenty
  columns (``AssetIn(metadata={"columns": [...]})``, the key dagster-polars reads).

It prints one JSON line: seconds, bytes, the table's in-memory size and the peak resident
memory of the timed call above what the process held before it (for the save, before the
table was built), from /proc/self/status (VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
from dagster._core.types.dagster_type import resolve_dagster_type

COLUMNS = ["f1", "s2"]
"""The two of the twenty columns that the column-subset load reads."""

ASSET = "table"


def make_table(library: str, rows: int, seed: int) -> Any:
    """10 float64, 5 int64 and 5 string columns (1,000 distinct words each), seeded."""
    rng = np.random.default_rng(seed)
    words = [f"word{n:04d}" for n in range(1000)]
    floats = {f"f{i}": rng.random(rows) for i in range(10)}
    ints = {f"i{i}": rng.integers(0, 1_000_000, rows) for i in range(5)}
    codes = {f"s{i}": rng.integers(0, 1000, rows) for i in range(5)}
    if library == "polars":
        vocabulary = pl.Series(words, dtype=pl.String)
        strings = {name: vocabulary.gather(code).alias(name) for name, code in codes.items()}
        return pl.DataFrame({**floats, **ints, **strings})
    vocabulary = pd.array(words, dtype="str")
    strings = {name: vocabulary.take(code) for name, code in codes.items()}
    return pd.DataFrame({**floats, **ints, **strings})


def table_size(table: Any) -> int:
    if isinstance(table, pl.DataFrame):
        return int(table.estimated_size())
    return int(table.memory_usage(deep=True).sum())


class PandasParquetIOManager(dg.UPathIOManager):
    """The pandas peer: `DataFrame.to_parquet` / `pandas.read_parquet` on a UPath."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: Any) -> None:
        obj.to_parquet(path)

    def load_from_path(self, context: dg.InputContext, path: Any) -> pd.DataFrame:
        columns = (context.definition_metadata or {}).get("columns")
        return pd.read_parquet(path, columns=columns)


def io_manager(side: str, library: str, work: Path) -> Any:
    if side == "lakery":
        from lakery_dagster import LakeryIOManager
        from lakery_dagster import LakeryResource

        resource = LakeryResource(
            database_url=f"sqlite+aiosqlite:///{work / 'lakery.db'}",
            storage_url=(work / "files").as_uri(),
        )
        return LakeryIOManager(lakery=resource)
    if library == "polars":
        from dagster_polars import PolarsParquetIOManager

        return PolarsParquetIOManager(base_dir=str(work / "polars"))
    from upath import UPath

    return PandasParquetIOManager(base_path=UPath(work / "pandas"))


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    msg = f"no {field} in /proc/self/status (this benchmark needs Linux)"
    raise RuntimeError(msg)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _disk(folder: Path) -> int:
    """Bytes of the data files under `folder` (the records database excluded)."""
    skip = (".db", ".db-wal", ".db-shm", ".db-journal")
    return sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.endswith(skip)
    )


class _Side:
    def __init__(self, manager: Any, library: str) -> None:
        self.manager = manager
        self.type = resolve_dagster_type(pl.DataFrame if library == "polars" else pd.DataFrame)
        self.instance = dg.DagsterInstance.ephemeral()

    def output(self, name: str) -> dg.OutputContext:
        return dg.build_output_context(
            asset_key=dg.AssetKey(name), name="result", dagster_type=self.type
        )

    def input(self, name: str, columns: list[str] | None = None) -> dg.InputContext:
        return dg.build_input_context(
            asset_key=dg.AssetKey(name),
            upstream_output=self.output(name),
            dagster_type=self.type,
            definition_metadata={"columns": columns} if columns else {},
            instance=self.instance,
        )

    def save(self, name: str, table: Any) -> None:
        self.manager.handle_output(self.output(name), table)

    def load(self, name: str, columns: list[str] | None = None) -> Any:
        return self.manager.load_input(self.input(name, columns))


def _timed(call: Any, *args: Any) -> tuple[Any, float, int]:
    """The result, the seconds and the peak RSS above the current RSS of one call (Dagster's
    contexts are built before: `build_input_context` alone starts an ephemeral instance)."""
    gc.collect()
    before = _rss("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    result = call(*args)
    seconds = time.perf_counter() - started
    return result, seconds, _rss("VmHWM") - before


def save_phase(side: _Side, library: str, rows: int, seed: int, work: Path) -> dict[str, Any]:
    gc.collect()
    interpreter = _rss("VmRSS")
    table = make_table(library, rows, seed)
    size = table_size(table)
    built = _rss("VmRSS") - interpreter
    before = _disk(work)
    _, seconds, peak = _timed(side.manager.handle_output, side.output(ASSET), table)
    return {
        "save_s": seconds,
        "bytes": _disk(work) - before,
        "table_bytes": size,
        "rows": rows,
        "save_peak": peak + built,  # above the interpreter, the table included
    }


def load_phase(side: _Side, rows: int) -> dict[str, Any]:
    loaded, seconds, peak = _timed(side.manager.load_input, side.input(ASSET))
    assert len(loaded) == rows, (len(loaded), rows)
    size = table_size(loaded)
    del loaded
    subset, columns_seconds, _ = _timed(side.manager.load_input, side.input(ASSET, COLUMNS))
    assert list(subset.columns) == COLUMNS, list(subset.columns)
    assert len(subset) == rows, (len(subset), rows)
    return {
        "load_s": seconds,
        "columns_s": columns_seconds,
        "load_peak": peak,
        "loaded_bytes": size,
    }


def main(config: dict[str, Any]) -> dict[str, Any]:
    side_name, library, phase = config["side"], config["library"], config["phase"]
    work = Path(config["work"])
    work.mkdir(parents=True, exist_ok=True)
    with dg.build_resources({"io_manager": io_manager(side_name, library, work)}) as resources:
        side = _Side(resources.io_manager, library)
        side.save(f"warmup_{phase}", make_table(library, 1000, 1))
        side.load(f"warmup_{phase}")
        side.load(f"warmup_{phase}", COLUMNS)
        if phase == "save":
            return save_phase(side, library, config["rows"], config["seed"], work)
        return load_phase(side, config["rows"])


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
