"""`S3Storage`: content-addressed objects in an S3 (or S3-compatible) bucket, on aiobotocore."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal
from typing import Unpack
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.extra.aws import download
from lakery.extra.aws import layout
from lakery.extra.aws import options
from lakery.extra.aws import upload
from lakery.extra.aws.calls import S3Calls
from lakery.extra.aws.options import ConnectionOptions
from lakery.extra.aws.options import OptionKeywords
from lakery.extra.aws.options import TransferOptions
from lakery.extra.aws.retry import RetryPolicy

__all__ = ["S3Storage"]


def _option(group: str, field: str) -> Any:
    """A read-only attribute for the option `field` of the group `group`."""
    return property(lambda self: getattr(getattr(self, group), field), doc=f"`{group}.{field}`")


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
        object_tags: ``"tagging"`` writes tags as S3 object tags (those S3 allows: at most
            10, keys up to 128 and values up to 256 characters of letters, digits, spaces
            and ``+-=._:/@``; others are left out); ``"metadata"`` writes all of them as
            JSON in the ``x-amz-meta-lakery-tags`` metadata entry (if under 2 KB), for
            servers without object tagging; ``"off"`` writes none.
        connection: endpoint, region, credentials, client settings and `max_concurrency`
            (see `ConnectionOptions`).
        transfer: part sizes, `upload_concurrency`, spooling and `read_chunk_size` (see
            `TransferOptions`).
        retry: attempts per S3 call and the backoff between them (see `RetryPolicy`).
        **keywords: the fields of a group not given as an object, one by one (e.g.
            ``part_size=...``; ``max_attempts``, ``retry_base_delay`` and
            ``retry_max_delay`` for `retry`). A group and one of its fields together
            raise `ConfigurationError`. They are also read-only attributes of the storage
            (``storage.part_size``).
    """

    name = "lakery.aws.s3@v1"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        name: str | None = None,
        object_tags: Literal["tagging", "metadata", "off"] = "tagging",
        connection: ConnectionOptions | None = None,
        transfer: TransferOptions | None = None,
        retry: RetryPolicy | None = None,
        **keywords: Unpack[OptionKeywords],
    ) -> None:
        super().__init__(name=name)
        self.bucket = layout.check_bucket(bucket)
        self.prefix = layout.check_prefix(prefix)
        self.object_tags = options.choice("object_tags", object_tags, layout.TAG_MODES)
        groups = {"connection": connection, "transfer": transfer, "retry": retry}
        self.connection, self.transfer, self.retry = options.grouped(groups, keywords)
        self._calls = S3Calls(self.bucket, self.connection, self.retry, repr(self))
        self._writer = upload.Writer(
            self._calls, self.prefix, self.object_tags, self.transfer, self.name
        )

    # the fields of the option groups, read-only under their keyword names
    endpoint_url = _option("connection", "endpoint_url")
    region = _option("connection", "region")
    profile = _option("connection", "profile")
    session = _option("connection", "session")
    addressing_style = _option("connection", "addressing_style")
    request_checksum_calculation = _option("connection", "request_checksum_calculation")
    response_checksum_validation = _option("connection", "response_checksum_validation")
    max_concurrency = _option("connection", "max_concurrency")
    client_options = _option("connection", "client_options")
    part_size = _option("transfer", "part_size")
    multipart_threshold = _option("transfer", "multipart_threshold")
    upload_concurrency = _option("transfer", "upload_concurrency")
    copy_part_size = _option("transfer", "copy_part_size")
    stream_spool_dir = _option("transfer", "stream_spool_dir")
    stream_spool_max_bytes = _option("transfer", "stream_spool_max_bytes")
    read_chunk_size = _option("transfer", "read_chunk_size")

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

    async def __aenter__(self) -> S3Storage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client of the running event loop (others are closed with their loops).

        The storage stays usable: the next call creates a new client.
        """
        await self._calls.close()

    # -- writing ------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        return await upload.put_value(self._writer, data, size=size, sha256=sha256, tags=tags)

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        return await upload.put_stream(self._writer, stream, tags=tags)

    # -- reading ------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        bucket, key = layout.locator_parts(locator)
        return await download.read_object(self._calls, locator, bucket, key)

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        bucket, key = layout.locator_parts(locator)
        chunk_size = self.transfer.read_chunk_size
        return await download.open_object(self._calls, locator, bucket, key, chunk_size)

    async def read_range(self, locator: Locator, start: int, end: int) -> bytearray:
        """Bytes `start` to `end` (inclusive) of the object at `locator`, in one ranged GET."""
        bucket, key = layout.locator_parts(locator)
        return await download.read_object(
            self._calls, locator, bucket, key, Range=f"bytes={start}-{end}"
        )

    async def delete(self, locator: Locator) -> None:
        bucket, key = layout.locator_parts(locator)
        with contextlib.suppress(NotFoundError):  # no bucket: no object either
            await self._calls.call("DeleteObject", key, bucket=bucket, locator=locator)

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
            page = await self._calls.call("ListObjectsV2", None, **params)
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
            head = await self._calls.call("HeadObject", key)
        except NotFoundError:
            return False
        if _utc(head["LastModified"]) >= older_than:
            return False
        await self._calls.call("DeleteObject", key)
        return True

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Abort multipart uploads under the prefix started before `older_than`, and delete
        temporary stream objects (``<prefix>/tmp/``) last modified before it."""
        removed: list[str] = []
        prefix = f"{self.prefix}/" if self.prefix else ""
        marker: dict[str, Any] = {}
        while True:
            page = await self._calls.call("ListMultipartUploads", None, Prefix=prefix, **marker)
            for upload_ in page.get("Uploads", []):
                if _utc(upload_["Initiated"]) >= older_than:
                    continue
                key, upload_id = upload_["Key"], upload_["UploadId"]
                if not dry_run:
                    with contextlib.suppress(NotFoundError):
                        await self._calls.call("AbortMultipartUpload", key, UploadId=upload_id)
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
            listing = await self._calls.call("ListObjectsV2", None, **params)
            for item in listing.get("Contents", []):
                if _utc(item["LastModified"]) >= older_than:
                    continue
                if not dry_run:
                    await self._calls.call("DeleteObject", item["Key"])
                removed.append(f"s3://{self.bucket}/{item['Key']}")
            token = listing.get("NextContinuationToken")
            if not listing.get("IsTruncated") or not token:
                return removed

    def _content_base(self) -> str:
        """The key prefix (with a trailing slash) of all content addresses."""
        return f"{self.prefix}/sha256/" if self.prefix else "sha256/"

    # -- calls --------------------------------------------------------------------------

    async def call(self, operation: str, key: str | None, **params: Any) -> dict[str, Any]:
        """Call an S3 operation (e.g. ``"CreateBucket"``) on `key` of this storage's bucket
        (or of ``bucket=...``), with its client, limits and retries; see `S3Calls.call`."""
        return await self._calls.call(operation, key, **params)


_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
