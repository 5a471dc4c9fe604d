"""The viewer's pages through Starlette's TestClient, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import urlencode

import numpy as np

from tests.viewer.conftest import DAGSTER_URL
from tests.viewer.conftest import Viewer
from tests.viewer.demo import HOSTILE

ID_LINK = re.compile(r'href="/manifests/([0-9a-f-]{36})"')


def listed(page: str) -> list[uuid.UUID]:
    """The manifest ids a search page lists, in order."""
    results = page.split('class="results"', 1)[1] if 'class="results"' in page else ""
    return [uuid.UUID(i) for i in ID_LINK.findall(results)]


def all_pages(viewer: Viewer, url: str) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    while url:
        response = viewer.client.get(url)
        assert response.status_code == 200
        found += listed(response.text)
        match = re.search(r'<a href="([^"]+)" rel="next">', response.text)
        url = html.unescape(match.group(1)) if match else ""
    return found


def test_search_lists_newest_first_in_pages(viewer: Viewer) -> None:
    ids = viewer.demo.ids
    newest_first = [ids[n] for n in reversed(list(ids))]
    first = viewer.client.get("/")
    assert first.status_code == 200
    assert listed(first.text) == newest_first[:3]  # page_size=3
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    assert all_pages(viewer, "/") == newest_first
    last = viewer.client.get("/?page=3")
    assert listed(last.text) == newest_first[6:]
    assert 'rel="next"' not in last.text and 'rel="prev"' in last.text


def test_search_by_tags(viewer: Viewer) -> None:
    ids = viewer.demo.ids
    found = all_pages(viewer, "/?tag=project%3Dalpha&tag=stage%3Draw")
    assert found == [ids["grid"], ids["raw"]]
    assert all_pages(viewer, "/?tag=project%3Dalpha&tag=&tag=") == [
        ids["summary"],
        ids["table"],
        ids["grid"],
        ids["raw"],
    ]
    assert all_pages(viewer, "/?tag=dagster/asset_key%3Dsales/daily") == [ids["table"]]
    assert all_pages(viewer, "/?tag=project%3Dnone") == []
    assert "no manifest matches" in viewer.client.get("/?tag=project%3Dnone").text


def test_search_by_hostile_tag(viewer: Viewer) -> None:
    url = "/?" + urlencode({"tag": f"note={HOSTILE}"})
    assert all_pages(viewer, url) == [viewer.demo.ids["hostile"]]


def test_search_by_class(viewer: Viewer) -> None:
    ids = viewer.demo.ids
    assert all_pages(viewer, "/?class=Experiment") == [ids["experiment"]]
    assert all_pages(viewer, "/?class=tests.viewer.demo.experiment") == [ids["experiment"]]
    assert all_pages(viewer, "/?class=7e57f1e3e7e57f1e3e7e57f1e3e7e57f") == [ids["experiment"]]
    values = all_pages(viewer, "/?class=StorableValue")
    assert ids["experiment"] not in values and len(values) == len(ids) - 1
    assert all_pages(viewer, "/?class=NoSuchClass") == []
    page = viewer.client.get("/?class=NoSuchClass").text
    assert "no storable class named &#x27;NoSuchClass&#x27; is imported here" in page


def test_search_by_time(viewer: Viewer) -> None:
    ids = viewer.demo.ids
    # created 10h, 9h, ... 3h ago (tests/viewer/demo.py)
    assert all_pages(viewer, "/?since=330m") == [
        ids["large"],
        ids["hostile"],
        ids["experiment"],
    ]
    assert all_pages(viewer, "/?before=510m") == [ids["grid"], ids["raw"]]
    assert all_pages(viewer, "/?since=570m&before=510m") == [ids["grid"]]


def test_bad_search_values_say_what_is_wrong(viewer: Viewer) -> None:
    for query, words in [
        ("since=yesterday", "since: expected an ISO time"),
        ("tag=novalue", "tag: expected KEY=VALUE"),
        ("page=0", "page must be a number"),
        ("page=abc", "page must be a number"),
    ]:
        response = viewer.client.get(f"/?{query}")
        assert response.status_code == 400, query
        assert html.escape(words, quote=True) in response.text, query


def test_manifest_page(viewer: Viewer) -> None:
    table_id = viewer.demo.ids["table"]
    response = viewer.client.get(f"/manifests/{table_id}")
    assert response.status_code == 200
    text = response.text
    assert "lakery.builtin.storables.StorableValue" in text
    assert str(table_id) in text
    assert "project=alpha" in text and "stage=clean" in text
    parts = text.split('class="parts"', 1)[1].split("</table>", 1)[0]
    for cell in ("value", "application/vnd.apache.parquet", "files", "sha256:"):
        assert cell in parts
    assert f'href="/manifests/{table_id}/parts/value/download"' in parts
    # Dagster links
    assert f'href="{DAGSTER_URL}/runs/run-2"' in text
    assert f'href="{DAGSTER_URL}/assets/sales/daily"' in text
    # no lakery.core.lineage in this branch (or the real one): the page still renders
    assert "Lineage" in text
    # nothing can run: no scripts, and a policy that forbids them
    assert "<script" not in text
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_class_id_when_the_class_is_unknown(viewer: Viewer) -> None:
    from tests.viewer import demo

    record_id = viewer.demo.ids["experiment"]
    page = viewer.client.get(f"/manifests/{record_id}").text
    assert "tests.viewer.demo.Experiment" in page
    assert "description" in page and "parameters" in page  # one part per field
    del demo  # the class stays importable; an unknown one shows its id:
    import asyncio

    from sqlalchemy import update
    from sqlalchemy.ext.asyncio import create_async_engine

    from lakery import ManifestRecord

    async def change_class() -> None:
        engine = create_async_engine(viewer.database_url)
        async with engine.begin() as connection:
            await connection.execute(
                update(ManifestRecord)
                .where(ManifestRecord.id == record_id)
                .values(class_id=uuid.UUID("0123456789abcdef0123456789abcdef"))
            )
        await engine.dispose()

    asyncio.run(change_class())
    page = viewer.client.get(f"/manifests/{record_id}").text
    assert "class id 0123456789abcdef0123456789abcdef" in page


def test_unknown_and_malformed_ids_are_404_pages(viewer: Viewer) -> None:
    for path in (
        f"/manifests/{uuid.uuid4()}",
        "/manifests/not-an-id",
        "/manifests/%3Cscript%3E",
        f"/manifests/{uuid.uuid4()}/parts/value/download",
        f"/manifests/{viewer.demo.ids['raw']}/parts/nope/download",
        "/nothing/here",
    ):
        response = viewer.client.get(path)
        assert response.status_code == 404, path
        assert "text/html" in response.headers["content-type"]
        assert "Not found" in response.text
        assert "<script>" not in response.text


def test_nothing_writes(viewer: Viewer) -> None:
    raw = viewer.demo.ids["raw"]
    for path in ("/", f"/manifests/{raw}", f"/manifests/{raw}/parts/value/download"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert viewer.client.request(method, path).status_code == 405, (method, path)


def preview(viewer: Viewer, name: str, key: str = "value") -> str:
    text = viewer.client.get(f"/manifests/{viewer.demo.ids[name]}").text
    marker = f"Preview: <code>{key}</code>"
    assert marker in text, f"no preview of {key!r}"
    return text.split(marker, 1)[1].split("</section>", 1)[0]


def test_preview_of_json(viewer: Viewer) -> None:
    shown = preview(viewer, "summary")
    assert "<pre>{\n  &quot;mean&quot;: 0.25," in shown  # pretty-printed, escaped


def test_preview_of_a_1d_array(viewer: Viewer) -> None:
    shown = preview(viewer, "raw")
    assert "(400,)" in shown and "float64" in shown
    values = np.sin(np.linspace(0, 12, 400))
    assert repr(values.min().item()) in shown and repr(values.max().item()) in shown
    assert "<svg" in shown and "<polyline" in shown


def test_preview_of_a_2d_array(viewer: Viewer) -> None:
    shown = preview(viewer, "grid")
    assert "(12, 16)" in shown and "float64" in shown
    assert shown.count("<rect") == 12 * 16


def test_preview_of_a_table(viewer: Viewer) -> None:
    shown = preview(viewer, "table")
    assert "schema" in shown and "sample" in shown and "int64" in shown and "double" in shown
    assert "30 rows, 2 columns; first 20 shown" in shown
    assert shown.count("<tr>") == 1 + 2 + 1 + 20  # schema: header, 2 rows; rows: header, 20


def test_preview_of_an_image(viewer: Viewer) -> None:
    from tests.viewer.demo import png_bytes

    shown = preview(viewer, "image")
    image_id = viewer.demo.ids["image"]
    src = f"/manifests/{image_id}/parts/value/download?inline=1"
    assert f'<img src="{src}"' in shown
    response = viewer.client.get(src)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.content == png_bytes()
    # only images are served inline
    other = viewer.client.get(
        f"/manifests/{viewer.demo.ids['hostile']}/parts/value/download?inline=1"
    )
    assert other.status_code == 404


def test_preview_of_text_is_escaped(viewer: Viewer) -> None:
    shown = preview(viewer, "hostile")
    assert html.escape(HOSTILE, quote=True) in shown
    assert "line two" in shown


def test_hostile_tags_and_content_are_escaped(viewer: Viewer) -> None:
    hostile = viewer.demo.ids["hostile"]
    pages = [
        viewer.client.get(f"/manifests/{hostile}").text,
        viewer.client.get("/?tag=project%3Dgamma").text,
        viewer.client.get(
            "/?" + __import__("urllib.parse").parse.urlencode({"tag": f"note={HOSTILE}"})
        ).text,
        viewer.client.get(
            "/?" + __import__("urllib.parse").parse.urlencode({"class": HOSTILE})
        ).text,
        viewer.client.get(
            "/?" + __import__("urllib.parse").parse.urlencode({"since": HOSTILE})
        ).text,
        viewer.client.get(f"/manifests/{hostile}/parts/{HOSTILE}/download").text,
    ]
    for text in pages:
        assert "<script>" not in text
        assert "<img src=x" not in text
        assert "onerror=alert(1)>" not in text.replace("onerror=alert(1)&gt;", "")
    assert html.escape(HOSTILE, quote=True) in pages[0]


def test_no_preview_for_bytes_but_a_download(viewer: Viewer) -> None:
    large = viewer.demo.ids["large"]
    text = viewer.client.get(f"/manifests/{large}").text
    assert "Preview:" not in text
    assert f"/manifests/{large}/parts/value/download" in text


def test_download_streams_the_verified_bytes(viewer: Viewer) -> None:
    large = viewer.demo.ids["large"]
    response = viewer.client.get(f"/manifests/{large}/parts/value/download")
    assert response.status_code == 200
    assert response.content == bytes(range(256)) * (3 * 4096 + 7)
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    table = viewer.client.get(f"/manifests/{viewer.demo.ids['table']}/parts/value/download")
    assert table.content.startswith(b"PAR1")
