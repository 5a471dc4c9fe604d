"""Reading objects for `S3Storage`: whole bodies into one buffer, and streamed reads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import anyio
from botocore.exceptions import ClientError
from botocore.exceptions import IncompleteReadError

from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import Locator
from lakery.extra.aws.calls import S3Calls
from lakery.extra.aws.client import LoopClient
from lakery.extra.aws.retry import describe
from lakery.extra.aws.retry import error_code
from lakery.extra.aws.retry import is_retryable
from lakery.extra.aws.retry import translate_error

__all__ = ["ObjectReader", "open_object", "read_body", "read_object"]

logger = logging.getLogger("lakery.extra.aws")

_READ_STEP = 1 << 20


async def read_object(
    calls: S3Calls, locator: Locator, bucket: str, key: str, **params: Any
) -> bytearray:
    """The whole object at `key` (`params`: e.g. a ``Range``), in one GetObject."""

    async def attempt(client: LoopClient) -> bytearray:
        response = await client.client.get_object(Bucket=bucket, Key=key, **params)
        return await read_body(response)

    return await calls.run("GetObject", attempt, bucket=bucket, key=key, locator=locator)


async def open_object(
    calls: S3Calls, locator: Locator, bucket: str, key: str, chunk_size: int
) -> ObjectReader:
    """A streamed read of the object at `key`, after a HeadObject (so a missing object
    raises `NotFoundError` now, and nothing more is requested until it is iterated)."""
    head = await calls.call("HeadObject", key, bucket=bucket, locator=locator)
    size = int(head["ContentLength"])
    return ObjectReader(calls, locator, bucket, key, size, head.get("ETag"), chunk_size)


async def read_body(response: Mapping[str, Any]) -> bytearray:
    """The whole body of a GetObject response, read into one preallocated buffer."""
    length = int(response["ContentLength"])
    data = bytearray(length)
    view = memoryview(data)
    read = 0
    async with response["Body"] as body:
        while read < length:
            n = await body.readinto(view[read : read + _READ_STEP])
            if not n:
                raise IncompleteReadError(actual_bytes=read, expected_bytes=length)
            read += n
        if await body.read():  # at the end: also lets botocore check a response checksum
            raise IncompleteReadError(actual_bytes=read + 1, expected_bytes=length)
    return data


class ObjectReader:
    """Reads an object with one streamed GET, in chunks of at most `chunk_size` bytes
    (what has arrived, as aiohttp hands it over: no copy into buffers of a fixed size).

    `open_object` has checked with a HEAD that the object exists and how long it is;
    nothing else is requested, and no connection is taken, before the first `__anext__`.
    The GET carries the ETag the HEAD saw (``If-Match``). If the transfer breaks off (a
    reset connection, a truncated body), the rest is requested with a ranged GET from the
    first byte not yet read (``Range: bytes=<offset>-``, with the same ``If-Match``),
    after the retry policy's backoff; breaks in a row with no byte received in between
    count against `max_attempts`. An object replaced in the meantime fails the
    ``If-Match``, which raises `StorageError` rather than mixing the bytes of two objects.
    Exhausting the reader, `aclose()`, an error or a cancellation closes the response.
    """

    def __init__(
        self,
        calls: S3Calls,
        locator: Locator,
        bucket: str,
        key: str,
        size: int,
        etag: str | None,
        chunk_size: int,
    ) -> None:
        self._calls = calls
        self._chunk_size = chunk_size
        self._locator = locator
        self._bucket = bucket
        self._key = key
        self._where = f"s3://{bucket}/{key}"
        self._size = size
        self._etag = etag
        self._offset = 0  # bytes returned so far
        self._body: Any = None
        self._failures = 0  # breaks in a row without progress
        self._closed = False

    def __aiter__(self) -> ObjectReader:
        return self

    async def __anext__(self) -> Buffer:
        if self._closed:
            raise StopAsyncIteration
        if self._offset >= self._size:
            await self._finish()
            raise StopAsyncIteration
        want = min(self._chunk_size, self._size - self._offset)
        try:
            chunk = await self._read(want)
        except BaseException:
            self._close_body()  # errors and cancellation: the connection is not reused
            raise
        self._offset += len(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop reading: close the response, if one is open."""
        self._closed = True
        self._close_body()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # its event loop may be closed already
            self._close_body()

    # -- internals ----------------------------------------------------------------------

    async def _read(self, want: int) -> bytes:
        """What has arrived of the object, up to `want` bytes (at least one)."""
        while True:
            if self._body is None:
                self._body = await self._open(self._offset)
            try:
                piece = await self._body.read(want)
                if not piece:  # ended early without an error from the transport
                    raise IncompleteReadError(actual_bytes=self._offset, expected_bytes=self._size)
            except Exception as exc:
                self._close_body()
                await self._after_break(exc, self._offset)
                continue
            self._failures = 0
            return piece

    async def _open(self, start: int) -> Any:
        """The body of a GET of the object from byte `start` on."""
        params: dict[str, Any] = {}
        if self._etag:
            params["IfMatch"] = self._etag
        if start:
            params["Range"] = f"bytes={start}-"

        async def attempt(client: LoopClient) -> Any:
            try:
                response = await client.client.get_object(
                    Bucket=self._bucket, Key=self._key, **params
                )
            except ClientError as exc:
                code, status = error_code(exc)
                if status == 412 or code == "PreconditionFailed":
                    raise StorageError(self._changed(start)) from exc
                raise
            body = response["Body"]
            if int(response["ContentLength"]) != self._size - start:
                body.close()
                raise StorageError(self._changed(start))
            return body

        return await self._calls.run(
            "GetObject", attempt, bucket=self._bucket, key=self._key, locator=self._locator
        )

    async def _after_break(self, exc: Exception, position: int) -> None:
        """Raise the lakery error for `exc`, or wait before the transfer is resumed."""
        policy = self._calls.retry
        retry = self._failures
        client = await self._calls.client()
        if not is_retryable(exc) or retry + 1 >= policy.max_attempts:
            raise translate_error(
                exc,
                operation="GetObject",
                where=self._where,
                locator=self._locator,
                attempts=retry + 1,
                secrets=client.secrets,
            ) from exc
        self._failures += 1
        wait = policy.delay(retry)
        logger.info(
            "S3 GetObject %s broke off after %d of %d bytes (%s); resuming from there, "
            "retry %d of %d in %.2fs",
            self._where,
            position,
            self._size,
            describe(exc, client.secrets),
            retry + 1,
            policy.max_attempts - 1,
            wait,
        )
        await anyio.sleep(wait)

    async def _finish(self) -> None:
        """At the end: check that the response ends there too, then close it."""
        body, self._body = self._body, None
        self._closed = True
        if body is None:
            return
        try:
            extra = await body.read(1)  # also lets botocore check a response checksum
        except Exception as exc:
            client = await self._calls.client()
            raise translate_error(
                exc,
                operation="GetObject",
                where=self._where,
                locator=self._locator,
                secrets=client.secrets,
            ) from exc
        finally:
            body.close()
        if extra:
            raise StorageError(self._changed(self._size))

    def _changed(self, position: int) -> str:
        return (
            f"{self._where} changed while it was being read (at byte {position} of "
            f"{self._size}; it is no longer the object whose ETag was {self._etag}); read "
            "it again"
        )

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()
