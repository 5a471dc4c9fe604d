"""Credentials never show up in locators, records, reprs, pickles, logs or error messages."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import Registry
from lakery import load_one
from lakery import save_one
from lakery.builtin import StorableValue
from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.extra.aws import S3Storage
from tests.extra_aws.conftest import ACCESS_KEY_ID
from tests.extra_aws.conftest import REGION
from tests.extra_aws.conftest import SECRET_ACCESS_KEY
from tests.extra_aws.conftest import FaultProxy

OTHER_KEY_ID = "explicitsessionkey93"
OTHER_SECRET = "explicit-session-secret-c41d"
SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, OTHER_KEY_ID, OTHER_SECRET)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def error_text(error: LakeryError) -> str:
    return " ".join([str(error), repr(error), repr(vars(error)), repr(error.args)])


async def test_nothing_written_or_logged_holds_credentials(
    make_storage: Callable[..., S3Storage],
    engine: AsyncEngine,
    new_session: async_sessionmaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = make_storage(prefix="clean")
    registry = Registry(modules=["lakery.builtin"], storages=[storage])
    with caplog.at_level(logging.DEBUG):
        async with new_session() as session:
            record = await save_one(
                StorableValue(b"payload", storage=S3Storage, tags={"kind": "clean"}),
                session=session,
                registry=registry,
            )
        async with new_session() as session:
            loaded = await load_one(record, StorableValue, session=session, registry=registry)
        assert loaded.value == b"payload"
        with pytest.raises(NotFoundError) as missing:
            await storage.get_value({"bucket": storage.bucket, "key": f"sha256/00/{'0' * 64}"})

    async with engine.connect() as connection:
        rows = [
            json.dumps([str(v) for v in row], default=str)
            for table in ("lakery_manifests", "lakery_contents")
            for row in (await connection.execute(text(f"SELECT * FROM {table}"))).all()
        ]
    assert len(rows) == 2
    for row in rows:
        assert_clean(row)
    locator = record.contents[0].storage_data
    assert set(locator) == {"bucket", "key"}
    assert_clean(json.dumps(locator))
    assert_clean(repr(storage) + str(storage.uri(locator)))
    assert_clean(error_text(missing.value))

    # lakery's own log records name neither the key id nor the secret; no log record at all
    # (botocore's DEBUG logs included) contains the secret.
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET_ACCESS_KEY not in everything
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("lakery"))
    assert_clean(ours)


async def test_server_echoing_credentials_is_redacted(
    make_storage: Callable[..., S3Storage],
    fault_proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chatty server that quotes the credentials back does not put them in our errors."""
    storage = make_storage(endpoint_url=fault_proxy.url, max_attempts=2)
    chatty = f"Denied for {ACCESS_KEY_ID} signed with {SECRET_ACCESS_KEY}"
    fault_proxy.fail(1, status=503, code="SlowDown", message=chatty)
    fault_proxy.fail(1, status=403, code="AccessDenied", message=chatty)
    with caplog.at_level(logging.DEBUG, logger="lakery"):
        with pytest.raises(AccessDeniedError) as caught:
            await storage.put_value([b"x"], size=1, sha256=sha(b"x"), tags={})
    assert "***" in str(caught.value)
    assert_clean(error_text(caught.value))
    assert_clean("\n".join(r.getMessage() for r in caplog.records))


def test_endpoint_url_with_credentials_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must not contain credentials") as caught:
        S3Storage("bucket", endpoint_url=f"http://{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}@host:9000")
    assert_clean(error_text(caught.value))


async def test_explicit_session(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiobotocore.session import AioSession

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    session = AioSession()
    session.set_credentials(OTHER_KEY_ID, OTHER_SECRET)
    storage = S3Storage(
        bucket, endpoint_url=moto_endpoint, region=REGION, addressing_style="path", session=session
    )
    async with storage:
        locator = await storage.put_value(
            [b"via session"], size=11, sha256=sha(b"via session"), tags={}
        )
        assert bytes(await storage.get_value(locator)) == b"via session"
        assert_clean(json.dumps(locator) + repr(storage))


async def test_pickled_storage_holds_no_credentials(make_storage: Callable[..., S3Storage]) -> None:
    storage = make_storage(prefix="pickled")
    data = pickle.dumps(storage)
    for secret in SECRETS:
        assert secret.encode() not in data
    copy = pickle.loads(data)
    assert (copy.bucket, copy.prefix, copy.name) == (storage.bucket, "pickled", storage.name)


async def test_explicit_session_secret_not_in_repr_of_internals(
    make_storage: Callable[..., S3Storage],
) -> None:
    storage = make_storage()
    await storage.put_value([b""], size=0, sha256=sha(b""), tags={})
    client: Any = await storage._calls.clients.get()
    assert client.secrets  # kept only to redact messages
    assert_clean(repr(client) + repr(storage) + repr(vars(storage)))
