"""Run every benchmark, print a table of ratios and absolute figures, write JSON.

    python -m benchmarks --quick      # CI-sized, a few minutes
    python -m benchmarks --full       # the real numbers (about half an hour)

Options: ``--only bulk,numpy,s3,dagster,query,tables`` runs some of them; ``--postgres URL``
(default ``LAKERY_BENCH_POSTGRES_URL`` or ``postgresql+asyncpg://postgres@127.0.0.1:5432/
lakery_bench``; the database is created when missing) or ``--no-postgres``; ``--no-labox``
skips the labox comparison (which installs labox from the package index into
``benchmarks/.venvs/labox`` on first use; ``tables`` likewise installs its peers,
dagster-polars and universal-pathlib, into ``benchmarks/.venvs/tables``);
``--set NAME=VALUE`` overrides one setting of the chosen mode (see `QUICK`); ``--out DIR``
(default ``benchmarks/results``).

Every benchmark runs lakery and its competitors in the same run, interleaved, and reports
medians over the repeats; the JSON file keeps every sample, the settings and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_POSTGRES
from benchmarks.common import MiB
from benchmarks.common import Row
from benchmarks.common import machine
from benchmarks.common import postgres_problem
from benchmarks.common import postgres_version
from benchmarks.common import write_json

BENCHMARKS = ("bulk", "numpy", "s3", "dagster", "query", "tables")

QUICK: dict[str, int] = {
    "bulk_count": 2_000,
    "bulk_repeats": 2,
    "numpy_mib": 64,
    "numpy_repeats": 2,
    "s3_small_count": 50,
    "s3_small_kib": 64,
    "s3_stream_mib": 32,
    "s3_part_mib": 8,
    "s3_concurrency": 10,
    "s3_repeats": 2,
    "dagster_assets": 50,
    "dagster_partitions": 30,
    "dagster_repeats": 2,
    "query_postgres_rows": 100_000,
    "query_sqlite_rows": 20_000,
    "query_count": 200,
    "tables_mib": 48,
    "tables_repeats": 2,
}
FULL: dict[str, int] = {
    "bulk_count": 10_000,
    "bulk_repeats": 3,
    "numpy_mib": 1024,
    "numpy_repeats": 3,
    "s3_small_count": 200,
    "s3_small_kib": 64,
    "s3_stream_mib": 128,
    "s3_part_mib": 8,
    "s3_concurrency": 10,
    "s3_repeats": 5,
    "dagster_assets": 50,
    "dagster_partitions": 365,
    "dagster_repeats": 3,
    "query_postgres_rows": 1_000_000,
    "query_sqlite_rows": 100_000,
    "query_count": 500,
    "tables_mib": 100,
    "tables_repeats": 3,
}

RESULTS = Path(__file__).resolve().parent / "results"


def _log(message: str) -> None:
    print(message, flush=True)


def _run_one(name: str, settings: dict[str, int], context: dict[str, Any]) -> list[Row]:
    work: Path = context["work"]
    if name == "bulk":
        from benchmarks import bulk_save

        return bulk_save.run(
            count=settings["bulk_count"],
            repeats=settings["bulk_repeats"],
            postgres_url=context["postgres"],
            labox_python=context["labox"],
            work=work,
            log=_log,
        )
    if name == "numpy":
        from benchmarks import numpy_memory

        return numpy_memory.run(
            size=settings["numpy_mib"] * MiB,
            repeats=settings["numpy_repeats"],
            work=work,
            log=_log,
        )
    if name == "s3":
        from benchmarks import s3_throughput

        return s3_throughput.run(
            small_count=settings["s3_small_count"],
            small_size=settings["s3_small_kib"] * 1024,
            stream_size=settings["s3_stream_mib"] * MiB,
            part_size=settings["s3_part_mib"] * MiB,
            concurrency=settings["s3_concurrency"],
            repeats=settings["s3_repeats"],
            log=_log,
        )
    if name == "dagster":
        from benchmarks import dagster_io

        return dagster_io.run(
            graph_size=settings["dagster_assets"],
            partitions=settings["dagster_partitions"],
            repeats=settings["dagster_repeats"],
            work=work,
            log=_log,
        )
    if name == "tables":
        from benchmarks import tables

        if context["tables"] is None:
            msg = "the tables peers are not installed (see the note above)"
            raise RuntimeError(msg)
        return tables.run(
            size=settings["tables_mib"] * MiB,
            repeats=settings["tables_repeats"],
            python=context["tables"],
            work=work,
            log=_log,
        )
    from benchmarks import query_latency

    return query_latency.run(
        postgres_rows=settings["query_postgres_rows"],
        sqlite_rows=settings["query_sqlite_rows"],
        queries=settings["query_count"],
        postgres_url=context["postgres"],
        work=work,
        log=_log,
    )


# -- the table ---------------------------------------------------------------------------


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in {"objects/s", "MB/s"}:
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"
    if unit == "GB/s":
        return f"{value:.2f} GB/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "s":
        return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"
    return f"{value:g} {unit}"


def _verdict(row: Row) -> str:
    met = row.met
    if met is None:
        return ""
    return "met" if met else "MISSED"


def table_rows(rows: list[Row]) -> list[list[str]]:
    """One list of cells per row: benchmark, case, lakery, competitor, theirs, ratio, goal."""
    cells = []
    for row in rows:
        ratio = row.ratio
        extra = ""
        if "peak_extra_rss_fraction" in row.extra:
            extra = f"; peak extra RSS {row.extra['peak_extra_rss_fraction']:.1%} of the array"
        if "peak_rss_x_table" in row.extra:
            theirs = max(row.extra["peer_peak_rss_x_table"])
            extra = (
                f"; peak RSS {row.extra['peak_rss_x_table']:.2f}x the table (theirs {theirs:.2f}x)"
            )
        if row.benchmark == "query":
            extra = f"; p95 {row.extra['p95_ms']:.2f} ms"
        goal = f"{row.goal}: {_verdict(row)}" if row.goal else ""
        cells.append(
            [
                row.benchmark,
                row.case,
                _figure(row.lakery_median, row.unit),
                row.other_name or "-",
                _figure(row.other_median, row.unit),
                (f"{ratio:.2f}x" if ratio is not None else "-") + extra,
                goal,
            ]
        )
    return cells


HEADER = ["benchmark", "case", "lakery", "against", "theirs", "lakery is (x better)", "goal"]


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *table_rows(rows)]
    widths = [min(60, max(len(c[i]) for c in cells)) for i in range(len(HEADER))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for line in table_rows(rows):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in line) + " |")
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> dict[str, int]:
    settings = dict(FULL if args.full else QUICK)
    for item in args.set or []:
        name, _, value = item.partition("=")
        if name not in settings:
            msg = f"--set {item}: unknown setting; known: {', '.join(sorted(settings))}"
            raise SystemExit(msg)
        settings[name] = int(value)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="CI-sized run (the default)")
    mode.add_argument("--full", action="store_true", help="the real numbers")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument(
        "--postgres", default=os.environ.get("LAKERY_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-labox", action="store_true")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--work", default=None, help="folder for temporary files")
    args = parser.parse_args(argv)
    mode_name = "full" if args.full else "quick"
    settings = _settings(args)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    out = Path(args.out)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    notes: list[str] = []

    postgres: str | None = None
    if not args.no_postgres and {"bulk", "query"} & set(chosen):
        problem = asyncio.run(postgres_problem(args.postgres))
        if problem is None:
            postgres = args.postgres
        else:
            notes.append(f"PostgreSQL skipped: {problem}")
            _log(f"PostgreSQL skipped: {problem}")
    labox: Path | None = None
    if "bulk" in chosen and not args.no_labox:
        from benchmarks import labox_env

        _log(f"labox: preparing {labox_env.VENV} (first time: pip install from PyPI)")
        try:
            labox = labox_env.ensure(out / f"{stamp}-labox-install.log")
        except Exception as exc:
            notes.append(f"labox skipped: {exc}")
            _log(f"labox skipped: {exc}")

    tables_python: Path | None = None
    if "tables" in chosen:
        from benchmarks import tables_env

        _log(f"tables: preparing {tables_env.VENV} (first time: pip install of the peers)")
        try:
            tables_python = tables_env.ensure(out / f"{stamp}-tables-install.log")
        except Exception as exc:
            notes.append(f"tables peers not installed: {exc}")
            _log(f"tables peers not installed: {exc}")

    started = time.time()
    rows: list[Row] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=args.work, prefix="lakery-bench-") as work:
        context = {
            "work": Path(work),
            "postgres": postgres,
            "labox": labox,
            "tables": tables_python,
        }
        for name in chosen:
            _log(f"== {name} ({mode_name})")
            began = time.time()
            try:
                rows.extend(_run_one(name, settings, context))
            except Exception:
                failures[name] = traceback.format_exc()
                _log(f"!! {name} failed:\n{failures[name]}")
            _log(f"   {name}: {time.time() - began:.0f}s")

    pg_version = asyncio.run(postgres_version(postgres)) if postgres else None
    result = {
        "mode": mode_name,
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "seconds": time.time() - started,
        "command": " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
        "settings": settings,
        "machine": machine(pg_version),
        "labox": str(labox) if labox else None,
        "notes": notes,
        "failures": failures,
        "rows": [row.to_json() for row in rows],
    }
    json_path = out / f"{stamp}-{mode_name}.json"
    write_json(json_path, result)
    (out / f"{stamp}-{mode_name}.md").write_text(markdown_table(rows) + "\n")
    print()
    print(text_table(rows))
    print()
    for note in notes:
        print(f"note: {note}")
    print(f"results: {json_path}")
    print(f"markdown table: {json_path.with_suffix('.md')}")
    return 1 if failures else 0


def report(path: str) -> None:
    """Print the Markdown table of a results file (for docs/performance.md)."""
    data = json.loads(Path(path).read_text())
    rows = []
    for item in data["rows"]:
        fields = {k: item[k] for k in Row.__dataclass_fields__}
        rows.append(Row(**fields))
    print(markdown_table(rows))
