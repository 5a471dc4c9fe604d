"""Inputs pinned by their metadata: to manifest ids, or to a run id and tags.

``AssetIn(metadata={"lakery/manifest_id": ...})`` names the manifest (for partitioned
inputs ``{partition_key: manifest_id}``); ``"lakery/run_id"`` and ``"lakery/match_tags"``
ask for the newest manifest of the upstream saved by that run / carrying those tags
(`lakery_dagster.selection.by_tags`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakery.common.exceptions import ConfigurationError
from lakery_dagster.shapes import Layout
from lakery_dagster.tags import MANIFEST_ID_METADATA
from lakery_dagster.tags import MATCH_TAGS_METADATA
from lakery_dagster.tags import RUN_ID
from lakery_dagster.tags import RUN_ID_METADATA

__all__ = ["pinned_ids", "pinned_manifests", "pinned_tags"]


def pinned_ids(
    metadata: Mapping[str, Any], partitions: list[str | None], where: str
) -> dict[str | None, str] | None:
    """``{partition: manifest_id}`` that ``lakery/manifest_id`` pins, checked; None unset."""
    pinned = metadata.get(MANIFEST_ID_METADATA)
    if pinned is None:
        return None
    if isinstance(pinned, Mapping):
        if partitions == [None]:
            msg = f'"{MANIFEST_ID_METADATA}" of unpartitioned {where} must be one manifest id'
            raise ConfigurationError(msg)
        return {p: str(pinned[p]) for p in partitions if p in pinned}
    if len(partitions) != 1:
        msg = (
            f'"{MANIFEST_ID_METADATA}" of {where} names one manifest, but {len(partitions)} '
            "partitions are loaded; give {partition_key: manifest_id}"
        )
        raise ConfigurationError(msg)
    return {partitions[0]: str(pinned)}


async def pinned_manifests(
    ids: Mapping[str | None, str], partitions: list[str | None]
) -> dict[str | None, Layout]:
    """The pinned manifest of each partition (fetched by id when loaded)."""
    return {p: Layout("single", [("", ids[p])]) for p in partitions if p in ids}


def pinned_tags(metadata: Mapping[str, Any], where: str) -> dict[str, str] | None:
    """The tags that ``lakery/run_id`` and ``lakery/match_tags`` ask for; None when unset."""
    run_id = metadata.get(RUN_ID_METADATA)
    match = metadata.get(MATCH_TAGS_METADATA)
    if run_id is None and match is None:
        return None
    if match is not None and not isinstance(match, Mapping):
        msg = f'"{MATCH_TAGS_METADATA}" of {where} must be a mapping of str to str'
        raise ConfigurationError(msg)
    return {**(match or {}), **({RUN_ID: str(run_id)} if run_id else {})}
