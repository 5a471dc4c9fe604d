"""Links from Dagster's materialization panel to the pages of a running ``lakery serve``."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError

__all__ = ["check_viewer_url", "collection_url", "inputs_markdown", "manifest_url"]


def check_viewer_url(url: str) -> str:
    """`url` without a trailing slash, or "" for none.

    Raises:
        ConfigurationError: not an http(s) URL with a host.
    """
    url = url.strip().rstrip("/")
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
        msg = (
            f"viewer_url {url!r} is not the base URL of a lakery viewer; give e.g. "
            "'http://127.0.0.1:8321' (where `lakery serve` listens)"
        )
        raise ConfigurationError(msg)
    return url


def manifest_url(viewer_url: str, manifest_id: str) -> str:
    """The viewer's page of one manifest."""
    return f"{viewer_url}/manifests/{quote(manifest_id, safe='')}"


def collection_url(viewer_url: str, collection_id: str) -> str:
    """The viewer's search for the manifests of one saved collection."""
    return f"{viewer_url}/?{urlencode({'tag': f'lakery/collection_id={collection_id}'})}"


def inputs_markdown(viewer_url: str, inputs: Mapping[str, Mapping[str, str]]) -> str:
    """A Markdown table of the manifests a step loaded, each linking to its page."""
    lines = ["| input | item | manifest |", "| --- | --- | --- |"]
    for name, items in inputs.items():
        for label, manifest_id in items.items():
            link = f"[{manifest_id}]({manifest_url(viewer_url, manifest_id)})"
            lines.append(f"| {_cell(name)} | {_cell(label) or '—'} | {link} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
