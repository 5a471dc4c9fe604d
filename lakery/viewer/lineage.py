"""The lineage section of a manifest page: `lakery.core.lineage.find_lineage` drawn as SVG."""

from __future__ import annotations

import logging

from lakery.common.exceptions import LakeryError
from lakery.core.lineage import find_lineage
from lakery.core.records import ManifestRecord
from lakery.viewer.graph import lineage_svg
from lakery.viewer.html import esc
from lakery.viewer.store import ViewerStore

__all__ = ["LINEAGE_DEPTH", "lineage_html"]

LINEAGE_DEPTH = 3
"""Generations shown up (parents) and down (children) of a manifest."""

logger = logging.getLogger("lakery.viewer")


async def lineage_html(store: ViewerStore, record: ManifestRecord) -> str:
    """The lineage graph of `record` as SVG, or a note saying why there is none."""
    try:
        async with store.sessions() as session:
            lineage = await find_lineage(session, record.id, depth=LINEAGE_DEPTH)
    except LakeryError as exc:
        logger.error("cannot find the lineage of manifest %s: %s", record.id, exc)
        return f'<p class="error">cannot find the lineage: {esc(type(exc).__name__)}</p>'
    if not lineage.edges:
        return '<p class="muted">no recorded parents or children</p>'
    return lineage_svg(lineage, lambda r: store.class_name(r) or r.class_id.hex[:12])
