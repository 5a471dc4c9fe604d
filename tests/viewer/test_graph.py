"""The lineage graph drawing, from hand-made Lineage-shaped objects; and the manifest
page's lineage section with and without `lakery.core.lineage`."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any

from lakery import ManifestRecord
from lakery.viewer.graph import layout_lineage
from lakery.viewer.graph import lineage_svg
from tests.viewer.conftest import Viewer


@dataclass(frozen=True)
class Edge:
    parent_id: uuid.UUID
    child_id: uuid.UUID
    label: str


@dataclass
class Graph:
    root: uuid.UUID
    manifests: dict[uuid.UUID, Any] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


def record(class_hex: str = "ab" * 16) -> ManifestRecord:
    return ManifestRecord(
        id=uuid.uuid4(),
        class_id=uuid.UUID(class_hex),
        unpacker_name="u",
        tags={},
        created_at=datetime.now(UTC),
    )


def names(r: ManifestRecord) -> str:
    return "pkg.module.Thing" if r.class_id.hex == "ab" * 16 else "<Evil & Co>"


def chain() -> tuple[Graph, list[ManifestRecord]]:
    """grandparent -> parent -> ROOT -> child, and a second parent of the root."""
    grand, parent, other, root, child = (record() for _ in range(5))
    graph = Graph(
        root.id,
        {r.id: r for r in (grand, parent, other, root, child)},
        [
            Edge(grand.id, parent.id, "source"),
            Edge(parent.id, root.id, "train"),
            Edge(other.id, root.id, "config"),
            Edge(root.id, child.id, "model"),
        ],
    )
    return graph, [grand, parent, other, root, child]


def test_layers_by_depth() -> None:
    graph, (grand, parent, other, root, child) = chain()
    layout = layout_lineage(graph)
    assert layout.depth == {grand.id: -2, parent.id: -1, other.id: -1, root.id: 0, child.id: 1}
    assert sorted(layout.layers) == [-2, -1, 0, 1]
    assert set(layout.layers[-1]) == {parent.id, other.id}


def test_svg_has_linked_boxes_labelled_edges_and_the_current_highlighted() -> None:
    graph, records = chain()
    svg = lineage_svg(graph, names)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for r in records:
        assert f'href="/manifests/{r.id}"' in svg
        assert str(r.id)[:8] in svg
    assert svg.count("<rect") == 5
    assert svg.count('class="edge"') == 4
    for label in ("source", "train", "config", "model"):
        assert f">{label}</text>" in svg
    assert ">Thing</text>" in svg  # the class name, without its module
    (current,) = re.findall(r'<a class="node" href="/manifests/([^"]+)"[^>]*aria-current', svg)
    assert current == str(graph.root)
    # parents are left of their children
    boxes = re.findall(r'href="/manifests/([^"]+)".*?<rect x="([\d.]+)"', svg)
    xs = {m: float(x) for m, x in boxes}
    grand, parent, _, root, child = records
    assert xs[str(grand.id)] < xs[str(parent.id)] < xs[str(root.id)] < xs[str(child.id)]


def test_svg_escapes_names_and_labels() -> None:
    evil = record("cd" * 16)
    root = record()
    graph = Graph(root.id, {evil.id: evil, root.id: root}, [Edge(evil.id, root.id, "<b>x</b>")])
    svg = lineage_svg(graph, names)
    assert "<Evil" not in svg and "&lt;Evil &amp; Co&gt;" in svg
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg


def test_missing_manifests_and_cycles_still_draw() -> None:
    root, known = record(), record()
    gone = uuid.uuid4()
    graph = Graph(
        root.id,
        {root.id: root, known.id: known},
        [Edge(gone, root.id, "lost"), Edge(root.id, known.id, "a"), Edge(known.id, root.id, "b")],
    )
    svg = lineage_svg(graph, names)
    assert "(not found)" in svg and svg.count("<rect") == 3
    assert svg.count('class="edge"') == 3


def test_a_lone_manifest() -> None:
    root = record()
    svg = lineage_svg(Graph(root.id, {root.id: root}), names)
    assert svg.count("<rect") == 1 and "aria-current" in svg


def test_lineage_on_the_manifest_page(viewer: Viewer) -> None:
    ids = viewer.demo.ids
    page = viewer.client.get(f"/manifests/{ids['table']}").text
    svg = page.split('<section class="lineage">', 1)[1]
    for name in ("raw", "grid", "table", "summary"):
        assert f'href="/manifests/{ids[name]}"' in svg
    for label in ("raw", "grid", "table"):
        assert f">{label}</text>" in svg
    assert re.search(rf'href="/manifests/{ids["table"]}"[^>]*aria-current="page"', svg)
    alone = viewer.client.get(f"/manifests/{ids['image']}").text
    assert "no recorded parents or children" in alone
