"""`S3Storage`: content-addressed objects in an S3 (or S3-compatible) bucket, on aiobotocore."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal
from typing import TypeVar
from urllib.parse import urlsplit

import anyio.to_thread

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.extra.aws import download
from lakery.extra.aws import layout
from lakery.extra.aws import options
from lakery.extra.aws import upload
from lakery.extra.aws.client import ClientManager
from lakery.extra.aws.client import LoopClient
from lakery.extra.aws.client import client_config
from lakery.extra.aws.client import new_aws_session
from lakery.extra.aws.retry import RetryPolicy
from lakery.extra.aws.retry import call_with_retries

__all__ = ["S3Storage"]

logger = logging.getLogger("lakery.extra.aws")

T = TypeVar("T")
ChecksumSetting = Literal["when_supported", "when_required"]

MiB = options.MiB
GiB = options.GiB
MIN_PART_SIZE = options.MIN_PART_SIZE
MAX_PART_SIZE = options.MAX_PART_SIZE


class S3Storage(Storage):
    """Content-addressed objects in an S3 bucket (AWS, MinIO, Ceph, R2, ...), on aiobotocore.

    Layout: each blob is stored once under ``<prefix>/sha256/<ab>/<sha256>``; its locator
    is ``{"bucket": ..., "key": ...}``, so data stays readable after the storage is
    reconfigured with another bucket or prefix. Credentials come from the standard AWS
    chain (environment, ``~/.aws`` config and credentials files with `profile`, container
    or instance roles) or an explicit aiobotocore `session`; they are never written to
    locators, records, logs, reprs or error messages.

    Writes:

    - A value is one PutObject to its content address (with its sha256 for the server to
      verify, unless checksums are ``"when_required"``). Values over `multipart_threshold`
      (by default 5 GiB, the most one PUT can hold) are uploaded in parts straight to
      their content address.
    - A stream's hash is known only at its end. A stream that ends within its first part
      is one PutObject. A longer one is spooled: written to an anonymous file in
      `stream_spool_dir` while it is hashed (in a worker thread, `part_size` at a time),
      then uploaded from that file straight to its content address, in `part_size` parts
      with at most `upload_concurrency` in flight (one PutObject if it fits in one part).
      If that content is stored already, nothing is uploaded: the object is rewritten in
      place by a server-side copy, which refreshes its LastModified so that garbage
      collection spares it until the save commits. The spool file is deleted in every
      case (the operating system reclaims it even if the process dies).
    - A stream longer than `stream_spool_max_bytes` (or than half the free space of the
      spool directory), or any multi-part stream when spooling is off, is uploaded in
      `part_size` parts to a temporary key ``<prefix>/tmp/<id>`` as it is read (what was
      spooled goes first), then copied server-side to its content address (CopyObject up
      to `copy_part_size`, above that a multipart UploadPartCopy in `copy_part_size`
      ranges, so there is no 5 GB copy limit), and the temporary object is deleted. Memory
      stays near ``(2 * upload_concurrency + 1) * part_size`` whatever the stream's
      length, as botocore and aiohttp hold a copy of each part being sent. Such a stream
      can have at most 10,000 parts: raise `part_size` for streams longer than ``10,000 *
      part_size``.
    - Multipart uploads are aborted, temporary objects deleted and spool files closed
      (so deleted) on any error or cancellation.
    - Object tags: see `object_tags`. With deduplicated content, the tags are those of
      the last write of the object; lakery's records keep all tags.

    Reads: `get_value` is one GetObject. `get_stream` checks with a HeadObject that the
    object exists (so a missing one raises `NotFoundError` before iteration, and no
    connection is held by a stream not yet iterated), then reads it with one streamed
    GetObject in chunks of at most `read_chunk_size`. A transfer that breaks off is
    resumed where it stopped with a ranged GET conditional on the object's ETag, so an
    object replaced meanwhile raises `StorageError` instead of mixing bytes.

    Calls are limited to `max_concurrency` at a time per event loop and retried with
    exponential backoff and jitter on throttling (SlowDown, 503), 5xx errors and broken
    connections. A missing object or bucket raises `NotFoundError`; refused access or
    credentials raise `AccessDeniedError`.

    The aiobotocore client is created on first use on the running asyncio event loop and
    reused; a storage used from another loop (``asyncio.run`` called twice, a Dagster
    resource's own loop) gets a client of its own, and a client whose loop has closed is
    never reused. Call ``await storage.close()`` or use ``async with storage:`` to release
    connections; ``asyncio.run`` also closes the client of its loop on exit.

    Args:
        bucket: the bucket to write to.
        prefix: key prefix, e.g. ``"teams/ml/lakery"`` (no leading ``/``, no ``..``).
        name: the component name, to register several S3 storages side by side.
        endpoint_url: for S3-compatible servers, e.g. ``"http://127.0.0.1:9000"``.
        region: the AWS region; default from the AWS configuration chain.
        profile: a profile from ``~/.aws/config``; ignored when `session` is given.
        session: an ``aiobotocore.session.AioSession`` with explicit credentials or setup.
        addressing_style: ``"auto"``, ``"path"`` (most S3-compatible servers) or
            ``"virtual"``.
        request_checksum_calculation: botocore's setting: ``"when_supported"`` (its
            default since 1.36) sends CRC32/SHA-256 checksum headers; ``"when_required"``
            sends them only where the API demands, for servers that reject them. None:
            from ``AWS_REQUEST_CHECKSUM_CALCULATION`` or the config file.
        response_checksum_validation: ``"when_required"`` (the default) leaves checking
            downloads to lakery, which verifies the size and SHA-256 of everything it
            reads; ``"when_supported"`` makes botocore check stored checksums too (twice
            the hashing work on loads); None: from ``AWS_RESPONSE_CHECKSUM_VALIDATION``.
        object_tags: ``"tagging"`` writes tags as S3 object tags (those S3 allows: at most
            10, keys up to 128 and values up to 256 characters of letters, digits, spaces
            and ``+-=._:/@``; others are left out); ``"metadata"`` writes all of them as
            JSON in the ``x-amz-meta-lakery-tags`` metadata entry (if under 2 KB), for
            servers without object tagging; ``"off"`` writes none.
        part_size: bytes per part of a streamed upload (at least 5 MiB).
        multipart_threshold: values larger than this are uploaded in `part_size` parts
            instead of one PUT (5 MiB to 5 GiB). Lower it to bound the memory and speed up
            the upload of large values: one PUT needs about twice the value's size.
        upload_concurrency: parts of one stream uploaded at the same time.
        copy_part_size: server-side copies of objects larger than this (a stream sent
            through a temporary object, stored content refreshed in place) are made in
            parts of this size (5 MiB to 5 GiB).
        stream_spool_dir: the directory of spool files; None: the system's temporary
            directory (`tempfile.gettempdir()`, e.g. ``$TMPDIR``) at the time of the write.
        stream_spool_max_bytes: the longest stream spooled to a local file (and at most
            half the free space of `stream_spool_dir`); longer streams, and every stream
            when None or 0, go through a temporary object.
        read_chunk_size: the largest chunk a streamed read yields (a reader holds one
            chunk, plus aiohttp's read buffer).
        max_concurrency: S3 calls in flight at once (per event loop); also the size of
            the connection pool.
        max_attempts: attempts per S3 call, the first included.
        retry_base_delay: seconds; the n-th retry waits up to ``retry_base_delay * 2**n``.
        retry_max_delay: seconds; the longest wait between attempts.
        client_options: more ``aiobotocore.config.AioConfig`` arguments (timeouts,
            proxies, ...), applied last.
    """

    name = "lakery.aws.s3@v1"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        name: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        session: Any = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        request_checksum_calculation: ChecksumSetting | None = None,
        response_checksum_validation: ChecksumSetting | None = "when_required",
        object_tags: Literal["tagging", "metadata", "off"] = "tagging",
        part_size: int = 8 * MiB,
        multipart_threshold: int = 5 * GiB,
        upload_concurrency: int = 4,
        copy_part_size: int = 256 * MiB,
        stream_spool_dir: str | os.PathLike[str] | None = None,
        stream_spool_max_bytes: int | None = 4 * GiB,
        read_chunk_size: int = 1 * MiB,
        max_concurrency: int = 10,
        max_attempts: int = 5,
        retry_base_delay: float = 0.1,
        retry_max_delay: float = 20.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name=name)
        self.bucket = layout.check_bucket(bucket)
        self.prefix = layout.check_prefix(prefix)
        self.endpoint_url = options.check_endpoint(endpoint_url)
        self.region = region
        self.profile = profile
        self.session = session
        self.addressing_style = options.choice(
            "addressing_style", addressing_style, options.ADDRESSING_STYLES
        )
        self.request_checksum_calculation = options.checksum_setting(
            "request_checksum_calculation", request_checksum_calculation
        )
        self.response_checksum_validation = options.checksum_setting(
            "response_checksum_validation", response_checksum_validation
        )
        self.object_tags = options.choice("object_tags", object_tags, layout.TAG_MODES)
        self.part_size = options.bounded_int("part_size", part_size, MIN_PART_SIZE, MAX_PART_SIZE)
        self.copy_part_size = options.bounded_int(
            "copy_part_size", copy_part_size, MIN_PART_SIZE, MAX_PART_SIZE
        )
        self.stream_spool_dir = options.directory("stream_spool_dir", stream_spool_dir)
        self.stream_spool_max_bytes = options.optional_size(
            "stream_spool_max_bytes", stream_spool_max_bytes, options.MAX_OBJECT_SIZE
        )
        self.read_chunk_size = options.bounded_int(
            "read_chunk_size", read_chunk_size, 1, MAX_PART_SIZE
        )
        self.upload_concurrency = options.bounded_int(
            "upload_concurrency", upload_concurrency, 1, 10_000
        )
        self.max_concurrency = options.bounded_int("max_concurrency", max_concurrency, 1, 10_000)
        self.retry = RetryPolicy(max_attempts, retry_base_delay, retry_max_delay)
        self.client_options = dict(client_options or {})
        self.multipart_threshold = options.bounded_int(
            "multipart_threshold", multipart_threshold, MIN_PART_SIZE, MAX_PART_SIZE
        )
        self._clients = self._new_client_manager()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Storage:
        """An S3Storage for ``s3://bucket/prefix``; `kwargs` are the constructor's options."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            msg = f"expected an 's3://bucket/prefix' URL, got {url!r}"
            raise ConfigurationError(msg)
        return cls(parts.netloc, prefix=parts.path.lstrip("/"), **kwargs)

    def __repr__(self) -> str:
        extras = "".join(
            f", {k}={v!r}"
            for k, v in (("endpoint_url", self.endpoint_url), ("region", self.region))
            if v is not None
        )
        return f"S3Storage({self.bucket!r}, prefix={self.prefix!r}{extras}, name={self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_clients"]  # clients belong to event loops of this process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = self._new_client_manager()

    async def __aenter__(self) -> S3Storage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client of the running event loop (others are closed with their loops).

        The storage stays usable: the next call creates a new client.
        """
        await self._clients.close()

    # -- writing ------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        key = layout.content_key(self.prefix, sha256)
        if size > self.multipart_threshold:
            piece = max(self.part_size, math.ceil(size / (upload.MAX_PARTS - 1)))
            parts = upload.regroup(upload.iter_buffers(data, piece), piece)
            await upload.upload_in_parts(self, key, parts, tags=tags)
            return {"bucket": self.bucket, "key": key}
        body = await _joined(data, size)
        if len(body) != size:
            msg = f"put_value got {len(body)} bytes but was told size={size}"
            raise StorageError(msg)
        client = await self._clients.get()
        params: dict[str, Any] = {"Body": body, **self.tag_params(tags)}
        if client.request_checksums:
            # the digest we already have: S3 checks the bytes against it, botocore adds none
            params.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=upload.b64_digest(sha256))
        await self.call("PutObject", key, ContentType=_OCTETS, **params)
        return {"bucket": self.bucket, "key": key}

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        return await upload.put_stream(self, stream, tags=tags)

    def tag_params(self, tags: Mapping[str, str]) -> dict[str, Any]:
        """The request parameters that attach `tags` to a new object (see `object_tags`)."""
        left_out = layout.tags_left_out(tags, self.object_tags)
        if left_out:
            logger.debug("S3 object tags leave out %s (S3 limits)", ", ".join(left_out))
        return layout.tag_params(tags, self.object_tags)

    # -- reading ------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        bucket, key = layout.locator_parts(locator)

        async def attempt(client: LoopClient) -> bytearray:
            response = await client.client.get_object(Bucket=bucket, Key=key)
            return await download.read_body(response)

        return await self.run("GetObject", attempt, bucket=bucket, key=key, locator=locator)

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        bucket, key = layout.locator_parts(locator)
        head = await self.call("HeadObject", key, bucket=bucket, locator=locator)
        size = int(head["ContentLength"])
        return download.ObjectReader(self, locator, bucket, key, size, head.get("ETag"))

    async def read_range(self, locator: Locator, start: int, end: int) -> bytearray:
        """Bytes `start` to `end` (inclusive) of the object at `locator`, in one ranged GET."""
        bucket, key = layout.locator_parts(locator)

        async def attempt(client: LoopClient) -> bytearray:
            response = await client.client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{end}"
            )
            return await download.read_body(response)

        return await self.run("GetObject", attempt, bucket=bucket, key=key, locator=locator)

    async def delete(self, locator: Locator) -> None:
        bucket, key = layout.locator_parts(locator)
        with contextlib.suppress(NotFoundError):  # no bucket: no object either
            await self.call("DeleteObject", key, bucket=bucket, locator=locator)

    def uri(self, locator: Locator) -> str | None:
        bucket, key = layout.locator_parts(locator)
        return f"s3://{bucket}/{key}"

    # -- maintenance (garbage collection) -------------------------------------------------

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every object at a content address under ``<prefix>/sha256/`` (ListObjectsV2,
        page by page). Other keys, temporary objects and other prefixes are not listed; an
        object's LastModified is when it was last PUT (every value write PUTs again)."""
        base = self._content_base()
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": base}
            if token:
                params["ContinuationToken"] = token
            page = await self.call("ListObjectsV2", None, **params)
            for item in page.get("Contents", []):
                key = item["Key"]
                fan, _, sha256 = key[len(base) :].partition("/")
                if not _BLOB_NAME.match(sha256) or fan != sha256[:2]:
                    continue
                locator = {"bucket": self.bucket, "key": key}
                yield BlobInfo(locator, sha256, int(item["Size"]), _utc(item["LastModified"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """HeadObject, then DeleteObject if LastModified is still before `older_than`.

        S3 has no delete conditional on age, so a write of the same content that lands
        between the two requests (a window of one round trip) is deleted with it; the
        grace period of garbage collection makes that a write of content that was
        unreferenced for the whole grace period and saved again at that very moment.
        """
        bucket, key = layout.locator_parts(blob.locator)
        if bucket != self.bucket or not key.startswith(self._content_base()):
            msg = f"{blob.locator!r} is not a blob of {self!r}"
            raise StorageError(msg)
        try:
            head = await self.call("HeadObject", key)
        except NotFoundError:
            return False
        if _utc(head["LastModified"]) >= older_than:
            return False
        await self.call("DeleteObject", key)
        return True

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Abort multipart uploads under the prefix started before `older_than`, and delete
        temporary stream objects (``<prefix>/tmp/``) last modified before it."""
        removed: list[str] = []
        prefix = f"{self.prefix}/" if self.prefix else ""
        marker: dict[str, Any] = {}
        while True:
            page = await self.call("ListMultipartUploads", None, Prefix=prefix, **marker)
            for upload_ in page.get("Uploads", []):
                if _utc(upload_["Initiated"]) >= older_than:
                    continue
                key, upload_id = upload_["Key"], upload_["UploadId"]
                if not dry_run:
                    with contextlib.suppress(NotFoundError):
                        await self.call("AbortMultipartUpload", key, UploadId=upload_id)
                removed.append(f"multipart upload {upload_id} of s3://{self.bucket}/{key}")
            if not page.get("IsTruncated"):
                break
            marker = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "UploadIdMarker": page.get("NextUploadIdMarker", ""),
            }
        temp = layout.temp_prefix(self.prefix)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": temp}
            if token:
                params["ContinuationToken"] = token
            listing = await self.call("ListObjectsV2", None, **params)
            for item in listing.get("Contents", []):
                if _utc(item["LastModified"]) >= older_than:
                    continue
                if not dry_run:
                    await self.call("DeleteObject", item["Key"])
                removed.append(f"s3://{self.bucket}/{item['Key']}")
            token = listing.get("NextContinuationToken")
            if not listing.get("IsTruncated") or not token:
                return removed

    def _content_base(self) -> str:
        """The key prefix (with a trailing slash) of all content addresses."""
        return f"{self.prefix}/sha256/" if self.prefix else "sha256/"

    # -- calls --------------------------------------------------------------------------

    async def call(
        self,
        operation: str,
        key: str | None,
        *,
        bucket: str | None = None,
        locator: Any = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Call an S3 operation (e.g. ``"PutObject"``) on `key`, with retries and limits."""
        bucket = bucket or self.bucket
        method = _snake(operation)
        if key is not None:
            params["Key"] = key

        async def attempt(client: LoopClient) -> dict[str, Any]:
            return await getattr(client.client, method)(Bucket=bucket, **params)

        return await self.run(operation, attempt, bucket=bucket, key=key, locator=locator)

    async def run(
        self,
        operation: str,
        attempt: Callable[[LoopClient], Awaitable[T]],
        *,
        bucket: str,
        key: str | None,
        locator: Any = None,
    ) -> T:
        """Run `attempt` with this loop's client in a concurrency slot, with retries."""
        client = await self._clients.get()

        async def limited() -> T:
            async with client.slots:
                return await attempt(client)

        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        return await call_with_retries(
            limited,
            policy=self.retry,
            operation=operation,
            where=where,
            locator=locator if locator is not None else {"bucket": bucket, "key": key},
            secrets=lambda: client.secrets,
        )

    def _new_client_manager(self) -> ClientManager:
        def new_session() -> Any:
            return self.session if self.session is not None else new_aws_session(self.profile)

        def create(session: Any) -> Any:
            return session.create_client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=client_config(
                    max_concurrency=self.max_concurrency,
                    addressing_style=self.addressing_style,
                    request_checksum_calculation=self.request_checksum_calculation,
                    response_checksum_validation=self.response_checksum_validation,
                    extra=self.client_options,
                ),
            )

        return ClientManager(
            create, new_session, max_concurrency=self.max_concurrency, label=repr(self)
        )


_OCTETS = "application/octet-stream"
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _joined(data: Sequence[Buffer], size: int) -> bytes | bytearray:
    if len(data) == 1 and isinstance(data[0], bytes | bytearray):
        return data[0]
    if size > THREAD_THRESHOLD:
        return await anyio.to_thread.run_sync(b"".join, data)
    return b"".join(data)


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
