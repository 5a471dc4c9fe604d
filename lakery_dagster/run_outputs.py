"""What this process saved in each run, so that inputs of the same run skip the lookups.

`handle_output` records, per run id, the layout and the manifest records it saved for
each asset partition (or op output). An input whose upstream output was produced by the
same run (``context.upstream_output.run_id == step run id``) and saved in this process
loads those records directly: no event-log lookup, no manifest query, only the blob reads.
Inputs of other processes (the multiprocess executor) and of later runs take the regular
path. Records are kept for the runs of an IO manager until its teardown, and for at most
`MAX_RUNS` runs per process whatever happens.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from lakery_dagster.shapes import Stored

__all__ = ["MAX_RUNS", "OutputKey", "forget_runs", "output_key", "recall", "remember"]

MAX_RUNS = 16
"""Runs whose saved records a process keeps at most (the oldest are dropped first)."""

OutputKey = tuple[str, ...]


_RUNS: dict[str, dict[OutputKey, tuple[str, Stored]]] = {}
"""``{run_id: {output key: (database URL, what was saved)}}``."""
_LOCK = threading.Lock()


def output_key(
    *,
    asset_key: str | None,
    partition: str | None,
    step_key: str | None = None,
    output_name: str | None = None,
    mapping_key: str | None = None,
) -> OutputKey:
    """The key of an asset partition (or, without an asset key, of a step output)."""
    if asset_key is not None:
        return ("asset", asset_key, partition or "")
    return ("step", step_key or "", output_name or "", mapping_key or "")


def remember(run_id: str, key: OutputKey, database: str, stored: Stored) -> None:
    with _LOCK:
        outputs = _RUNS.pop(run_id, None)
        if outputs is None:
            outputs = {}
            while len(_RUNS) >= MAX_RUNS:
                del _RUNS[next(iter(_RUNS))]
        _RUNS[run_id] = outputs  # most recently used last
        outputs[key] = (database, stored)


def recall(run_id: str, key: OutputKey, database: str) -> Stored | None:
    """What this process saved for `key` in run `run_id` to `database`, or None."""
    with _LOCK:
        saved = _RUNS.get(run_id, {}).get(key)
    if saved is None or saved[0] != database:
        return None
    return saved[1]


def forget_runs(run_ids: Sequence[str]) -> None:
    with _LOCK:
        for run_id in run_ids:
            _RUNS.pop(run_id, None)
