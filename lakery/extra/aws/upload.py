"""Multipart uploads for `S3Storage`: streams (temporary key, then copy) and huge values.

A stream's content address is known only once it is exhausted, and S3 cannot rename. So a
stream that does not fit in one part is uploaded to ``<prefix>/tmp/<id>`` and then copied
server-side to its content address: CopyObject up to `copy_part_size`, a multipart
UploadPartCopy of `copy_part_size` ranges above that (CopyObject stops at 5 GB). Every
multipart upload is aborted, and the temporary object deleted, on any error or
cancellation, in a shielded scope.
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
from typing import TYPE_CHECKING
from typing import Any

import anyio

from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.errors import first_error
from lakery.core.serializer import Buffer
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.extra.aws import layout

if TYPE_CHECKING:
    from lakery.extra.aws.storage import S3Storage

__all__ = ["MAX_PARTS", "b64_digest", "iter_buffers", "put_stream", "regroup", "upload_in_parts"]

logger = logging.getLogger("lakery.extra.aws")

MAX_PARTS = 10_000
"""S3's limit on the number of parts of one multipart upload."""
CLEANUP_TIMEOUT = 60.0
"""Seconds that aborting an upload or deleting a temporary object may take, shielded."""
_OCTETS = "application/octet-stream"


def b64_digest(sha256: str) -> str:
    """The base64 form of a hex sha256 digest, as S3's ``ChecksumSHA256`` wants it."""
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")


async def put_stream(
    storage: S3Storage, stream: HashingStream, *, tags: Mapping[str, str]
) -> Locator:
    """Write a stream: one PUT if it fits in one part, else multipart to a temporary key."""
    async with aclosing(regroup(stream, storage.part_size)) as parts:
        first = await anext(parts, None)
        if first is None or len(first) < storage.part_size:  # the stream has ended
            body = [first] if first is not None else []
            return await storage.put_value(body, size=stream.size, sha256=stream.sha256, tags=tags)
        temp_key = f"{layout.temp_prefix(storage.prefix)}{uuid.uuid4().hex}"
        head = [first]
        del first  # only `head` holds it, until it is sent
        try:
            await upload_in_parts(storage, temp_key, _chain(head, parts), tags=tags)
            key = layout.content_key(storage.prefix, stream.sha256)
            await _copy(storage, temp_key, key, stream.size, tags)
        finally:
            # also after a failed upload: its completion may have reached S3 unanswered
            await _delete_quietly(storage, temp_key)
    return {"bucket": storage.bucket, "key": key}


async def upload_in_parts(
    storage: S3Storage, key: str, parts: AsyncIterator[bytes], *, tags: Mapping[str, str]
) -> None:
    """Upload `parts` (each at least 5 MiB but the last) as one object at `key`."""
    client = await storage._clients.get()
    extra: dict[str, Any] = {"ContentType": _OCTETS, **storage.tag_params(tags)}
    checksum: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if client.request_checksums else {}
    upload = _Multipart(storage, key)
    await upload.start(**extra, **checksum)
    try:
        slots = anyio.Semaphore(storage.upload_concurrency)
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
                        raise StorageError(_too_many_parts(storage.part_size))
                    group.start_soon(_send_part, upload, number, body, checksum, slots)
                    del body
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        await upload.complete()
    except BaseException:
        await upload.abort()
        raise


async def iter_buffers(data: Sequence[Buffer], piece: int) -> AsyncIterator[memoryview]:
    """Slices of at most `piece` bytes of in-memory buffers, without copying them."""
    for buffer in data:
        view = memoryview(buffer).cast("B")
        for start in range(0, view.nbytes, piece):
            yield view[start : start + piece]


# -- parts ----------------------------------------------------------------------------


async def regroup(chunks: AsyncIterator[Buffer], part_size: int) -> AsyncIterator[bytes]:
    """Parts of exactly `part_size` bytes (the last one may be shorter) from any chunks.

    Chunks are copied into one reused buffer; each full part is copied out of it as `bytes`
    (the type botocore and aiohttp send with the fewest further copies).
    """
    buffer = bytearray(part_size)
    filled = 0
    async for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view.nbytes:
            take = min(part_size - filled, view.nbytes)
            buffer[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == part_size:
                yield bytes(buffer)
                filled = 0
    if filled:
        yield bytes(memoryview(buffer)[:filled])


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while first:
        yield first.pop(0)
    async for part in rest:
        yield part


async def _send_part(
    upload: _Multipart,
    number: int,
    body: bytes,
    checksum: dict[str, Any],
    slots: anyio.Semaphore,
) -> None:
    try:
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

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.upload_id: str | None = None
        self.parts: dict[int, dict[str, Any]] = {}

    async def start(self, **params: Any) -> None:
        response = await self.storage.call("CreateMultipartUpload", self.key, **params)
        self.upload_id = response["UploadId"]

    async def send(self, number: int, body: bytes, **params: Any) -> None:
        response = await self.storage.call(
            "UploadPart",
            self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            **params,
        )
        self.parts[number] = _part_entry(number, response)

    async def copy(self, number: int, source_key: str, start: int, end: int) -> None:
        response = await self.storage.call(
            "UploadPartCopy",
            self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.storage.bucket, "Key": source_key},
            CopySourceRange=f"bytes={start}-{end}",
        )
        self.parts[number] = _part_entry(number, response["CopyPartResult"])

    async def complete(self) -> None:
        parts = [self.parts[n] for n in sorted(self.parts)]
        await self.storage.call(
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
                await self.storage.call("AbortMultipartUpload", self.key, UploadId=self.upload_id)
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
            self.storage.bucket,
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
    storage: S3Storage, source_key: str, key: str, size: int, tags: Mapping[str, str]
) -> None:
    # Copied even when identical content is stored already: the new LastModified is what
    # keeps garbage collection (which spares recent objects) away until the save commits.
    if size <= storage.copy_part_size:
        source = {"Bucket": storage.bucket, "Key": source_key}
        client = await storage._clients.get()
        checksum = {"ChecksumAlgorithm": "CRC32"} if client.request_checksums else {}
        await storage.call("CopyObject", key, CopySource=source, **checksum)  # whole-object CRC
        return
    upload = _Multipart(storage, key)
    await upload.start(ContentType=_OCTETS, **storage.tag_params(tags))
    try:
        step = max(storage.copy_part_size, math.ceil(size / MAX_PARTS))
        try:
            async with anyio.create_task_group() as group:
                for number, start in enumerate(range(0, size, step), start=1):
                    end = min(start + step, size) - 1
                    group.start_soon(upload.copy, number, source_key, start, end)
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        await upload.complete()
    except BaseException:
        await upload.abort()
        raise


async def _delete_quietly(storage: S3Storage, key: str) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        try:
            await storage.call("DeleteObject", key)
            return
        except NotFoundError:
            return
        except LakeryError as exc:
            problem = str(exc)
        logger.warning(
            "could not delete the temporary object s3://%s/%s (%s); a lifecycle rule that "
            "expires '%s' will remove it",
            storage.bucket,
            key,
            problem,
            layout.temp_prefix(storage.prefix),
        )
