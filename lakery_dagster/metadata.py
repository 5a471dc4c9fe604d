"""Materialization metadata and data versions for what `LakeryIOManager` saved.

Each materialization (each partition, in a single-run backfill) gets:

==========================  =========================================================
``lakery/manifest_id``      the manifest id (single values)
``lakery/layout``           kind and ``[key, manifest id]`` items; what inputs load
``lakery/class``            the saved class and its class id
``lakery/manifest_tags``    the manifest tags shared by all items (without the
                            ``dagster/input/...`` ones: ``lakery/inputs`` has them)
``lakery/contents``         a table: item, key, content type, size, sha256, storage
``lakery/content_hash``     a digest of all content hashes (`content_digest`); the data
                            version is its first 32 characters (`data_version_of`)
``lakery/inputs``           the manifest ids the step loaded, by input name (with a
                            ``viewer_url``: a table linking to their viewer pages)
``lakery/url``              with a ``viewer_url``: the manifest's (or collection's)
                            page in ``lakery serve``
``dagster/uri``             where the data is (a file URI, or ``lakery://manifest/<id>``)
``dagster/size_bytes``      total size of the stored content
``dagster/column_schema``   a table output's columns and their (Arrow) types
``dagster/row_count``       a table output's rows (a LazyFrame's: when the Parquet file
                            is on local disk)
``lakery/table``            a table output's library, type and serializer
==========================  =========================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from dagster import MetadataValue
from dagster import TableColumn
from dagster import TableRecord
from dagster import TableSchema

from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Shape
from lakery_dagster.tables import table_metadata
from lakery_dagster.tags import COLLECTION_ID
from lakery_dagster.tags import COLLECTION_KEY
from lakery_dagster.tags import INPUT_PREFIX
from lakery_dagster.viewer_links import collection_url
from lakery_dagster.viewer_links import inputs_markdown
from lakery_dagster.viewer_links import manifest_url

__all__ = [
    "CONTENTS",
    "LAYOUT",
    "LAYOUTS",
    "MANIFEST_ID",
    "content_digest",
    "data_version_of",
    "materialization_metadata",
]

MANIFEST_ID = "lakery/manifest_id"
LAYOUT = "lakery/layout"
LAYOUTS = "lakery/layouts"
"""Fallback for single-run backfills when per-partition metadata is unavailable."""
CONTENTS = "lakery/contents"

_SCHEMA = TableSchema(
    columns=[
        TableColumn("item", "string"),
        TableColumn("key", "string"),
        TableColumn("content_type", "string"),
        TableColumn("size", "int"),
        TableColumn("sha256", "string"),
        TableColumn("storage", "string"),
    ]
)


def content_digest(records: Sequence[tuple[str, ManifestRecord]]) -> str:
    """A digest of what was stored: item keys, class ids and every part's key and hash.

    Equal content gives an equal digest whatever run, time, tags or item order saved it.
    """
    summary = sorted(
        [key, record.class_id.hex, sorted([c.content_key, c.content_hash] for c in record.contents)]
        for key, record in records
    )
    return _sha256(summary)


def data_version_of(grouped: Mapping[str | None, Sequence[tuple[str, ManifestRecord]]]) -> str:
    """The data version of one output: ``{partition: [(item key, record)]}``.

    One partition (or an unpartitioned asset): the first 32 characters of its
    `content_digest`. Several partitions (a single-run backfill, whose materializations
    share one data version): a digest of every partition's key and `content_digest`.
    """
    if len(grouped) == 1:
        return content_digest(next(iter(grouped.values())))[:32]
    summary = sorted([str(p), content_digest(items)] for p, items in grouped.items())
    return _sha256(summary)[:32]


def _sha256(summary: object) -> str:
    return hashlib.sha256(json.dumps(summary, separators=(",", ":")).encode()).hexdigest()


def materialization_metadata(
    layout: Layout,
    records: Sequence[tuple[str, ManifestRecord]],
    registry: Registry,
    inputs: Mapping[str, Mapping[str, str]],
    *,
    shape: Shape | None = None,
    viewer_url: str = "",
) -> dict[str, Any]:
    """The metadata of one materialization (one partition, or the unpartitioned asset).

    `shape` (what was saved, in memory) adds the column schema and row count of a table;
    `viewer_url` (checked, see `check_viewer_url`) adds links to the viewer's pages.
    """
    metadata: dict[str, Any] = {}
    if layout.kind == "single":
        metadata[MANIFEST_ID] = MetadataValue.text(layout.items[0][1])
    metadata[LAYOUT] = MetadataValue.json(layout.to_json())
    metadata["lakery/class"] = MetadataValue.text(_class_summary(records))
    metadata["lakery/manifest_tags"] = MetadataValue.json(_shared_tags(records))
    rows = []
    total = 0
    for key, record in records:
        for content in record.contents:
            total += content.content_size
            rows.append(
                TableRecord(
                    {
                        "item": key,
                        "key": content.content_key,
                        "content_type": content.content_type,
                        "size": content.content_size,
                        "sha256": content.content_hash,
                        "storage": content.storage_name,
                    }
                )
            )
    metadata[CONTENTS] = MetadataValue.table(records=rows, schema=_SCHEMA)
    metadata["lakery/content_hash"] = MetadataValue.text(content_digest(records))
    if inputs and viewer_url:
        metadata["lakery/inputs"] = MetadataValue.md(inputs_markdown(viewer_url, inputs))
    elif inputs:
        metadata["lakery/inputs"] = MetadataValue.json({k: dict(v) for k, v in inputs.items()})
    if viewer_url:
        metadata["lakery/url"] = MetadataValue.url(_viewer_page(viewer_url, layout, records))
    metadata["dagster/uri"] = MetadataValue.text(_uri(records, registry))
    metadata["dagster/size_bytes"] = MetadataValue.int(total)
    if shape is not None and shape.plain_value is not None:
        metadata.update(_table_metadata(shape.plain_value, records, registry))
    return metadata


def _table_metadata(
    value: Any, records: Sequence[tuple[str, ManifestRecord]], registry: Registry
) -> dict[str, Any]:
    try:
        return table_metadata(value, records, registry)
    except Exception as exc:  # the output is saved: a describing problem must not fail it
        logging.getLogger(__name__).warning("lakery: no table metadata (%s)", exc)
        return {}


def _class_summary(records: Sequence[tuple[str, ManifestRecord]]) -> str:
    names: dict[str, int] = {}
    for _, record in records:
        name = _class_name(record)
        names[name] = names.get(name, 0) + 1
    if len(records) == 1:
        return next(iter(names))
    return ", ".join(f"{count} x {name}" for name, count in names.items())


def _class_name(record: ManifestRecord) -> str:
    from lakery.core.storable import storable_class_for_id

    cls = storable_class_for_id(record.class_id)
    path = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "unknown class"
    return f"{path} (class_id {record.class_id.hex})"


def _shared_tags(records: Sequence[tuple[str, ManifestRecord]]) -> dict[str, str]:
    first = {k: v for k, v in records[0][1].tags.items() if not k.startswith(INPUT_PREFIX)}
    for _, record in records[1:]:
        first = {k: v for k, v in first.items() if record.tags.get(k) == v}
    if len(records) > 1:
        first.pop(COLLECTION_KEY, None)
    return first


def _viewer_page(
    viewer_url: str, layout: Layout, records: Sequence[tuple[str, ManifestRecord]]
) -> str:
    collection_id = records[0][1].tags.get(COLLECTION_ID)
    if layout.kind != "single" and collection_id:
        return collection_url(viewer_url, collection_id)
    return manifest_url(viewer_url, str(records[0][1].id))


def _uri(records: Sequence[tuple[str, ManifestRecord]], registry: Registry) -> str:
    if len(records) == 1 and len(records[0][1].contents) == 1:
        content = records[0][1].contents[0]
        try:
            uri = registry.get_storage(content.storage_name).uri(content.storage_data)
        except Exception:  # a storage that cannot tell its URI: use the manifest's
            uri = None
        if uri:
            return uri
    collection_id = records[0][1].tags.get(COLLECTION_ID)
    if len(records) > 1 and collection_id:
        return f"lakery://collection/{collection_id}"
    return f"lakery://manifest/{records[0][1].id}"
