"""Links from a manifest to the Dagster UI that made it (``--dagster-url``).

A manifest saved by `lakery_dagster`'s IO manager has the tags ``dagster/run_id`` and
``dagster/asset_key`` (`lakery_dagster.tags.RUN_ID`, `lakery_dagster.tags.ASSET_KEY`;
named here so that the viewer does not import Dagster): the run links to
``{dagster_url}/runs/{run_id}``, the asset to ``{dagster_url}/assets/{asset key path}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["ASSET_KEY_TAG", "RUN_ID_TAG", "dagster_links"]

RUN_ID_TAG = "dagster/run_id"
ASSET_KEY_TAG = "dagster/asset_key"


def dagster_links(tags: Mapping[str, Any], dagster_url: str | None) -> list[tuple[str, str]]:
    """``(label, url)`` of the run and the asset of a manifest; none without a URL."""
    if not dagster_url:
        return []
    base = dagster_url.rstrip("/")
    links = []
    run_id = tags.get(RUN_ID_TAG)
    if isinstance(run_id, str) and run_id:
        links.append((f"Dagster run {run_id}", f"{base}/runs/{quote(run_id, safe='')}"))
    asset_key = tags.get(ASSET_KEY_TAG)
    if isinstance(asset_key, str) and asset_key:
        path = "/".join(quote(part, safe="") for part in asset_key.split("/"))
        links.append((f"Dagster asset {asset_key}", f"{base}/assets/{path}"))
    return links
