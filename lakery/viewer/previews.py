"""A preview of a part, chosen by its content type.

- JSON, NDJSON and text: pretty-printed (JSON) and HTML-escaped, cut at `TEXT_LIMIT`.
- NumPy ``.npy``: shape, dtype, min and max, and an SVG plot of 1-D and 2-D arrays.
- Parquet and Arrow IPC (file or stream): the schema and the first `TABLE_ROWS` rows.
- PNG and JPEG images: an ``<img>`` of the verified download.

Previews are made from bytes already checked against the part's record
(`ViewerStore.read_part`). Parts larger than `PREVIEW_MAX_BYTES` are not read for a
preview (they can still be downloaded). Nothing is unpickled or executed: arrays are read
with ``allow_pickle=False``, tables with pyarrow.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

from lakery.core.records import ContentRecord
from lakery.viewer.html import esc
from lakery.viewer.html import part_download_url
from lakery.viewer.html import table
from lakery.viewer.plot import heatmap_svg
from lakery.viewer.plot import line_svg

__all__ = [
    "IMAGE_TYPES",
    "PREVIEW_MAX_BYTES",
    "TABLE_ROWS",
    "TEXT_LIMIT",
    "can_preview",
    "render_preview",
]

PREVIEW_MAX_BYTES = 16 << 20
"""Parts up to this size are read (and verified) for a preview."""
TEXT_LIMIT = 20_000
"""Characters of text shown."""
TABLE_ROWS = 20
"""Rows of a table shown."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
"""Content types shown as images (served inline: the only ones that are)."""

_JSON = {"application/json"}
_NDJSON = {"application/x-ndjson"}
_NPY = {"application/x-npy"}
_PARQUET = {"application/vnd.apache.parquet"}
_IPC_FILE = {"application/vnd.apache.arrow.file"}
_IPC_STREAM = {"application/vnd.apache.arrow.stream"}


def base_type(content_type: str) -> str:
    """The media type without parameters, lowercased (``text/plain; charset=utf-8``)."""
    return content_type.split(";", 1)[0].strip().lower()


def can_preview(row: ContentRecord) -> bool:
    """Whether the part's content type has a preview (read from its bytes)."""
    kind = base_type(row.content_type)
    return _renderer(kind) is not None or kind in IMAGE_TYPES


def render_preview(row: ContentRecord, data: bytes | None) -> str:
    """HTML for the part: images link to the download, others are made from `data`."""
    kind = base_type(row.content_type)
    if kind in IMAGE_TYPES:
        src = part_download_url(row.manifest_id, row.content_key, inline=True)
        return f'<img src="{esc(src)}" alt="{esc(row.content_key)}">'
    renderer = _renderer(kind)
    if renderer is None or data is None:
        return '<p class="muted">no preview for this content type</p>'
    try:
        return renderer(data)
    except Exception as exc:  # the bytes are verified but may still not parse
        return f'<p class="error">cannot preview: {esc(type(exc).__name__)}: {esc(exc)}</p>'


def _renderer(kind: str) -> Callable[[bytes], str] | None:
    if kind in _JSON:
        return _json
    if kind in _NDJSON:
        return _ndjson
    if kind in _NPY:
        return _npy
    if kind in _PARQUET:
        return _parquet
    if kind in _IPC_FILE:
        return _ipc_file
    if kind in _IPC_STREAM:
        return _ipc_stream
    if kind.startswith("text/"):
        return _text
    return None


def _pre(text: str) -> str:
    cut = len(text) > TEXT_LIMIT
    shown = text[:TEXT_LIMIT]
    note = (
        f'<p class="muted">showing the first {TEXT_LIMIT:,} of {len(text):,} characters</p>'
        if cut
        else ""
    )
    return f"<pre>{esc(shown)}</pre>{note}"


def _text(data: bytes) -> str:
    return _pre(data.decode("utf-8", errors="replace"))


def _json(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return _pre(text)


def _ndjson(data: bytes) -> str:
    lines = data.decode("utf-8", errors="replace").splitlines()
    shown = []
    for line in lines:
        try:
            shown.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            shown.append(line)
    return _pre("\n".join(shown))


def _npy(data: bytes) -> str:
    import numpy as np

    array = np.load(io.BytesIO(data), allow_pickle=False)
    facts = [("shape", str(array.shape)), ("dtype", str(array.dtype))]
    numeric = array.dtype.kind in "biuf" and array.size > 0
    if numeric:
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
        if finite.size:
            facts += [("min", f"{finite.min().item()!r}"), ("max", f"{finite.max().item()!r}")]
    rows = [(esc(k), f"<code>{esc(v)}</code>") for k, v in facts]
    plot = ""
    if numeric and array.ndim == 1:
        plot = line_svg(array)
    elif numeric and array.ndim == 2:
        plot = heatmap_svg(array)
    if not plot:
        plot = _pre(np.array2string(array, threshold=200, edgeitems=5))
    return table(["", ""], rows, cls="facts") + plot


def _arrow_table(result: Any, total_rows: int | None) -> str:
    schema = result.schema
    fields = [(esc(f.name), f"<code>{esc(f.type)}</code>") for f in schema]
    head = result.slice(0, TABLE_ROWS).to_pylist()
    names = list(schema.names)
    rows = [[esc(_cell(row.get(name))) for name in names] for row in head]
    total = result.num_rows if total_rows is None else total_rows
    note = f'<p class="muted">{total:,} rows, {len(names)} columns; first {len(head)} shown</p>'
    return (
        "<h3>schema</h3>"
        + table(["column", "type"], fields)
        + "<h3>first rows</h3>"
        + note
        + table(names, rows)
    )


def _cell(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:200] + "…"


def _parquet(data: bytes) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(pa.BufferReader(data))
    batches = file.iter_batches(batch_size=TABLE_ROWS)
    first = next(batches, None)
    head = pa.Table.from_batches([first]) if first is not None else file.schema_arrow.empty_table()
    return _arrow_table(head, file.metadata.num_rows)


def _ipc_file(data: bytes) -> str:
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.BufferReader(data))
    return _arrow_table(reader.read_all(), None)


def _ipc_stream(data: bytes) -> str:
    import pyarrow as pa

    reader = pa.ipc.open_stream(pa.BufferReader(data))
    return _arrow_table(reader.read_all(), None)
