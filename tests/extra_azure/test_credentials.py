"""Credentials of AzureBlobStorage: where they come from, and that the account key never
shows in reprs, locators, blob metadata, logs or error messages; `az://` storage URLs."""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable

import pytest

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import ConfigurationError
from lakery.config.storage_url import storage_from_url
from lakery.extra.azure import AzureBlobStorage
from lakery.testing.azurite import azurite_connection_string
from tests.extra_azure.conftest import ACCOUNT
from tests.extra_azure.conftest import ACCOUNT_KEY

WRONG_KEY = "d3Jvbmcta2V5LXRoYXQtbXVzdC1uZXZlci1iZS1zaG93bi0xMjM0NTY3ODkw"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_the_key_never_shows(
    make_storage: Callable[..., AzureBlobStorage],
    connection_string: str,
    azurite_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the Azure SDK's included
    storage = make_storage()
    locator = await storage.put_value([b"abc"], size=3, sha256=sha(b"abc"), tags={"k": "v"})
    await storage.put_value([b"abc"], size=3, sha256=sha(b"abc"), tags={})  # reused
    from azure.storage.blob.aio import BlobClient

    async with BlobClient.from_connection_string(
        connection_string, storage.container, locator["key"]
    ) as blob:
        properties = await blob.get_blob_properties()
    wrong = make_storage(
        connection_string=azurite_connection_string(azurite_endpoint, ACCOUNT, WRONG_KEY)
    )
    with pytest.raises(AccessDeniedError) as denied:
        await wrong.get_value(locator)
    shown = [
        repr(storage),
        repr(wrong),
        str(locator),
        str(storage.uri(locator)),
        str(dict(properties.metadata)),
        str(denied.value),
        repr(denied.value),
        str(denied.value.__cause__),
        caplog.text,
    ]
    for text in shown:
        assert ACCOUNT_KEY not in text and WRONG_KEY not in text
        assert "AccountKey" not in text
    assert "access denied" in str(denied.value) and denied.value.__cause__ is None


def test_connection_string_from_the_environment(
    connection_string: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    storage = AzureBlobStorage("some-container")
    assert f"account={ACCOUNT!r}" in repr(storage)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(ConfigurationError, match="needs an account"):
        AzureBlobStorage("some-container")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "myaccount")
    assert "account='myaccount'" in repr(AzureBlobStorage("some-container"))


def test_bad_connection_string_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as error:
        AzureBlobStorage("c-1x", connection_string=f"AccountKey={ACCOUNT_KEY}")
    assert ACCOUNT_KEY not in str(error.value)


def test_a_sas_token_in_the_account_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="credential="):
        AzureBlobStorage("c-1x", account_url="https://a.blob.core.windows.net/?sig=secret")


def test_options_are_checked(connection_string: str) -> None:
    with pytest.raises(ConfigurationError, match="container name"):
        AzureBlobStorage("Bad_Name", connection_string=connection_string)
    with pytest.raises(ConfigurationError, match="prefix"):
        AzureBlobStorage("good", prefix="/abs", connection_string=connection_string)
    with pytest.raises(ConfigurationError, match="block_size"):
        AzureBlobStorage("good", block_size=1, connection_string=connection_string)


async def test_pickled_storage_works(
    make_storage: Callable[..., AzureBlobStorage],
) -> None:
    storage = make_storage(prefix="p")
    locator = await storage.put_value([b"pickled"], size=7, sha256=sha(b"pickled"), tags={})
    copy = pickle.loads(pickle.dumps(storage))
    assert bytes(await copy.get_value(locator)) == b"pickled"
    await copy.close()


async def test_az_storage_url(
    connection_string: str, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    storage = storage_from_url(f"az://{container}/team/lakery")
    assert isinstance(storage, AzureBlobStorage)
    assert (storage.container, storage.prefix) == (container, "team/lakery")
    locator = await storage.put_value([b"url"], size=3, sha256=sha(b"url"), tags={})
    assert locator["key"].startswith("team/lakery/sha256/")
    await storage.close()
    assert AzureBlobStorage.from_url(f"az://{container}").prefix == ""
    with pytest.raises(ConfigurationError, match="az://container"):
        storage_from_url("az://account@container/x")
    with pytest.raises(ConfigurationError, match="az://container"):
        storage_from_url("az:///no-container")
