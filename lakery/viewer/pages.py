"""The viewer's pages as HTML strings: search, one manifest, and error pages."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from urllib.parse import urlencode

from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.viewer.html import attr
from lakery.viewer.html import esc
from lakery.viewer.html import human_bytes
from lakery.viewer.html import link
from lakery.viewer.html import manifest_url
from lakery.viewer.html import page
from lakery.viewer.html import part_download_url
from lakery.viewer.html import table
from lakery.viewer.store import ManifestPage

__all__ = ["FormValues", "manifest_page", "message_page", "search_page"]

FormValues = Mapping[str, Sequence[str]]
"""The search form as submitted: each field's values (``tag`` may repeat)."""

TAG_FIELDS = 3
"""Tag inputs on the search form (more can be given in the URL)."""


def tags_html(tags: Mapping[str, object]) -> str:
    """Tags as small ``key=value`` labels, sorted by key."""
    return "".join(
        f'<span class="tag">{esc(key)}={esc(_tag_value(value))}</span>'
        for key, value in sorted(tags.items())
    )


def _tag_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _when(record: ManifestRecord | ContentRecord) -> str:
    return record.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def search_page(
    form: FormValues,
    results: ManifestPage | None,
    class_names: Mapping[uuid.UUID, str],
    *,
    error: str = "",
) -> str:
    """The search form, then one page of matching manifests (newest first)."""
    tags = [t for t in form.get("tag", []) if t.strip()]
    tag_inputs = [*tags, *[""] * max(0, TAG_FIELDS - len(tags))]
    fields = "".join(
        f'<label>tag<input name="tag" value="{attr(t)}" placeholder="key=value"></label>'
        for t in tag_inputs
    )

    def value(name: str) -> str:
        return attr(next(iter(form.get(name, [])), ""))

    fields += (
        f'<label>class<input name="class" value="{value("class")}" '
        'placeholder="name or class id"></label>'
        f'<label>since<input name="since" value="{value("since")}" '
        'placeholder="2026-01-31T12:00 or 7d"></label>'
        f'<label>before<input name="before" value="{value("before")}" '
        'placeholder="ISO time or 1h"></label>'
        '<button type="submit">Search</button>'
    )
    body = f'<h1>Manifests</h1><form class="search" method="get" action="/">{fields}</form>'
    if error:
        body += f'<p class="error">{esc(error)}</p>'
    if results is not None:
        body += _results(form, results, class_names)
    return page("search", body, subtitle="read-only")


def _results(form: FormValues, results: ManifestPage, class_names: Mapping[uuid.UUID, str]) -> str:
    if not results.records:
        return '<p class="muted">no manifest matches</p>' + _pager(form, results)
    rows = [
        (
            link(manifest_url(r.id), str(r.id)[:8], **{"class": "mono", "title": str(r.id)}),
            esc(_when(r)),
            esc(class_names.get(r.id) or r.class_id.hex),
            tags_html(r.tags),
        )
        for r in results.records
    ]
    return table(["id", "created", "class", "tags"], rows, cls="results") + _pager(form, results)


def _pager(form: FormValues, results: ManifestPage) -> str:
    def url(number: int) -> str:
        pairs = [(k, v) for k, values in form.items() if k != "page" for v in values if v]
        return "/?" + urlencode([*pairs, ("page", str(number))])

    parts = []
    if results.page > 1:
        parts.append(link(url(results.page - 1), "← newer", rel="prev"))
    parts.append(f'<span class="muted">page {results.page}</span>')
    if results.has_next:
        parts.append(link(url(results.page + 1), "older →", rel="next"))
    return f'<nav class="pager">{"".join(parts)}</nav>'


def manifest_page(
    record: ManifestRecord,
    class_name: str,
    previews: Mapping[str, str],
    *,
    lineage_html: str,
    links: Sequence[tuple[str, str]] = (),
) -> str:
    """A manifest: what it is, its tags, its parts (with downloads), previews, lineage."""
    shown_class = class_name or f"class id {record.class_id.hex}"
    meta = [
        ("id", f'<code class="mono">{esc(record.id)}</code>'),
        ("class", esc(class_name) if class_name else '<span class="muted">not imported</span>'),
        ("class id", f"<code>{esc(record.class_id.hex)}</code>"),
        ("created", esc(_when(record))),
        ("unpacker", esc(record.unpacker_name)),
        ("tags", tags_html(record.tags) or '<span class="muted">none</span>'),
    ]
    if links:
        meta.append(("Dagster", " · ".join(link(url, label) for label, url in links)))
    body = f"<h1>{esc(shown_class)}</h1>"
    body += '<dl class="meta">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in meta)
    body += "</dl><h2>Parts</h2>"
    rows = [
        (
            f"<code>{esc(c.content_key)}</code>",
            esc(c.content_type) + (f" ({esc(c.content_encoding)})" if c.content_encoding else ""),
            esc(human_bytes(c.content_size)),
            f'<code title="{attr(c.content_hash)}">{esc(c.content_hash_algorithm)}:'
            f"{esc(c.content_hash[:12])}…</code>",
            esc(c.storage_name),
            esc(c.serializer_name),
            link(part_download_url(record.id, c.content_key), "download"),
        )
        for c in record.contents
    ]
    headers = ["key", "content type", "size", "hash", "storage", "serializer", ""]
    body += table(headers, rows, cls="parts")
    for content in record.contents:
        preview = previews.get(content.content_key)
        if preview is not None:
            body += (
                f'<section class="preview"><h2>Preview: <code>{esc(content.content_key)}'
                f"</code></h2>{preview}</section>"
            )
    body += f'<section class="lineage"><h2>Lineage</h2>{lineage_html}</section>'
    return page(shown_class, body, subtitle=str(record.id))


def message_page(title: str, message: str) -> str:
    """A page that says what went wrong (404, 400, 502)."""
    body = f"<h1>{esc(title)}</h1><p>{esc(message)}</p><p>{link('/', 'back to the search')}</p>"
    return page(title, body)
