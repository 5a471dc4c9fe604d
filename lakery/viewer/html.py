"""HTML building blocks: escaping, the page layout and its CSS, tables, links.

Every value from the store (tags, keys, class names, content) goes through `esc` (or
`attr` inside attribute values) before it reaches a page; the pages run no JavaScript and
are served with a Content-Security-Policy that forbids scripts (`SECURITY_HEADERS`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from collections.abc import Sequence
from urllib.parse import quote
from urllib.parse import urlencode

__all__ = [
    "SECURITY_HEADERS",
    "attr",
    "esc",
    "human_bytes",
    "link",
    "manifest_url",
    "page",
    "part_download_url",
    "table",
]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Sent with every response: no scripts at all, nothing loaded from elsewhere."""

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
header{background:#1f2a3a;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;
align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
header span{color:#aab4c3;font-size:.85rem}
main{padding:1rem 1.5rem;max-width:1200px}
h1{font-size:1.35rem;margin:.4rem 0 .8rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
a{color:#1b5fc1}
table{border-collapse:collapse;background:#fff;width:100%;margin:.3rem 0 1rem}
th,td{border:1px solid #dde1e7;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:.9rem}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#fff;border:1px solid #dde1e7;padding:.7rem;overflow:auto;max-height:32rem}
form.search{background:#fff;border:1px solid #dde1e7;padding:.8rem;display:flex;
flex-wrap:wrap;gap:.6rem 1rem;align-items:end}
form.search label{display:flex;flex-direction:column;font-size:.8rem;color:#4a5567}
form.search input{font:inherit;padding:.25rem .4rem;border:1px solid #c5ccd6;border-radius:3px}
button{font:inherit;padding:.3rem .9rem;background:#1b5fc1;color:#fff;border:0;border-radius:3px}
.tag{display:inline-block;background:#e7eefb;border-radius:3px;padding:0 .35rem;
margin:.1rem .2rem .1rem 0;font-size:.82rem}
.muted{color:#6b7586}.error{color:#a3192b}
.notice{background:#fff8e1;border:1px solid #f0d98c;padding:.5rem .8rem}
.pager{display:flex;gap:1rem;margin:.5rem 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dl.meta dt{color:#4a5567}dl.meta dd{margin:0}
.preview img{max-width:100%;border:1px solid #dde1e7;background:#fff}
svg{background:#fff;border:1px solid #dde1e7;max-width:100%;height:auto}
"""


def esc(value: object) -> str:
    """`value` as HTML text (quotes escaped too, so it is also safe in attributes)."""
    return html.escape(str(value), quote=True)


def attr(value: object) -> str:
    """`value` for a double-quoted attribute."""
    return esc(value)


def link(href: str, text: object, **attributes: str) -> str:
    """An ``<a>`` with escaped text and href."""
    extra = "".join(f' {name}="{attr(value)}"' for name, value in attributes.items())
    return f'<a href="{attr(href)}"{extra}>{esc(text)}</a>'


def manifest_url(manifest_id: object) -> str:
    """The viewer's page of a manifest."""
    return f"/manifests/{quote(str(manifest_id), safe='')}"


def part_download_url(manifest_id: object, content_key: str, *, inline: bool = False) -> str:
    """The verified download of one part (``inline``: for an ``<img>``)."""
    url = f"{manifest_url(manifest_id)}/parts/{quote(content_key, safe='')}/download"
    return url + ("?" + urlencode({"inline": "1"}) if inline else "")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """A table; `headers` are escaped, cells are HTML already (escape them first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    class_attr = f' class="{attr(cls)}"' if cls else ""
    return f"<table{class_attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, subtitle: str = "") -> str:
    """A whole HTML document: the header bar, then `body` (HTML already)."""
    note = f"<span>{esc(subtitle)}</span>" if subtitle else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · lakery</title><style>{CSS}</style></head><body>"
        f'<header><a href="/">lakery viewer</a>{note}</header>'
        f"<main>{body}</main></body></html>\n"
    )


def human_bytes(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
