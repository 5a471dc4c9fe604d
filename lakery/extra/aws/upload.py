"""Writes for `S3Storage`: values in one PUT or in parts, and streams.

A stream's content address is known only once it is exhausted, and S3 cannot rename. A
stream that does not fit in one part is therefore either

- spooled: written to an anonymous local file while it is hashed (`spool.SpoolFile`), then,
  knowing its hash, uploaded from that file straight to its content address, or not at
  all if the content is already stored there (the object is then rewritten in place by
  a server-side copy, which refreshes its LastModified for garbage collection); or
- sent through a temporary object, when spooling is off or the stream outgrows
  `stream_spool_max_bytes` (or half the spool's free space, or a write to the spool
  fails): uploaded to ``<prefix>/tmp/<id>`` while it is read, then copied server-side to
  its content address (CopyObject up to `copy_part_size`, a multipart UploadPartCopy of
  `copy_part_size` ranges above that, as CopyObject stops at 5 GB). What was spooled
  before the switch is sent from the spool file first.

Every multipart upload is aborted, the temporary object deleted and the spool file closed
(which deletes it) on any error or cancellation, in shielded scopes.
"""

from __future__ import annotations

import base64
import logging
import math
import uuid
from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.errors import raise_first
from lakery.core.serializer import Buffer
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.extra.aws import layout
from lakery.extra.aws.calls import S3Calls
from lakery.extra.aws.options import TransferOptions
from lakery.extra.aws.spool import SpoolFile
from lakery.extra.aws.spool import crc32_b64
from lakery.extra.aws.spool import spool_directory
from lakery.extra.object_store import iter_buffers
from lakery.extra.object_store import joined
from lakery.extra.object_store import regroup

__all__ = ["MAX_PARTS", "Writer", "put_stream", "put_value"]

logger = logging.getLogger("lakery.extra.aws")

MAX_PARTS = 10_000
"""S3's limit on the number of parts of one multipart upload."""
CLEANUP_TIMEOUT = 60.0
"""Seconds that aborting an upload or deleting a temporary object may take, shielded."""
_OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class Writer:
    """What the writes of one `S3Storage` need: its calls (and bucket), key prefix, how
    object tags are written (`object_tags`), its transfer options and its name (`label`)."""

    calls: S3Calls
    prefix: str
    object_tags: str
    transfer: TransferOptions
    label: str

    @property
    def bucket(self) -> str:
        return self.calls.bucket

    def tag_params(self, tags: Mapping[str, str]) -> dict[str, Any]:
        """The request parameters that attach `tags` to a new object."""
        left_out = layout.tags_left_out(tags, self.object_tags)
        if left_out:
            logger.debug("S3 object tags leave out %s (S3 limits)", ", ".join(left_out))
        return layout.tag_params(tags, self.object_tags)


async def put_value(
    writer: Writer, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
) -> Locator:
    """Write a value: one PUT with its sha256, or in parts above `multipart_threshold`."""
    key = layout.content_key(writer.prefix, sha256)
    locator = {"bucket": writer.bucket, "key": key}
    transfer = writer.transfer
    if size > transfer.multipart_threshold:
        piece = max(transfer.part_size, math.ceil(size / (MAX_PARTS - 1)))
        parts = regroup(iter_buffers(data, piece), piece)
        await _upload_in_parts(writer, key, parts, tags=tags)
        return locator
    body = await joined(data, size)
    if len(body) != size:
        msg = f"put_value got {len(body)} bytes but was told size={size}"
        raise StorageError(msg)
    client = await writer.calls.client()
    params: dict[str, Any] = {"Body": body, **writer.tag_params(tags)}
    if client.request_checksums:
        # the digest we already have: S3 checks the bytes against it, botocore adds none
        params.update(ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64_digest(sha256))
    await writer.calls.call("PutObject", key, ContentType=_OCTETS, **params)
    return locator


async def put_stream(writer: Writer, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
    """Write a stream: one PUT if it fits in one part, else spooled or through a temporary
    object (see the module docstring)."""
    async with aclosing(regroup(stream, writer.transfer.part_size)) as parts:
        first = await anext(parts, None)
        if first is None or len(first) < writer.transfer.part_size:  # the stream has ended
            body = [first] if first is not None else []
            return await put_value(writer, body, size=stream.size, sha256=stream.sha256, tags=tags)
        head = [first]
        del first  # only `head` holds it, until it is spooled or sent
        spool = await _open_spool(writer) if writer.transfer.stream_spool_max_bytes else None
        if spool is None:
            return await _put_through_temp(writer, stream, _chain(head, parts), tags)
        try:
            return await _put_spooled(writer, stream, spool, head, parts, tags)
        finally:
            await spool.close()


async def _open_spool(writer: Writer) -> SpoolFile | None:
    directory = spool_directory(writer.transfer.stream_spool_dir)
    try:
        return await SpoolFile.create(directory)
    except OSError as exc:
        logger.warning(
            "cannot create a spool file in %r (%s); the stream goes through a temporary "
            "object instead (set S3Storage(stream_spool_dir=...) to a writable directory, "
            "or stream_spool_max_bytes=None to stop spooling)",
            directory,
            exc,
        )
        return None


async def _put_spooled(
    writer: Writer,
    stream: HashingStream,
    spool: SpoolFile,
    head: list[bytes],
    parts: AsyncIterator[bytes],
    tags: Mapping[str, str],
) -> Locator:
    limit = min(writer.transfer.stream_spool_max_bytes or 0, spool.free_at_start // 2)
    part: bytes | None = head.pop()
    while True:
        unwritten = await spool.settle()  # the previous part's write
        if unwritten:  # a full disk: S3 takes the rest
            break
        if part is None:  # the stream has ended within the limit: its hash is known
            return await _upload_spooled(writer, stream.sha256, spool, tags)
        if spool.size + len(part) > limit:
            logger.info(
                "a stream of S3Storage %r outgrew its spool limit of %d bytes",
                writer.label,
                limit,
            )
            break
        spool.write_soon(part)  # written while the next part is read and hashed
        part = await anext(parts, None)
    logger.info("the stream goes on through a temporary object")
    if part is not None:
        unwritten.append(part)
    del part
    spooled = _spooled_parts(spool, writer.transfer.part_size, spool.size)
    rest = _concat(spooled, _chain(unwritten, parts))
    return await _put_through_temp(writer, stream, rest, tags)


async def _upload_spooled(
    writer: Writer, sha256: str, spool: SpoolFile, tags: Mapping[str, str]
) -> Locator:
    key = layout.content_key(writer.prefix, sha256)
    locator = {"bucket": writer.bucket, "key": key}
    size = spool.size
    if await _refresh_if_stored(writer, key, size, tags):
        return locator
    if size <= writer.transfer.part_size:
        body = await spool.read(0, size)
        return await put_value(writer, [body], size=size, sha256=sha256, tags=tags)
    piece = max(writer.transfer.part_size, math.ceil(size / MAX_PARTS))
    await _upload_in_parts(writer, key, _spooled_parts(spool, piece, size), tags=tags)
    return locator


async def _refresh_if_stored(writer: Writer, key: str, size: int, tags: Mapping[str, str]) -> bool:
    """Whether the content is stored at `key` already; if so, rewrite it in place
    (server-side) so that its LastModified tells garbage collection that it is in use."""
    try:
        head = await writer.calls.call("HeadObject", key)
    except (NotFoundError, AccessDeniedError):  # 403: no s3:ListBucket, so maybe missing
        return False
    if int(head.get("ContentLength", -1)) != size:
        logger.warning(
            "s3://%s/%s holds %s bytes, not the %d of its content: it is uploaded again",
            writer.bucket,
            key,
            head.get("ContentLength"),
            size,
        )
        return False
    try:
        await _copy(writer, key, key, size, tags)
    except NotFoundError:  # deleted since the HEAD (garbage collection): upload it
        return False
    logger.debug(
        "s3://%s/%s is stored already: upload skipped, object refreshed in place",
        writer.bucket,
        key,
    )
    return True


async def _put_through_temp(
    writer: Writer,
    stream: HashingStream,
    parts: AsyncIterator[bytes],
    tags: Mapping[str, str],
) -> Locator:
    """Upload `parts` to a temporary key, then copy the object to its content address."""
    temp_key = f"{layout.temp_prefix(writer.prefix)}{uuid.uuid4().hex}"
    try:
        await _upload_in_parts(writer, temp_key, parts, tags=tags)
        key = layout.content_key(writer.prefix, stream.sha256)
        await _copy(writer, temp_key, key, stream.size, tags)
    finally:
        # also after a failed upload: its completion may have reached S3 unanswered
        await _delete_quietly(writer, temp_key)
    return {"bucket": writer.bucket, "key": key}


async def _upload_in_parts(
    writer: Writer, key: str, parts: AsyncIterator[bytes], *, tags: Mapping[str, str]
) -> None:
    """Upload `parts` (each at least 5 MiB but the last) as one object at `key`."""
    client = await writer.calls.client()
    extra: dict[str, Any] = {"ContentType": _OCTETS, **writer.tag_params(tags)}
    checksum: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if client.request_checksums else {}
    upload = _Multipart(writer.calls, key)
    await upload.start(**extra, **checksum)
    with_crc32 = bool(checksum)
    try:
        slots = anyio.Semaphore(writer.transfer.upload_concurrency)
        try:
            async with anyio.create_task_group() as group:
                number = 0
                while True:
                    await slots.acquire()  # read the next part only when it can be sent
                    body = await anext(parts, None)
                    if body is None:
                        slots.release()
                        break
                    number += 1
                    if number > MAX_PARTS:
                        raise StorageError(_too_many_parts(writer.transfer.part_size))
                    group.start_soon(_send_part, upload, number, body, with_crc32, slots)
                    del body
        except BaseExceptionGroup as group_error:
            raise_first(group_error)
        await upload.complete()
    except BaseException:
        await upload.abort()
        raise


def _b64_digest(sha256: str) -> str:
    """The base64 form of a hex sha256 digest, as S3's ``ChecksumSHA256`` wants it."""
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")


# -- parts ----------------------------------------------------------------------------


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while first:
        yield first.pop(0)
    async for part in rest:
        yield part


async def _concat(
    first: AsyncIterator[bytes], second: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    async for part in first:
        yield part
    async for part in second:
        yield part


async def _spooled_parts(spool: SpoolFile, piece: int, size: int) -> AsyncIterator[bytes]:
    """The first `size` bytes of the spool file, in parts of `piece` bytes."""
    for offset in range(0, size, piece):
        yield await spool.read(offset, piece)


async def _send_part(
    upload: _Multipart,
    number: int,
    body: bytes,
    with_crc32: bool,
    slots: anyio.Semaphore,
) -> None:
    try:
        checksum: dict[str, Any] = {}
        if with_crc32:  # computed here, in a worker thread, rather than by botocore on the loop
            crc32 = await anyio.to_thread.run_sync(crc32_b64, body)
            checksum = {"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": crc32}
        await upload.send(number, body, **checksum)
    finally:
        slots.release()


def _too_many_parts(part_size: int) -> str:
    limit = MAX_PARTS * part_size
    return (
        f"the stream is longer than S3's limit of {MAX_PARTS} parts of part_size={part_size} "
        f"bytes ({limit / (1 << 30):.1f} GiB); construct S3Storage with a larger part_size, "
        f"e.g. part_size={max(part_size * 4, math.ceil(limit * 4 / MAX_PARTS))}"
    )


# -- multipart uploads ------------------------------------------------------------------


class _Multipart:
    """One multipart upload to `key`: parts sent or copied, then completed or aborted."""

    def __init__(self, calls: S3Calls, key: str) -> None:
        self.calls = calls
        self.key = key
        self.upload_id: str | None = None
        self.parts: dict[int, dict[str, Any]] = {}

    async def start(self, **params: Any) -> None:
        response = await self.calls.call("CreateMultipartUpload", self.key, **params)
        self.upload_id = response["UploadId"]

    async def send(self, number: int, body: bytes, **params: Any) -> None:
        response = await self.calls.call(
            "UploadPart",
            self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            **params,
        )
        self.parts[number] = _part_entry(number, response)

    async def copy(self, number: int, source_key: str, start: int, end: int) -> None:
        response = await self.calls.call(
            "UploadPartCopy",
            self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.calls.bucket, "Key": source_key},
            CopySourceRange=f"bytes={start}-{end}",
        )
        self.parts[number] = _part_entry(number, response["CopyPartResult"])

    async def complete(self) -> None:
        parts = [self.parts[n] for n in sorted(self.parts)]
        await self.calls.call(
            "CompleteMultipartUpload",
            self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )

    async def abort(self) -> None:
        """Abort the upload (shielded, best effort): its parts stop taking space."""
        if self.upload_id is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT) as scope:
            try:
                await self.calls.call("AbortMultipartUpload", self.key, UploadId=self.upload_id)
                return
            except NotFoundError:
                return  # already completed or aborted
            except LakeryError as exc:
                problem = str(exc)
        if scope.cancelled_caught:
            problem = f"no answer within {CLEANUP_TIMEOUT:.0f}s"
        logger.warning(
            "could not abort the multipart upload %s of s3://%s/%s (%s); a lifecycle rule "
            "that aborts incomplete multipart uploads will remove it",
            self.upload_id,
            self.calls.bucket,
            self.key,
            problem,
        )


def _part_entry(number: int, response: Mapping[str, Any]) -> dict[str, Any]:
    entry = {"PartNumber": number, "ETag": response["ETag"]}
    for name in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1"):
        if response.get(name):
            entry[name] = response[name]
    return entry


# -- moving a finished stream to its content address ---------------------------------


async def _copy(
    writer: Writer, source_key: str, key: str, size: int, tags: Mapping[str, str]
) -> None:
    """Copy `source_key` to `key` server-side; onto itself when they are the same key,
    which rewrites the object (new LastModified) with this write's tags."""
    # Copied even when identical content is stored already: the new LastModified is what
    # keeps garbage collection (which spares recent objects) away until the save commits.
    in_place = source_key == key
    if size <= writer.transfer.copy_part_size:
        source = {"Bucket": writer.bucket, "Key": source_key}
        client = await writer.calls.client()
        params: dict[str, Any] = {"CopySource": source}
        if client.request_checksums:
            params["ChecksumAlgorithm"] = "CRC32"  # whole-object CRC
        if in_place:  # S3 refuses a copy onto itself that changes nothing
            params.update(MetadataDirective="REPLACE", ContentType=_OCTETS)
            params.update(writer.tag_params(tags))
            if writer.object_tags == "tagging":
                params["TaggingDirective"] = "REPLACE"
        await writer.calls.call("CopyObject", key, **params)
        return
    upload = _Multipart(writer.calls, key)
    await upload.start(ContentType=_OCTETS, **writer.tag_params(tags))
    try:
        step = max(writer.transfer.copy_part_size, math.ceil(size / MAX_PARTS))
        try:
            async with anyio.create_task_group() as group:
                for number, start in enumerate(range(0, size, step), start=1):
                    end = min(start + step, size) - 1
                    group.start_soon(upload.copy, number, source_key, start, end)
        except BaseExceptionGroup as group_error:
            raise_first(group_error)
        await upload.complete()
    except BaseException:
        await upload.abort()
        raise


async def _delete_quietly(writer: Writer, key: str) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        try:
            await writer.calls.call("DeleteObject", key)
            return
        except NotFoundError:
            return
        except LakeryError as exc:
            problem = str(exc)
        logger.warning(
            "could not delete the temporary object s3://%s/%s (%s); a lifecycle rule that "
            "expires '%s' will remove it",
            writer.bucket,
            key,
            problem,
            layout.temp_prefix(writer.prefix),
        )
