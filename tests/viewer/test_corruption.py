"""Downloads and previews never serve bytes that differ from the record."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from lakery.viewer import CorruptPart
from tests.viewer.conftest import Viewer

LARGE = bytes(range(256)) * (3 * 4096 + 7)


def blob_of(viewer: Viewer, name: str) -> Path:
    """The file that holds the (one) part of a demo manifest."""
    page = viewer.client.get(f"/manifests/{viewer.demo.ids[name]}").text
    (digest,) = re.findall(r'<code title="([0-9a-f]{64})">', page)
    return viewer.files / digest[:2] / digest


def corrupt(path: Path, *, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_a_corrupt_small_part_is_refused_and_logged(
    viewer: Viewer, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt(blob_of(viewer, "summary"), at=3)
    summary = viewer.demo.ids["summary"]
    with caplog.at_level(logging.ERROR, logger="lakery.viewer"):
        response = viewer.client.get(f"/manifests/{summary}/parts/value/download")
    assert response.status_code == 502
    assert "Corrupt content" in response.text and "sha256" in response.text
    assert "mean" not in response.text  # none of the stored bytes
    assert any("refusing corrupt content" in r.getMessage() for r in caplog.records)
    page = viewer.client.get(f"/manifests/{summary}").text
    assert "not shown: the stored bytes do not match the record" in page
    assert "0.25" not in page


def test_a_truncated_part_is_refused(viewer: Viewer) -> None:
    path = blob_of(viewer, "summary")
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1])
    response = viewer.client.get(f"/manifests/{viewer.demo.ids['summary']}/parts/value/download")
    assert response.status_code == 502
    assert "bytes read" in response.text


def test_a_missing_blob_is_a_clear_error(viewer: Viewer) -> None:
    blob_of(viewer, "summary").unlink()
    response = viewer.client.get(f"/manifests/{viewer.demo.ids['summary']}/parts/value/download")
    assert response.status_code == 502
    assert "Cannot read the content" in response.text


def test_corruption_found_mid_stream_aborts_the_download(
    viewer: Viewer, caplog: pytest.LogCaptureFixture
) -> None:
    """The hash is known only at the end: the last chunk is held back, and the stream
    breaks off instead of completing a wrong download."""
    corrupt(blob_of(viewer, "large"), at=len(LARGE) - 10)
    url = f"/manifests/{viewer.demo.ids['large']}/parts/value/download"
    received = b""
    with caplog.at_level(logging.ERROR, logger="lakery.viewer"), pytest.raises(CorruptPart):
        with viewer.client.stream("GET", url) as response:
            assert response.status_code == 200  # the headers went out before the end
            assert response.headers["content-length"] == str(len(LARGE))
            for chunk in response.iter_bytes():
                received += chunk
    assert len(received) < len(LARGE)
    assert LARGE.startswith(received)  # what was sent was right, and it is incomplete
    assert any("refusing corrupt content" in r.getMessage() for r in caplog.records)
