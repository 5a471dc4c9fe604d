"""``lakery lineage ID``: a manifest's ancestors and descendants as a tree, JSON or DOT."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from lakery.cli.context import Context
from lakery.cli.lookup import resolve_manifest_id
from lakery.common.exceptions import LakeryError
from lakery.core.lineage import Lineage
from lakery.core.lineage import LineageEdge
from lakery.core.lineage import find_lineage
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry

__all__ = ["KEY_TAGS", "class_name", "lineage"]

KEY_TAGS = ("dagster/asset_key", "dagster/partition")
"""Tags shown next to each manifest of the tree."""


def class_name(registry: Registry, record: ManifestRecord) -> str:
    """``module.QualName`` of the manifest's class, if registered or imported; else ""."""
    try:
        cls = registry.get_storable(record.class_id)
    except LakeryError:
        return ""
    return f"{cls.__module__}.{cls.__qualname__}"


async def lineage(ctx: Context) -> int:
    args = ctx.args
    async with ctx.session() as session:
        root = await resolve_manifest_id(session, args.id)
        if root is None:
            sys.stderr.write(f"lakery: no manifest {args.id}\n")
            return 1
        found = await find_lineage(
            session,
            root,
            up=not args.down,
            down=not args.up,
            depth=args.depth or None,
        )
    if ctx.json:
        ctx.emit(_as_json(ctx.registry, found))
    elif args.dot:
        ctx.print(_as_dot(ctx.registry, found))
    else:
        ctx.print(_as_tree(ctx.registry, found, up=not args.down, down=not args.up))
    return 0


def _node(registry: Registry, found: Lineage, node: uuid.UUID) -> dict[str, Any]:
    record = found.manifests.get(node)
    if record is None:
        return {"id": str(node), "missing": True}
    return {
        "id": str(node),
        "missing": False,
        "class": class_name(registry, record) or None,
        "class_id": record.class_id.hex,
        "created_at": record.created_at.isoformat(),
        "tags": record.tags,
    }


def _as_json(registry: Registry, found: Lineage) -> dict[str, Any]:
    ids = sorted({found.root, *found.manifests, *found.missing})
    return {
        "root": str(found.root),
        "nodes": [_node(registry, found, node) for node in ids],
        "edges": [
            {"parent": str(e.parent_id), "child": str(e.child_id), "label": e.label}
            for e in found.edges
        ],
        "missing": sorted(str(m) for m in found.missing),
    }


def _describe(registry: Registry, found: Lineage, node: uuid.UUID) -> list[str]:
    """The words shown for a node: class, short id, key tags, time."""
    record = found.manifests.get(node)
    if record is None:
        return ["(deleted)", node.hex[:8]]
    words = [class_name(registry, record) or f"class {record.class_id.hex}", node.hex[:8]]
    words += [f"{key}={record.tags[key]}" for key in KEY_TAGS if key in record.tags]
    words.append(record.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    return words


def _as_tree(registry: Registry, found: Lineage, *, up: bool, down: bool) -> str:
    lines = ["  ".join(_describe(registry, found, found.root))]
    for wanted, title, links in (
        (up, "derived from", _links(found.edges, up=True)),
        (down, "used by", _links(found.edges, up=False)),
    ):
        if not wanted:
            continue
        lines.append(f"{title}:")
        if not links.get(found.root):
            lines.append("  (nothing)")
        _branch(registry, found, links, found.root, "  ", {found.root}, set(), lines)
    return "\n".join(lines)


def _links(edges: list[LineageEdge], *, up: bool) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    links: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
    for edge in edges:
        near, far = (edge.child_id, edge.parent_id) if up else (edge.parent_id, edge.child_id)
        links.setdefault(near, []).append((far, edge.label))
    return links


def _branch(
    registry: Registry,
    found: Lineage,
    links: dict[uuid.UUID, list[tuple[uuid.UUID, str]]],
    node: uuid.UUID,
    indent: str,
    path: set[uuid.UUID],
    expanded: set[uuid.UUID],
    lines: list[str],
) -> None:
    """The nodes linked to `node`, each on its line, then theirs. A node reached again is
    not followed again: marked ``(cycle)`` when on the path above, else ``(see above)``."""
    nexts = links.get(node, [])
    for index, (other, label) in enumerate(nexts):
        last = index == len(nexts) - 1
        words = ([f"[{label}]"] if label else []) + _describe(registry, found, other)
        follow = other not in path and other not in expanded
        if other in path:
            words.append("(cycle)")
        elif other in expanded:
            words.append("(see above)")
        lines.append(indent + ("└── " if last else "├── ") + "  ".join(words))
        if follow and links.get(other):
            expanded.add(other)
            child_indent = indent + ("    " if last else "│   ")
            _branch(registry, found, links, other, child_indent, path | {other}, expanded, lines)


def _as_dot(registry: Registry, found: Lineage) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for node in sorted({found.root, *found.manifests, *found.missing}):
        label = "\\n".join(_quote(w) for w in _describe(registry, found, node))
        style = ', style="bold"' if node == found.root else ""
        style += ', style="dashed"' if node in found.missing else ""
        lines.append(f'  "{node}" [label="{label}"{style}];')
    for edge in found.edges:
        label = f' [label="{_quote(edge.label)}"]' if edge.label else ""
        lines.append(f'  "{edge.parent_id}" -> "{edge.child_id}"{label};')
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]
