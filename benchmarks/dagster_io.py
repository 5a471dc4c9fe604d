"""Dagster: LakeryIOManager against Dagster's pickle IO managers, in the same process.

Competitors, all on the local disk:

- ``lakery``: `LakeryIOManager` with an SQLite records database and file storage
  (``storage_url=file://...``);
- ``fs``: `dagster.FilesystemIOManager` (Dagster's default IO manager: pickles under a
  ``base_dir``; in Dagster 1.13 a `UPathIOManager` on a local path);
- ``upath``: Dagster's `PickledObjectFilesystemIOManager` (the `UPathIOManager` subclass
  behind it) on an fsspec ``file://`` UPath, the code path of every fsspec filesystem.

Workloads, each competitor with its own Dagster instance (`DagsterInstance.ephemeral()`:
an in-memory event log, so that the instance's own bookkeeping adds as little as possible
to what is measured) and its own folder:

- a graph of `graph_size` assets (asset ``i`` reads assets ``i-1`` and ``i//2``; each
  returns a small dict): wall time of one in-process run that materializes all of them;
- fan-in: a daily-partitioned asset with `partitions` partitions, each materialized by its
  own run (the wall time of these runs is reported too), then an unpartitioned asset that
  reads all of them as ``{partition_key: value}``: the wall time of that run and the time
  spent in the IO manager's ``load_input``.

Runs are interleaved (the order of the competitors rotates from one repeat to the next)
and the first run of each competitor is a warm-up that is not counted. Before each timed
graph and fan-in run a full garbage collection runs (untimed): with three Dagster
instances in one process, a pending full collection takes 100-300 ms and would otherwise
land in whichever run happens to cross the threshold.

What each workload exercises in `LakeryIOManager`: the graph's inputs come from the same
run (the records its steps just saved, no lookup); each daily partition is one durable
save plus the per-run setup (the engine and registry stay open between runs of a
process); the fan-in loads outputs of earlier runs (lakery's newest manifest per
partition in one query, checked against the data versions of Dagster's latest
materializations, then one bulk load).
"""

from __future__ import annotations

import datetime as dt
import gc
import inspect
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from benchmarks.common import Row
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource

COMPETITORS = ("lakery", "fs", "upath")
NAMES = {
    "fs": "FilesystemIOManager",
    "upath": "UPath pickle IO manager (fsspec file://)",
}

_QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

_LOAD_SECONDS: list[float] = []
"""Seconds spent in `load_input` by the timed IO managers, appended as they run."""


def _value(name: str, inputs: int) -> dict[str, Any]:
    return {"asset": name, "inputs": inputs, "values": [float(i) for i in range(100)]}


def _node(name: str, inputs: list[str]) -> Any:
    """The compute function of one graph asset, with one parameter per input."""

    def compute(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return _value(name, len(args) + len(kwargs))

    parameters = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in inputs]
    compute.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    compute.__annotations__ = {}
    compute.__name__ = name
    return compute


def _graph(size: int) -> list[Any]:
    assets = []
    for i in range(size):
        deps = sorted({i - 1, i // 2} - {i}) if i else []
        ins = {f"in{k}": dg.AssetIn(key=f"node_{d}") for k, d in enumerate(deps)}
        assets.append(dg.asset(name=f"node_{i}", ins=ins)(_node(f"node_{i}", list(ins))))
    return assets


def _fan_in(partitions: int) -> tuple[Any, Any, list[str]]:
    start = dt.date(2023, 1, 1)
    end = start + dt.timedelta(days=partitions)
    days = dg.DailyPartitionsDefinition(start_date=str(start), end_date=str(end))

    @dg.asset(partitions_def=days)
    def daily(context) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return _value(context.partition_key, 0)

    @dg.asset
    def yearly(daily: dict[str, dict[str, Any]]) -> dict[str, float]:
        assert len(daily) == partitions
        return {key: sum(value["values"]) for key, value in daily.items()}

    return daily, yearly, days.get_partition_keys()


def _io_manager(who: str, folder: Path) -> Any:
    """The IO manager of `who`, timing its `load_input` calls into `_LOAD_SECONDS`."""

    class TimedLakeryIOManager(LakeryIOManager):
        def load_input(self, context: dg.InputContext) -> Any:
            started = time.perf_counter()
            try:
                return super().load_input(context)
            finally:
                _LOAD_SECONDS.append(time.perf_counter() - started)

    class Timed(dg.IOManager):
        def __init__(self, inner: dg.IOManager) -> None:
            self.inner = inner

        def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
            self.inner.handle_output(context, obj)

        def load_input(self, context: dg.InputContext) -> Any:
            started = time.perf_counter()
            try:
                return self.inner.load_input(context)
            finally:
                _LOAD_SECONDS.append(time.perf_counter() - started)

    class TimedFilesystemIOManager(dg.FilesystemIOManager):
        def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
            return Timed(super().create_io_manager(context))

    class TimedUPathIOManager(dg.ConfigurableIOManagerFactory):
        base_url: str

        def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
            return Timed(PickledObjectFilesystemIOManager(base_dir=self.base_url))

    if who == "lakery":
        resource = LakeryResource(
            database_url=f"sqlite+aiosqlite:///{folder / 'lakery.db'}",
            storage_url=(folder / "blobs").as_uri(),
        )
        return TimedLakeryIOManager(lakery=resource)
    if who == "fs":
        return TimedFilesystemIOManager(base_dir=str(folder / "pickles"))
    return TimedUPathIOManager(base_url=(folder / "upath").as_uri())


class _Competitor:
    def __init__(self, who: str, folder: Path) -> None:
        self.who = who
        folder.mkdir(parents=True)
        self.instance = dg.DagsterInstance.ephemeral()
        self.io_manager = _io_manager(who, folder)

    def run(
        self, assets: list[Any], *, collect: bool = False, **kwargs: Any
    ) -> tuple[float, float]:
        """Wall seconds of one materialization, and seconds spent in load_input.

        With `collect`, a full garbage collection runs first (not timed), so that one
        pending from earlier work does not land in this run.
        """
        _LOAD_SECONDS.clear()
        if collect:
            gc.collect()
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            resources={"io_manager": self.io_manager},
            instance=self.instance,
            run_config=_QUIET,
            **kwargs,
        )
        seconds = time.perf_counter() - started
        assert result.success
        return seconds, sum(_LOAD_SECONDS)


def run(
    *, graph_size: int, partitions: int, repeats: int, work: Path, log: Any = print
) -> list[Row]:
    """The rows of this benchmark (see the module docstring)."""
    logging.getLogger("dagster").setLevel(logging.ERROR)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    graph = _graph(graph_size)
    daily, yearly, keys = _fan_in(partitions)
    graph_seconds: dict[str, list[float]] = {who: [] for who in COMPETITORS}
    partition_seconds: dict[str, list[float]] = {who: [] for who in COMPETITORS}
    fan_in_seconds: dict[str, list[float]] = {who: [] for who in COMPETITORS}
    fan_in_load: dict[str, list[float]] = {who: [] for who in COMPETITORS}
    with tempfile.TemporaryDirectory(dir=work, prefix="dagster-") as temp:
        competitors = {who: _Competitor(who, Path(temp) / who) for who in COMPETITORS}
        for who, competitor in competitors.items():  # warm-up: imports, engines, tables
            competitor.run(graph)
            log(f"  dagster warm-up {who} done")
        order = list(COMPETITORS)
        for index, key in enumerate(keys):  # the upstream partitions, interleaved
            for who in order[index % 3 :] + order[: index % 3]:
                seconds, _ = competitors[who].run([daily], partition_key=key)
                partition_seconds[who].append(seconds)
        log(f"  dagster: {len(keys)} partitions materialized by each competitor")
        for repeat in range(repeats):
            rotated = order[repeat % 3 :] + order[: repeat % 3]
            for who in rotated:
                seconds, _ = competitors[who].run(graph, collect=True)
                graph_seconds[who].append(seconds)
            for who in rotated:
                seconds, loading = competitors[who].run(
                    [daily, yearly], selection=[yearly], collect=True
                )
                fan_in_seconds[who].append(seconds)
                fan_in_load[who].append(loading)
            log(
                f"  dagster repeat {repeat + 1}/{repeats}: graph "
                + ", ".join(f"{w} {graph_seconds[w][-1]:.2f}s" for w in COMPETITORS)
                + "; fan-in load "
                + ", ".join(f"{w} {fan_in_load[w][-1]:.3f}s" for w in COMPETITORS)
            )
    rows = []
    for other in ("fs", "upath"):
        rows.append(
            Row(
                "dagster",
                f"{graph_size}-asset graph, wall time per run",
                "s",
                False,
                graph_seconds["lakery"],
                graph_seconds[other],
                NAMES[other],
                goal="no slower per asset",
                goal_ratio=1.0,
                extra={
                    "assets": graph_size,
                    "lakery_ms_per_asset": [1000 * s / graph_size for s in graph_seconds["lakery"]],
                },
            )
        )
    for other in ("fs", "upath"):
        rows.append(
            Row(
                "dagster",
                f"one daily partition, wall time per run ({partitions} runs)",
                "s",
                False,
                partition_seconds["lakery"],
                partition_seconds[other],
                NAMES[other],
                goal="no slower per asset",
                goal_ratio=1.0,
            )
        )
    for other in ("fs", "upath"):
        rows.append(
            Row(
                "dagster",
                f"{partitions}-partition fan-in, load_input time",
                "s",
                False,
                fan_in_load["lakery"],
                fan_in_load[other],
                NAMES[other],
                goal=">= 3x faster",
                goal_ratio=3.0,
                extra={"partitions": partitions},
            )
        )
    for other in ("fs", "upath"):
        rows.append(
            Row(
                "dagster",
                f"{partitions}-partition fan-in, wall time per run",
                "s",
                False,
                fan_in_seconds["lakery"],
                fan_in_seconds[other],
                NAMES[other],
                extra={"partitions": partitions},
            )
        )
    return rows
