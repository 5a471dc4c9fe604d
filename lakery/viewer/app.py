"""The viewer's Starlette application: GET routes only, nothing writes.

- ``/``: the search form and one page of results (``tag=key=value`` repeatable,
  ``class``, ``since``, ``before``, ``page``).
- ``/manifests/{id}``: one manifest, its parts, previews and lineage (404 if none).
- ``/manifests/{id}/parts/{key}/download``: the part's bytes, checked against its record
  while they stream (``?inline=1`` shows PNG and JPEG images in the page).
"""

from __future__ import annotations

import argparse
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response
from starlette.responses import StreamingResponse
from starlette.routing import Route

from lakery.cli.options import parse_tag
from lakery.cli.options import parse_time
from lakery.common.exceptions import LakeryError
from lakery.core.records import ContentRecord
from lakery.viewer.html import SECURITY_HEADERS
from lakery.viewer.html import esc
from lakery.viewer.lineage import lineage_html
from lakery.viewer.links import dagster_links
from lakery.viewer.pages import manifest_page
from lakery.viewer.pages import message_page
from lakery.viewer.pages import search_page
from lakery.viewer.previews import IMAGE_TYPES
from lakery.viewer.previews import PREVIEW_MAX_BYTES
from lakery.viewer.previews import base_type
from lakery.viewer.previews import can_preview
from lakery.viewer.previews import render_preview
from lakery.viewer.store import CorruptPart
from lakery.viewer.store import SearchQuery
from lakery.viewer.store import ViewerStore

__all__ = ["create_app"]

logger = logging.getLogger("lakery.viewer")

_SAFE_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")
MAX_PAGE = 10_000


class BadQuery(ValueError):
    """The search form has a value that cannot be used."""


def create_app(
    store: ViewerStore, *, dagster_url: str | None = None, page_size: int = 25
) -> Starlette:
    """The read-only viewer of the store's records and bytes.

    Args:
        store: the records database and the registry whose storages hold the bytes.
        dagster_url: the Dagster UI (e.g. ``http://127.0.0.1:3000``) that manifests saved
            by `lakery_dagster` link to; None for no links.
        page_size: manifests per search page.
    """

    async def search(request: Request) -> Response:
        form = {key: request.query_params.getlist(key) for key in request.query_params}
        try:
            query = _query(store, form, page_size)
        except BadQuery as exc:
            return _html(search_page(form, None, {}, error=str(exc)), 400)
        results = await store.search(query)
        names = {r.id: store.class_name(r) for r in results.records}
        note = ""
        if query.class_ids == ():
            note = (
                f"no storable class named {_one(form, 'class')!r} is imported here: give "
                "its class id, or start lakery serve with --registry-module MODULE"
            )
        return _html(search_page(form, results, names, error=note))

    async def manifest(request: Request) -> Response:
        record = await _record(store, request.path_params["manifest_id"])
        previews = {}
        for row in record.contents:
            if can_preview(row):
                previews[row.content_key] = await _preview(store, row)
        html = manifest_page(
            record,
            store.class_name(record),
            previews,
            lineage_html=await lineage_html(store, record),
            links=dagster_links(record.tags, dagster_url),
        )
        return _html(html)

    async def download(request: Request) -> Response:
        record = await _record(store, request.path_params["manifest_id"])
        key = request.path_params["content_key"]
        row = next((c for c in record.contents if c.content_key == key), None)
        if row is None:
            raise HTTPException(404, f"manifest {record.id} has no part {key!r}")
        inline = request.query_params.get("inline") == "1"
        if inline and base_type(row.content_type) not in IMAGE_TYPES:
            raise HTTPException(404, "only PNG and JPEG parts are shown inline")
        chunks = store.stream_part(row)
        try:
            first = await anext(chunks, b"")
        except CorruptPart as exc:
            await chunks.aclose()
            return _html(message_page("Corrupt content", str(exc)), 502)
        except (LakeryError, OSError) as exc:
            await chunks.aclose()
            logger.error("cannot read part %r of manifest %s: %s", key, record.id, exc)
            return _html(message_page("Cannot read the content", _reason(exc)), 502)
        return StreamingResponse(
            _prepend(first, chunks),
            media_type=_media_type(row, inline),
            headers={
                **SECURITY_HEADERS,
                "Content-Length": str(row.content_size),
                "Content-Disposition": _disposition(row, inline),
                "Cache-Control": "no-store",
            },
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = "Not found" if exc.status_code == 404 else f"Error {exc.status_code}"
        return _html(message_page(title, str(exc.detail)), exc.status_code)

    routes = [
        Route("/", search, methods=["GET"]),
        Route("/manifests/{manifest_id}", manifest, methods=["GET"]),
        Route(
            "/manifests/{manifest_id}/parts/{content_key:path}/download",
            download,
            methods=["GET"],
        ),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


async def _record(store: ViewerStore, text: str) -> Any:
    try:
        manifest_id = uuid.UUID(text)
    except ValueError:
        raise HTTPException(404, f"{text!r} is not a manifest id") from None
    record = await store.manifest(manifest_id)
    if record is None:
        raise HTTPException(404, f"no manifest {manifest_id}")
    return record


def _query(store: ViewerStore, form: dict[str, list[str]], page_size: int) -> SearchQuery:
    tags: dict[str, str] = {}
    for text in form.get("tag", []):
        if text.strip():
            try:
                key, value = parse_tag(text.strip())
            except argparse.ArgumentTypeError as exc:
                raise BadQuery(f"tag: {exc}") from None
            tags[key] = value
    class_text = _one(form, "class")
    class_ids = store.class_ids_named(class_text) if class_text else None
    times = {}
    for name in ("since", "before"):
        text = _one(form, name)
        if text:
            try:
                times[name] = parse_time(text)
            except argparse.ArgumentTypeError as exc:
                raise BadQuery(f"{name}: {exc}") from None
    page_text = _one(form, "page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadQuery(f"page must be a number from 1 to {MAX_PAGE}, got {page_text!r}")
    return SearchQuery(
        tags=tags, class_ids=class_ids, page=int(page_text), page_size=page_size, **times
    )


def _one(form: dict[str, list[str]], name: str) -> str:
    return next((v.strip() for v in form.get(name, []) if v.strip()), "")


async def _preview(store: ViewerStore, row: ContentRecord) -> str:
    if base_type(row.content_type) in IMAGE_TYPES:
        return render_preview(row, None)
    if row.content_size > PREVIEW_MAX_BYTES:
        return '<p class="muted">too large to preview here; download it</p>'
    try:
        data = await store.read_part(row)
    except CorruptPart:
        return '<p class="error">not shown: the stored bytes do not match the record</p>'
    except (LakeryError, OSError) as exc:
        return f'<p class="error">cannot read it: {esc(_reason(exc))}</p>'
    return render_preview(row, data)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _media_type(row: ContentRecord, inline: bool) -> str:
    if inline:
        return base_type(row.content_type)
    kind = base_type(row.content_type)
    return kind if _SAFE_TYPE.match(kind) else "application/octet-stream"


def _disposition(row: ContentRecord, inline: bool) -> str:
    name = re.sub(r"[^\w.-]+", "_", row.content_key).strip("._") or "part"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{name}\"; filename*=UTF-8''{quote(row.content_key, safe='')}"
