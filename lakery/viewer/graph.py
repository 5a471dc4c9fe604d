"""The lineage graph as server-side SVG: layered by depth, the current manifest highlighted.

`lineage_svg` takes any object shaped like `lakery.core.lineage.Lineage`: ``root`` (a
UUID), ``manifests`` (UUID to manifest record) and ``edges`` (each with ``parent_id``,
``child_id`` and ``label``, the input name). Parents (what a manifest was derived from)
are drawn left of their children; each manifest is a box with its class name and short id
that links to its page; each edge is an arrow labelled with its input name.
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakery.viewer.html import esc
from lakery.viewer.html import manifest_url

__all__ = ["GraphLayout", "layout_lineage", "lineage_svg"]

BOX_W, BOX_H = 190, 46
GAP_X, GAP_Y = 110, 26
MARGIN = 16


@dataclass(frozen=True)
class GraphLayout:
    """Where each node goes: ``layers[depth]`` lists node ids top to bottom.

    Depth 0 is the root; its ancestors have negative depths, its descendants positive.
    """

    layers: dict[int, list[uuid.UUID]]
    depth: dict[uuid.UUID, int]


def layout_lineage(lineage: Any) -> GraphLayout:
    """Layers by distance from the root (parents left, children right), each layer ordered
    to keep edges short (the mean position of its neighbours in the layer before)."""
    root = lineage.root
    parents: dict[uuid.UUID, list[uuid.UUID]] = {}
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for edge in lineage.edges:
        children.setdefault(edge.parent_id, []).append(edge.child_id)
        parents.setdefault(edge.child_id, []).append(edge.parent_id)
    depth = {root: 0}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        for parent in parents.get(node, []):
            if parent not in depth:
                depth[parent] = depth[node] - 1
                queue.append(parent)
        for child in children.get(node, []):
            if child not in depth:
                depth[child] = depth[node] + 1
                queue.append(child)
    unplaced = [m for m in lineage.manifests if m not in depth]
    for node in sorted(unplaced, key=str):  # not connected to the root: a column apart
        depth[node] = max(depth.values()) + 1
    layers: dict[int, list[uuid.UUID]] = {}
    for node, d in sorted(depth.items(), key=lambda item: (item[1], str(item[0]))):
        layers.setdefault(d, []).append(node)
    order = sorted(layers)
    for previous, current in itertools.pairwise(order):
        position = {node: i for i, node in enumerate(layers[previous])}

        def weight(node: uuid.UUID, position: dict[uuid.UUID, int] = position) -> float:
            neighbours = (*parents.get(node, []), *children.get(node, []))
            near = [position[n] for n in neighbours if n in position]
            return sum(near) / len(near) if near else float(len(position))

        layers[current].sort(key=weight)
    return GraphLayout(layers, depth)


def lineage_svg(lineage: Any, class_name: Callable[[Any], str]) -> str:
    """The SVG of a lineage; `class_name(record)` names a manifest's class."""
    layout = layout_lineage(lineage)
    order = sorted(layout.layers)
    tallest = max(len(nodes) for nodes in layout.layers.values())
    width = MARGIN * 2 + len(order) * BOX_W + (len(order) - 1) * GAP_X
    height = MARGIN * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y
    where: dict[uuid.UUID, tuple[float, float]] = {}
    for column, d in enumerate(order):
        layer = layout.layers[d]
        offset = (height - (len(layer) * BOX_H + (len(layer) - 1) * GAP_Y)) / 2
        for row, node in enumerate(layer):
            where[node] = (MARGIN + column * (BOX_W + GAP_X), offset + row * (BOX_H + GAP_Y))
    edges = []
    for edge in lineage.edges:
        if edge.parent_id not in where or edge.child_id not in where:
            continue
        px, py = where[edge.parent_id]
        cx, cy = where[edge.child_id]
        x1, y1, x2, y2 = px + BOX_W, py + BOX_H / 2, cx, cy + BOX_H / 2
        if cx <= px:  # drawn backwards (a node placed by another path): bend around
            x1, x2 = px + BOX_W / 2, cx + BOX_W / 2
            y1, y2 = py + BOX_H, cy
        mid_x, mid_y = (x1 + x2) / 2, (y1 + y2) / 2
        edges.append(
            f'<g class="edge"><path d="M{x1:.0f},{y1:.0f} C{mid_x:.0f},{y1:.0f} '
            f'{mid_x:.0f},{y2:.0f} {x2 - 2:.0f},{y2:.0f}" fill="none" stroke="#7a8799" '
            f'stroke-width="1.4" marker-end="url(#arrow)"/>'
            f'<text x="{mid_x:.0f}" y="{mid_y - 5:.0f}" text-anchor="middle" '
            f'fill="#4a5567">{esc(_cut(edge.label, 24))}</text></g>'
        )
    nodes: list[str] = []
    for node, (x, y) in where.items():
        record = lineage.manifests.get(node)
        name = _short_class(class_name(record)) if record is not None else "(not found)"
        is_root = node == lineage.root
        fill, stroke = ("#fff3c4", "#c48a00") if is_root else ("#eef3fb", "#5c7db0")
        box = (
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="5" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{2.5 if is_root else 1.2}"/>'
            f'<text x="{x + 10:.0f}" y="{y + 19:.0f}" font-weight="600" fill="#1d2430">'
            f"{esc(_cut(name, 26))}</text>"
            f'<text x="{x + 10:.0f}" y="{y + 36:.0f}" fill="#4a5567" '
            f'font-family="monospace">{esc(str(node)[:8])}</text>'
        )
        current = ' aria-current="page"' if is_root else ""
        nodes.append(
            f'<a class="node" href="{esc(manifest_url(node))}" data-id="{esc(node)}"{current}>'
            f"<title>{esc(name)} {esc(node)}</title>{box}</a>"
        )
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#7a8799"/></marker></defs>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="lineage graph" font-size="12" font-family="sans-serif">'
        f"{marker}{''.join(edges)}{''.join(nodes)}</svg>"
    )


def _short_class(name: str) -> str:
    return name.rpartition(".")[2] or name


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
