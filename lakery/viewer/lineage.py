"""The lineage section of a manifest page, from `lakery.core.lineage` when it exists.

`lakery.core.lineage.find_lineage(session, manifest_id, up=..., down=..., depth=...)`
returns a `Lineage` (``root``, ``manifests``, ``edges``); it is imported when a page asks
for it, so a lakery without it shows "lineage not available" instead of failing.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from lakery.core.records import ManifestRecord
from lakery.viewer.graph import lineage_svg
from lakery.viewer.html import esc
from lakery.viewer.store import ViewerStore

__all__ = ["LINEAGE_DEPTH", "lineage_html"]

LINEAGE_DEPTH = 3
"""Generations shown up (parents) and down (children) of a manifest."""

logger = logging.getLogger("lakery.viewer")


def _find_lineage() -> Any | None:
    try:
        module = importlib.import_module("lakery.core.lineage")
    except ModuleNotFoundError as exc:
        if exc.name not in {"lakery.core.lineage", "lakery.core"}:
            raise
        return None
    return getattr(module, "find_lineage", None)


async def lineage_html(store: ViewerStore, record: ManifestRecord) -> str:
    """The lineage graph of `record` as SVG, or a note saying why there is none."""
    find_lineage = _find_lineage()
    if find_lineage is None:
        return '<p class="muted">lineage not available</p>'
    try:
        async with store.sessions() as session:
            lineage = await find_lineage(session, record.id, depth=LINEAGE_DEPTH)
    except Exception as exc:
        logger.exception("cannot find the lineage of manifest %s", record.id)
        return f'<p class="error">cannot find the lineage: {esc(type(exc).__name__)}</p>'
    if not lineage.edges:
        return '<p class="muted">no recorded parents or children</p>'
    return lineage_svg(lineage, lambda r: store.class_name(r) or r.class_id.hex[:12])
