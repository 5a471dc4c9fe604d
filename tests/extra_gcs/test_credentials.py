"""Credentials of GCSStorage: that a token is sent but never shows in reprs, locators,
object metadata, logs or error messages; options; `gs://` storage URLs.

The emulator accepts any request, so the proxy plays a GCS that refuses the token (403)
and one that echoes it back in its error message.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable

import pytest

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorageError
from lakery.config.storage_url import storage_from_url
from lakery.extra.gcs import GCSStorage
from tests.extra_aws.conftest import FaultProxy

SECRET_TOKEN = "ya29.lakery-test-token-that-must-never-be-shown-8c1f"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeToken:
    """Stands in for a ``gcloud.aio.auth.Token`` (an access token from any source)."""

    async def get(self) -> str:
        return SECRET_TOKEN

    async def close(self) -> None:
        pass


async def test_the_token_is_sent_and_never_shown(
    make_storage: Callable[..., GCSStorage],
    fault_proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, gcloud-aio's and aiohttp's included
    storage = make_storage(proxy=fault_proxy, token=FakeToken(), anonymous=False)
    locator = await storage.put_value([b"abc"], size=3, sha256=sha(b"abc"), tags={"k": "v"})
    await storage.put_value([b"abc"], size=3, sha256=sha(b"abc"), tags={})  # reused
    sent = {r.headers.get("authorization") for r in fault_proxy.requests}
    assert sent == {f"Bearer {SECRET_TOKEN}"}
    reader = await storage.get_stream(locator)
    assert b"".join([bytes(c) async for c in reader]) == b"abc"
    metadata = str(await _metadata(storage, locator["key"]))
    fault_proxy.fail(1, status=403, message="Permission denied", method="GET")
    with pytest.raises(AccessDeniedError) as denied:
        await storage.get_value(locator)
    fault_proxy.fail(
        1, status=400, message=f"bad header Authorization: Bearer {SECRET_TOKEN}", method="GET"
    )
    with pytest.raises(StorageError) as echoed:
        await storage.get_stream(locator)
    shown = [
        repr(storage),
        str(locator),
        str(storage.uri(locator)),
        metadata,
        str(denied.value),
        repr(denied.value),
        str(echoed.value),
        caplog.text,
    ]
    for text in shown:
        assert SECRET_TOKEN not in text
    assert "access denied" in str(denied.value) and denied.value.__cause__ is None
    assert echoed.value.__cause__ is None


async def _metadata(storage: GCSStorage, key: str) -> dict[str, object]:
    from gcloud.aio.storage import Storage as Client

    async with Client(api_root=storage.endpoint) as client:
        return await client.download_metadata(storage.bucket, key)


async def test_the_emulator_variable_makes_requests_anonymous(
    gcs_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint.removeprefix("http://"))
    storage = GCSStorage(bucket)
    assert storage.endpoint == gcs_endpoint and storage.anonymous
    await storage.put_value([b"env"], size=3, sha256=sha(b"env"), tags={})
    await storage.close()
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    real = GCSStorage(bucket)
    assert real.endpoint == "https://storage.googleapis.com" and not real.anonymous


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="bucket name"):
        GCSStorage("Bad_Name")
    with pytest.raises(ConfigurationError, match="prefix"):
        GCSStorage("good", prefix="/abs")
    with pytest.raises(ConfigurationError, match="256 KiB"):
        GCSStorage("good", chunk_size=300 * 1024)
    with pytest.raises(ConfigurationError, match="without credentials"):
        GCSStorage("good", endpoint="https://user:secret@example.com")


async def test_pickled_storage_works(make_storage: Callable[..., GCSStorage]) -> None:
    storage = make_storage(prefix="p")
    locator = await storage.put_value([b"pickled"], size=7, sha256=sha(b"pickled"), tags={})
    copy = pickle.loads(pickle.dumps(storage))
    assert bytes(await copy.get_value(locator)) == b"pickled"
    await copy.close()


async def test_gs_storage_url(
    gcs_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    storage = storage_from_url(f"gs://{bucket}/team/lakery")
    assert isinstance(storage, GCSStorage)
    assert (storage.bucket, storage.prefix) == (bucket, "team/lakery")
    locator = await storage.put_value([b"url"], size=3, sha256=sha(b"url"), tags={})
    assert locator["key"].startswith("team/lakery/sha256/")
    assert storage.uri(locator) == f"gs://{bucket}/{locator['key']}"
    await storage.close()
    assert GCSStorage.from_url(f"gs://{bucket}").prefix == ""
    with pytest.raises(ConfigurationError, match="gs://bucket"):
        storage_from_url("gs://user@bucket/x")
    with pytest.raises(ConfigurationError, match="gs://bucket"):
        storage_from_url("gs:///no-bucket")
