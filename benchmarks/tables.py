"""Tables through Dagster IO managers: LakeryIOManager against dagster-polars and pandas.

Peers, on the local disk, run in ``benchmarks/.venvs/tables`` (`tables_env`; lakery is
installed there too, so both sides share one interpreter and the same pyarrow, pandas,
polars and Dagster):

- polars tables: `LakeryIOManager` (records in SQLite, ``storage_url=file://...``; the
  registry picks `PolarsParquetSerializer` by type) against dagster-polars
  `PolarsParquetIOManager`;
- pandas DataFrames: `LakeryIOManager` (`PandasParquetSerializer`) against a small
  `UPathIOManager` subclass (``DataFrame.to_parquet`` / ``pandas.read_parquet``).

Both sides keep their own defaults (codecs, row groups). The table: 20 columns (10
float64, 5 int64, 5 strings of 1,000 distinct words), ``tables_mib`` MiB in memory.
Each repeat runs, per library, four fresh processes (`tables_driver.py`): lakery save,
peer save, lakery load, peer load, the order of the sides alternating per repeat, each in
a new folder with a new seed (no deduplication). Reported: medians of the per-asset
`handle_output` / `load_input` time, bytes on disk, peak RSS of the save and of the load
divided by the table's in-memory size, and a load of 2 of the 20 columns
(``AssetIn(metadata={"columns": [...]})``) against lakery's own full load.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import MiB
from benchmarks.common import Row

LIBRARIES = ("polars", "pandas")
PEERS = {
    "polars": "dagster-polars PolarsParquetIOManager",
    "pandas": "pandas to_parquet/read_parquet UPathIOManager",
}
ROW_BYTES = {"polars": 200, "pandas": 200}
"""In-memory bytes per row of the table (15 x 8 numeric; 5 strings as views / offsets)."""


def _rows(size: int, library: str) -> int:
    return max(1000, size // ROW_BYTES[library])


def _repeat(python: Path, library: str, rows: int, seed: int, folder: Path, first: str) -> Any:
    from benchmarks.tables_env import run_driver

    order = ["lakery", "peer"] if first == "lakery" else ["peer", "lakery"]
    result: dict[str, dict[str, Any]] = {side: {} for side in order}
    for phase in ("save", "load"):
        for side in order:
            config = {
                "phase": phase,
                "side": side,
                "library": library,
                "rows": rows,
                "seed": seed,
                "work": str(folder / side),
            }
            result[side].update(run_driver(python, config))
    return result


def _samples(results: list[dict[str, Any]], side: str, key: str) -> list[float]:
    return [float(r[side][key]) for r in results]


def _rows_of(library: str, mib: int, results: list[dict[str, Any]]) -> list[Row]:
    peer = PEERS[library]
    size = results[0]["lakery"]["table_bytes"]
    label = f"{library} {mib} MiB table"
    extra = {"table_bytes": size, "rows": results[0]["lakery"]["rows"]}
    rows = []
    for verb in ("save", "load"):
        key = f"{verb}_peak"
        ours = [v / size for v in _samples(results, "lakery", key)]
        theirs = [v / size for v in _samples(results, "peer", key)]
        rows.append(
            Row(
                "tables",
                f"{verb} {label}, per asset",
                "s",
                False,
                _samples(results, "lakery", f"{verb}_s"),
                _samples(results, "peer", f"{verb}_s"),
                peer,
                goal=">= 1.0x, peak RSS <= 1.3x the table",
                goal_ratio=1.0,
                checks={"peak RSS <= 1.3x the table": max(ours) <= 1.3},
                extra={
                    **extra,
                    "peak_rss_x_table": max(ours),
                    "lakery_peak_rss_x_table": ours,
                    "peer_peak_rss_x_table": theirs,
                },
            )
        )
    ours_bytes = [v / MiB for v in _samples(results, "lakery", "bytes")]
    theirs_bytes = [v / MiB for v in _samples(results, "peer", "bytes")]
    rows.append(
        Row(
            "tables",
            f"bytes on disk, {label}",
            "MiB",
            False,
            ours_bytes,
            theirs_bytes,
            peer,
            goal="within 5%",
            checks={
                "within 5%": abs(min(ours_bytes) / min(theirs_bytes) - 1) <= 0.05,
            },
            extra=extra,
        )
    )
    rows.append(
        Row(
            "tables",
            f"load 2 of 20 columns, {label}",
            "s",
            False,
            _samples(results, "lakery", "columns_s"),
            _samples(results, "lakery", "load_s"),
            "lakery full load",
            goal=">= 5x faster",
            goal_ratio=5.0,
            extra=extra,
        )
    )
    rows.append(
        Row(
            "tables",
            f"load 2 of 20 columns, {label}",
            "s",
            False,
            _samples(results, "lakery", "columns_s"),
            _samples(results, "peer", "columns_s"),
            peer,
            extra={**extra, "peer_full_over_columns": _ratio(results, "peer")},
        )
    )
    return rows


def _ratio(results: list[dict[str, Any]], side: str) -> float:
    import statistics

    full = statistics.median(_samples(results, side, "load_s"))
    return full / statistics.median(_samples(results, side, "columns_s"))


def run(*, size: int, repeats: int, python: Path, work: Path, log: Any = print) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    rows: list[Row] = []
    for library in LIBRARIES:
        count = _rows(size, library)
        results = []
        for repeat in range(repeats):
            first = "lakery" if repeat % 2 == 0 else "peer"
            with tempfile.TemporaryDirectory(dir=work, prefix=f"tables-{library}-") as temp:
                result = _repeat(python, library, count, repeat + 2, Path(temp), first)
            results.append(result)
            log(
                f"  tables {library} {size // MiB} MiB repeat {repeat + 1}/{repeats}: "
                + "; ".join(
                    f"{side} save {result[side]['save_s']:.2f}s load {result[side]['load_s']:.2f}s"
                    f" cols {result[side]['columns_s']:.3f}s {result[side]['bytes'] / MiB:.1f} MiB"
                    for side in ("lakery", "peer")
                )
            )
        rows.extend(_rows_of(library, size // MiB, results))
    return rows
