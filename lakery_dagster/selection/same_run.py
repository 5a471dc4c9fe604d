"""Same run: what this process saved for the upstream earlier in the run of the input.

`handle_output` keeps the records it saved (`lakery_dagster.run_outputs`); an input whose
upstream output was made by the same run, in this process, loads them with no lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dagster import InputContext

from lakery_dagster.context import context_attribute
from lakery_dagster.context import step_of
from lakery_dagster.run_outputs import OutputKey
from lakery_dagster.run_outputs import output_key
from lakery_dagster.run_outputs import recall
from lakery_dagster.shapes import Stored

__all__ = ["SameRun", "same_run_of", "saved_in_this_run"]


@dataclass(frozen=True)
class SameRun:
    """An upstream output made by the run that loads it: the keys it was saved under."""

    run_id: str
    database: str
    keys: Mapping[str | None, OutputKey]


def same_run_of(
    context: InputContext, database: str, partitions: list[str | None]
) -> SameRun | None:
    """The upstream output when the input's own run made it, else None."""
    step = step_of(context)
    upstream = context.upstream_output
    if step is None or upstream is None or context_attribute(upstream, "run_id") != step[0]:
        return None
    asset_key = context.asset_key.to_user_string() if context.has_asset_key else None
    keys = {
        partition: output_key(
            asset_key=asset_key,
            partition=partition,
            step_key=context_attribute(upstream, "step_key"),
            output_name=context_attribute(upstream, "name"),
            mapping_key=context_attribute(upstream, "mapping_key"),
        )
        for partition in partitions
    }
    return SameRun(step[0], database, keys)


async def saved_in_this_run(run: SameRun, partitions: list[str | None]) -> dict[str | None, Stored]:
    """What `handle_output` saved for each partition in this run, in this process."""
    saved = {p: recall(run.run_id, run.keys[p], run.database) for p in partitions}
    return {p: stored for p, stored in saved.items() if stored is not None}
