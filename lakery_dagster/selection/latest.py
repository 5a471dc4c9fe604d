"""Latest: what the upstream's latest materialization of each partition recorded.

The Dagster UI shows the latest materialization; an input loads what it recorded, found
without reading materialization events where it can be:

- lakery's newest output of each partition is taken when it matches Dagster's latest
  materialization of that partition: the same data version (lakery sets data versions
  from content hashes, so a match means the same stored content) and, for an
  unpartitioned asset, the same run;
- partitions saved together by a single-run backfill share one data version: they are
  checked together, against what that run saved;
- the rest (a newer lakery save that no materialization recorded, a materialization made
  by another IO manager, a data version set by the asset, Dagster hooks that are missing)
  take the materialization events; those with no lakery materialization in this instance
  take lakery's newest output.

When two manifests hold the same content, the data versions cannot tell them apart: the
input may then load lakery's newest one instead of the one the UI shows — the same bytes,
under another manifest id (the lineage tags name the one loaded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lakery_dagster.metadata import content_digest
from lakery_dagster.metadata import data_version_of
from lakery_dagster.selection.materializations import Materializations
from lakery_dagster.selection.materializations import Version
from lakery_dagster.selection.queries import newest_outputs
from lakery_dagster.selection.queries import run_outputs
from lakery_dagster.selection.strategy import Selected
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Stored
from lakery_dagster.tags import RUN_ID

if TYPE_CHECKING:
    from lakery_dagster.client import LakeryClient

__all__ = ["latest_materialized"]

_MAX_RUN_CHECKS = 8
"""Single-run backfills checked per input (one query each) before taking the event log."""

Candidates = Mapping[str | None, Stored]
Versions = Mapping[str | None, Version]


async def latest_materialized(
    client: LakeryClient, dagster: Materializations, partitions: list[str | None]
) -> dict[str | None, Selected]:
    """What the latest materialization of each partition recorded (see the module)."""
    asset_key = dagster.asset_key.to_user_string()
    (versions, complete), candidates = await asyncio.gather(
        asyncio.to_thread(dagster.data_versions, partitions),
        _newest(client, asset_key, partitions),
    )
    if complete and partitions == [None] and not versions:
        return dict(candidates)  # the instance has no materialization of it at all
    found: dict[str | None, Selected] = dict(_same_version(candidates, versions))
    rest = [p for p in partitions if p not in found]
    if rest and partitions != [None]:
        found.update(await saved_by_one_backfill(client, asset_key, candidates, versions, rest))
        rest = [p for p in rest if p not in found]
    if complete:  # neither lakery nor Dagster has the others: never materialized
        rest = [p for p in rest if p in candidates or p in versions]
    if rest:
        recorded = await asyncio.to_thread(dagster.recorded_layouts, rest)
        found.update(_as_recorded(candidates, recorded, rest))
    return found


async def _newest(
    client: LakeryClient, asset_key: str, partitions: list[str | None]
) -> dict[str | None, Stored]:
    async with client.session() as session:
        return await newest_outputs(session, asset_key=asset_key, partitions=partitions)


def _same_version(candidates: Candidates, versions: Versions) -> dict[str | None, Stored]:
    """The candidates whose content (and run, where known) is the latest materialization's."""
    found: dict[str | None, Stored] = {}
    for partition, stored in candidates.items():
        version = versions.get(partition)
        if version is None or content_digest(stored.items)[:32] != version.data_version:
            continue
        if version.run_id is None or stored.records[0].tags.get(RUN_ID) == version.run_id:
            found[partition] = stored
    return found


async def saved_by_one_backfill(
    client: LakeryClient,
    asset_key: str,
    candidates: Candidates,
    versions: Versions,
    partitions: list[str | None],
) -> dict[str | None, Stored]:
    """Candidates saved by one single-run backfill, whose materializations share a version.

    The run's outputs of every partition give the run's data version (`data_version_of`);
    when it is the latest materialization's, the candidates saved by that run are it.
    """
    found: dict[str | None, Stored] = {}
    async with client.session() as session:
        for (run_id, data_version), group in _by_run(candidates, versions, partitions):
            outputs = await run_outputs(session, asset_key=asset_key, run_id=run_id)
            if len(outputs) < 2:
                continue  # one partition: its own content digest was the version to match
            if data_version_of({p: s.items for p, s in outputs.items()}) != data_version:
                continue
            for partition in group:
                saved = outputs.get(partition)
                if saved is not None and saved.layout.items == candidates[partition].layout.items:
                    found[partition] = candidates[partition]
    return found


def _by_run(
    candidates: Candidates, versions: Versions, partitions: list[str | None]
) -> list[tuple[tuple[str, str], list[str | None]]]:
    """``((run id, data version), partitions)`` of the candidates, largest groups first."""
    runs: dict[tuple[str, str], list[str | None]] = {}
    for partition in partitions:
        stored, version = candidates.get(partition), versions.get(partition)
        run_id = stored.records[0].tags.get(RUN_ID) if stored is not None else None
        if version is not None and run_id:
            runs.setdefault((run_id, version.data_version), []).append(partition)
    return sorted(runs.items(), key=lambda item: -len(item[1]))[:_MAX_RUN_CHECKS]


def _as_recorded(
    candidates: Candidates, recorded: Mapping[str | None, Layout], partitions: list[str | None]
) -> dict[str | None, Selected]:
    """What the event log recorded, as lakery's candidate when it is the same manifests."""
    found: dict[str | None, Selected] = {}
    for partition in partitions:
        layout, candidate = recorded.get(partition), candidates.get(partition)
        if layout is None:
            if candidate is not None:
                found[partition] = candidate  # the instance has no lakery materialization of it
        elif candidate is not None and candidate.layout.items == layout.items:
            found[partition] = candidate
        else:
            found[partition] = layout
    return found
