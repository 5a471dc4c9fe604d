"""`GCSStorage`: content-addressed objects in a Google Cloud Storage bucket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import TypeVar
from typing import cast
from urllib.parse import quote
from urllib.parse import urlsplit

import aiohttp
import anyio
import anyio.to_thread

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.extra.gcs.retry import GCSHTTPError
from lakery.extra.gcs.retry import GCSRetryPolicy
from lakery.extra.gcs.retry import call_with_retries
from lakery.extra.gcs.retry import describe
from lakery.extra.gcs.retry import redact
from lakery.extra.gcs.retry import status_of
from lakery.extra.object_store import PrefixRules
from lakery.extra.object_store import content_key
from lakery.extra.object_store import joined
from lakery.extra.object_store import locator_parts as object_locator_parts
from lakery.extra.object_store import regroup

__all__ = ["GCSStorage"]

logger = logging.getLogger("lakery.extra.gcs")

T = TypeVar("T")
KiB = 1 << 10
MiB = 1 << 20
CHUNK_QUANTUM = 256 * KiB
"""GCS accepts resumable-upload chunks (all but the last) in multiples of 256 KiB."""
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
REUSED_KEY = "lakery_reused"
"""Object metadata entry set when a save finds its content stored already (a metadata
update: a new metageneration and ``updated`` time, for garbage collection)."""
UPLOADS = "uploads"
"""The folder (under the prefix) of streamed uploads whose hash is not known yet."""
CLEANUP_TIMEOUT = 60.0

_BUCKET = re.compile(r"^(?=.{3,222}$)[a-z0-9][a-z0-9._-]*[a-z0-9]$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX_RULES = PrefixRules("GCS object name prefix", max_length=900, forbidden="#[]*?")
_OCTETS = "application/octet-stream"


def _exists(exc: BaseException) -> bool:
    """A precondition failure of a create (``ifGenerationMatch=0``): the object exists."""
    return status_of(exc) == 412


class GCSStorage(Storage):
    """Content-addressed objects in a Google Cloud Storage bucket, on the async
    ``gcloud-aio-storage`` client (over aiohttp).

    Layout: each blob is stored once under ``<prefix>/sha256/<ab>/<sha256>``; its locator
    is ``{"bucket": ..., "key": ...}``.

    Credentials: `service_file` (a service-account or authorized-user JSON file), or a
    ready ``gcloud.aio.auth.Token`` as `token`; by default the standard chain of
    ``gcloud-aio-auth`` (``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud CLI's application
    default credentials, the metadata server of the machine). With an emulator
    (`endpoint`, or the ``STORAGE_EMULATOR_HOST`` environment variable) requests are
    anonymous unless ``anonymous=False``. Credentials never appear in locators, records,
    logs, reprs, object metadata or error messages.

    Writes never overwrite: every create is conditional on the object not existing
    (``ifGenerationMatch=0``). A write that finds its content stored already sets the
    ``lakery_reused`` metadata entry instead, which gives the object a new metageneration
    and ``updated`` time, so that garbage collection spares it until the save commits.

    - A value up to `single_put_size` is one upload request; a larger one is a resumable
      upload in `chunk_size` chunks, each retried from the first byte GCS has not
      persisted.
    - A stream's hash is known only at its end. A stream that ends within its first
      chunk is one upload request. A longer one is a resumable upload (hashed while it
      streams, in `chunk_size` chunks, never held in memory) to a temporary object under
      ``<prefix>/uploads/``, which is then rewritten server-side to its content address
      (``ifGenerationMatch=0``; or, if that content is stored already, only refreshed)
      and deleted. A failed or cancelled stream cancels its upload session (nothing
      becomes visible); a temporary object that a crashed process left behind is removed
      by ``lakery gc`` (`delete_leftovers`).

    Reads: `get_value` is one download; `get_stream` reads the object's metadata first
    (so a missing object raises `NotFoundError` before iteration), then downloads it in
    `read_chunk_size` ranges, each pinned to the generation it saw
    (``ifGenerationMatch``), and resumes a transfer that broke off from the first byte
    not yet read. Both check the bytes against the sha256 of the content address and
    raise `StorageError` when they differ.

    Garbage collection deletes an object only if its generation and metageneration are
    still those it checked the age of (``ifGenerationMatch`` and
    ``ifMetagenerationMatch``): a save that reused it in between changed its
    metageneration, so the delete fails and the object stays.

    Calls are limited to `max_concurrency` at a time per event loop and retried with
    exponential backoff and jitter on throttling (429), 5xx answers and broken
    connections. One client per event loop, created on first use; ``await
    storage.close()`` or ``async with storage:`` releases it.

    Args:
        bucket: the bucket to write to.
        prefix: object name prefix, e.g. ``"teams/ml/lakery"`` (no leading ``/``, no ``..``).
        name: the component name, to register several GCS storages side by side.
        service_file: path of a credentials JSON file (never read into messages).
        token: a ``gcloud.aio.auth.Token`` to authenticate with instead.
        endpoint: the API root, e.g. an emulator's ``http://127.0.0.1:9023``; default
            ``STORAGE_EMULATOR_HOST`` or ``https://storage.googleapis.com``.
        anonymous: send no credentials; default: only with an emulator endpoint.
        project: the project of `create_bucket` (default ``GOOGLE_CLOUD_PROJECT``).
        chunk_size: bytes per resumable-upload chunk (a multiple of 256 KiB).
        single_put_size: values up to this are one upload request.
        max_concurrency: calls in flight at once (per event loop).
        read_chunk_size: bytes per ranged GET of a streamed read, and the largest chunk
            it yields.
        timeout: seconds per request.
        max_attempts: attempts per call (see `GCSRetryPolicy`).
        retry_base_delay: seconds; the cap of the first wait between attempts.
        retry_max_delay: seconds; no wait between attempts is longer.
    """

    name = "lakery.gcs@v1"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        name: str | None = None,
        service_file: str | os.PathLike[str] | None = None,
        token: Any = None,
        endpoint: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        chunk_size: int = 8 * MiB,
        single_put_size: int = 16 * MiB,
        max_concurrency: int = 10,
        read_chunk_size: int = 4 * MiB,
        timeout: float = 300.0,
        max_attempts: int = 5,
        retry_base_delay: float = 0.1,
        retry_max_delay: float = 20.0,
    ) -> None:
        super().__init__(name=name)
        self.bucket = check_bucket(bucket)
        self.prefix = PREFIX_RULES.check(prefix)
        self.chunk_size = _bounded("chunk_size", chunk_size, CHUNK_QUANTUM, 1 << 40)
        if self.chunk_size % CHUNK_QUANTUM:
            msg = f"chunk_size must be a multiple of 256 KiB ({CHUNK_QUANTUM}), got {chunk_size}"
            raise ConfigurationError(msg)
        self.single_put_size = _bounded("single_put_size", single_put_size, 0, 5 << 30)
        self.max_concurrency = _bounded("max_concurrency", max_concurrency, 1, 10_000)
        self.read_chunk_size = _bounded("read_chunk_size", read_chunk_size, 4096, 1 << 40)
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout!r}")
        self.timeout = float(timeout)
        self.retry = GCSRetryPolicy(max_attempts, retry_base_delay, retry_max_delay)
        emulator = endpoint or os.environ.get(EMULATOR_ENV) or None
        if emulator is not None and not emulator.startswith(("http://", "https://")):
            emulator = f"http://{emulator}"
        self.endpoint = (emulator or DEFAULT_ENDPOINT).rstrip("/")
        parts = urlsplit(self.endpoint)
        if not parts.hostname or parts.username or parts.password or parts.query:
            shown = redact(self.endpoint)
            msg = f"endpoint must be an http(s) URL without credentials, got {shown!r}"
            raise ConfigurationError(msg)
        self.anonymous = (emulator is not None) if anonymous is None else bool(anonymous)
        self.project = project or os.environ.get(PROJECT_ENV) or None
        self._service_file = os.fspath(service_file) if service_file is not None else None
        self._token = token
        self._clients = _Clients(self)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> GCSStorage:
        """A GCSStorage for ``gs://bucket/prefix``; `kwargs` are the constructor's options."""
        parts = urlsplit(url)
        if parts.scheme != "gs" or not parts.netloc or parts.query or parts.fragment:
            msg = f"expected a 'gs://bucket/prefix' URL, got {url!r}"
            raise ConfigurationError(msg)
        return cls(parts.netloc, prefix=parts.path.strip("/"), **kwargs)

    def __repr__(self) -> str:
        endpoint = "" if self.endpoint == DEFAULT_ENDPOINT else f", endpoint={self.endpoint!r}"
        return f"GCSStorage({self.bucket!r}, prefix={self.prefix!r}{endpoint}, name={self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_clients"]  # clients belong to their event loops
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = _Clients(self)

    async def __aenter__(self) -> GCSStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client of the running event loop (the next call opens a new one)."""
        await self._clients.close()

    # -- calls ----------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        key: str | None,
        attempt: Callable[[_LoopClient], Awaitable[T]],
        *,
        bucket: str | None = None,
        locator: Any = None,
        passthrough: Callable[[BaseException], bool] = lambda exc: False,
    ) -> T:
        """Run `attempt(client)` in a concurrency slot, with retries."""
        client = await self._clients.get()
        bucket = bucket or self.bucket

        async def limited() -> T:
            async with client.slots:
                return await attempt(client)

        return await call_with_retries(
            limited,
            policy=self.retry,
            operation=operation,
            where=f"gs://{bucket}/{key}" if key else f"gs://{bucket}",
            locator=locator if locator is not None else {"bucket": bucket, "key": key},
            passthrough=passthrough,
        )

    async def _request(
        self,
        client: _LoopClient,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP request on the client's session (for what gcloud-aio-storage has no
        call for: resumable chunks, generation-pinned ranges, bucket creation)."""
        sent = await self._auth(client)
        sent.update(headers or {})
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with client.session.request(
            method,
            url,
            params=dict(params or {}),
            headers=sent,
            data=data,
            allow_redirects=False,  # 308 is "resume incomplete" here, not a redirect
            timeout=timeout,
        ) as response:
            body = await response.read()
            if response.status not in expect:
                raise GCSHTTPError(response.status, body.decode(errors="replace"))
            return response.status, response.headers, body

    async def _auth(self, client: _LoopClient) -> dict[str, str]:
        if self.anonymous:
            return {}
        return {"Authorization": f"Bearer {await client.api.token.get()}"}

    def _object_url(self, key: str, bucket: str | None = None) -> str:
        return f"{self.endpoint}/storage/v1/b/{bucket or self.bucket}/o/{quote(key, safe='')}"

    async def create_bucket(self) -> None:
        """Create the bucket (for tests and examples); an existing one is fine."""

        async def attempt(client: _LoopClient) -> None:
            await self._request(
                client,
                "POST",
                f"{self.endpoint}/storage/v1/b",
                params={"project": self.project or "lakery"},
                headers={"Content-Type": "application/json"},
                data=json.dumps({"name": self.bucket}),
                expect=(200, 409),
            )

        await self._call("CreateBucket", None, attempt)

    # -- writing --------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        key = content_key(self.prefix, sha256)
        if 0 < size <= self.single_put_size:
            body = await joined(data, size)
            if len(body) != size:
                msg = f"put_value got {len(body)} bytes but was told size={size}"
                raise StorageError(msg)

            async def write() -> None:
                await self._upload(key, body)

        else:

            async def write() -> None:
                # (also the empty value: gcp-storage-emulator drops an empty media upload)
                resource = await self._resumable(key, regroup(_buffers(data), self.chunk_size))
                _check_size(resource, size, f"gs://{self.bucket}/{key}")

        await self._write_once(key, size, write)
        return {"bucket": self.bucket, "key": key}

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        async with contextlib.aclosing(regroup(stream, self.chunk_size)) as chunks:
            first = await anext(chunks, None)
            if first is None or len(first) < self.chunk_size:  # the stream has ended
                body = [first] if first is not None else []
                return await self.put_value(body, size=stream.size, sha256=stream.sha256, tags=tags)
            temporary = f"{self._base()}{UPLOADS}/{uuid.uuid4().hex}"
            resource = await self._resumable(temporary, _prepend(first, chunks))
        del first
        try:
            key = content_key(self.prefix, stream.sha256)
            size = stream.size
            _check_size(resource, size, f"gs://{self.bucket}/{temporary}")
            generation = str(resource.get("generation") or "")

            async def write() -> None:
                await self._rewrite(temporary, generation, key)

            if not await self._refresh(key, size):
                await self._write_once(key, size, write)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                with contextlib.suppress(Exception):
                    await self._delete_object(temporary, generation=resource.get("generation"))
        return {"bucket": self.bucket, "key": key}

    async def _write_once(self, key: str, size: int, write: Callable[[], Awaitable[None]]) -> None:
        """`write()` the object, unless it exists already (then refresh it instead)."""
        for _ in range(3):
            try:
                await write()
                return
            except GCSHTTPError as exc:
                if not _exists(exc):
                    raise
            except aiohttp.ClientResponseError as exc:
                if not _exists(exc):
                    raise
            if await self._refresh(key, size):
                return
            # deleted between the failed write and the refresh (garbage collection): again
        msg = f"gs://{self.bucket}/{key} keeps appearing and disappearing; write it again"
        raise StorageError(msg)

    async def _upload(self, key: str, body: bytes | bytearray | memoryview) -> None:
        """One upload request that creates `key` only if it does not exist."""

        async def attempt(client: _LoopClient) -> None:
            await client.api.upload(
                self.bucket,
                key,
                io.BytesIO(body),
                content_type=_OCTETS,
                parameters={"ifGenerationMatch": "0"},
                force_resumable_upload=False,  # never the client's own retrying upload
                timeout=int(self.timeout),
            )

        await self._call("Upload", key, attempt, passthrough=_exists)

    async def _resumable(self, name: str, chunks: AsyncIterator[bytes]) -> dict[str, Any]:
        """A resumable upload of `chunks` (each `chunk_size` bytes but the last) to a new
        object `name` (``ifGenerationMatch=0``); its resource once finalized. On any
        error or cancellation the upload session is cancelled."""

        async def initiate(client: _LoopClient) -> str:
            _status, headers, _body = await self._request(
                client,
                "POST",
                f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o",
                params={"uploadType": "resumable", "name": name, "ifGenerationMatch": "0"},
                headers={
                    "Content-Type": "application/json; charset=UTF-8",
                    "X-Upload-Content-Type": _OCTETS,
                },
                data=json.dumps({"name": name, "contentType": _OCTETS}),
            )
            location = headers.get("Location")
            if not location:
                raise StorageError(f"GCS gave no upload session for gs://{self.bucket}/{name}")
            return location

        session = await self._call("StartResumableUpload", name, initiate)
        upload = _ResumableUpload(self, name, session)
        try:
            chunk = await anext(chunks, None)
            if chunk is None:
                return await upload.send(b"", final=True)
            while chunk is not None:
                following = await anext(chunks, None)
                resource = await upload.send(chunk, final=following is None)
                chunk = following
            return resource
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await upload.cancel()
            raise

    async def _rewrite(self, source: str, generation: str, key: str) -> None:
        """Copy `source` (at `generation`) to a new object `key`, server-side."""
        url = f"{self._object_url(source)}/rewriteTo/b/{self.bucket}/o/{quote(key, safe='')}"
        params = {"ifGenerationMatch": "0"}
        if generation:
            params["ifSourceGenerationMatch"] = generation
        while True:

            async def attempt(client: _LoopClient, params: dict[str, str] = params) -> Any:
                _status, _headers, body = await self._request(client, "POST", url, params=params)
                return json.loads(body or b"{}")

            answer = await self._call("Rewrite", key, attempt, passthrough=_exists)
            if answer.get("done", True):
                return
            params = {**params, "rewriteToken": str(answer["rewriteToken"])}

    async def _refresh(self, key: str, size: int) -> bool:
        """Whether `key` holds `size` bytes already; if so, mark it as reused (a metadata
        update, which gives it a new metageneration and ``updated`` time)."""

        async def attempt(client: _LoopClient) -> bool:
            try:
                metadata = await client.api.download_metadata(
                    self.bucket, key, timeout=int(self.timeout)
                )
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    return False
                raise
            if int(metadata.get("size", -1)) != size:
                msg = (
                    f"gs://{self.bucket}/{key} holds {metadata.get('size')} bytes, not the "
                    f"{size} of its content; delete it and save again"
                )
                raise StorageError(msg)
            try:
                await client.api.patch_metadata(
                    self.bucket,
                    key,
                    {"metadata": {REUSED_KEY: _utc_now().isoformat()}},
                    timeout=int(self.timeout),
                )
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        found = await self._call("PatchObject", key, attempt)
        if found:
            logger.debug("gs://%s/%s is stored already: marked as reused", self.bucket, key)
        return found

    async def _delete_object(
        self, key: str, *, generation: Any = None, metageneration: Any = None
    ) -> bool:
        """Delete `key` (if still at that generation/metageneration); whether it was."""
        params: dict[str, str] = {}
        if generation:
            params["ifGenerationMatch"] = str(generation)
        if metageneration:
            params["ifMetagenerationMatch"] = str(metageneration)

        async def attempt(client: _LoopClient) -> bool:
            try:
                await client.api.delete(self.bucket, key, params=params, timeout=int(self.timeout))
            except aiohttp.ClientResponseError as exc:
                if exc.status in (404, 412):
                    return False
                raise
            return True

        return await self._call("DeleteObject", key, attempt)

    # -- reading --------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        bucket, key = locator_parts(locator)

        async def attempt(client: _LoopClient) -> bytes:
            data: bytes = await client.api.download(bucket, key, timeout=int(self.timeout))
            return data

        data = await self._call("Download", key, attempt, bucket=bucket, locator=locator)
        await _check_hash(data, key, f"gs://{bucket}/{key}")
        return data

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        bucket, key = locator_parts(locator)

        async def attempt(client: _LoopClient) -> dict[str, Any]:
            metadata: dict[str, Any] = await client.api.download_metadata(
                bucket, key, timeout=int(self.timeout)
            )
            return metadata

        metadata = await self._call("GetObject", key, attempt, bucket=bucket, locator=locator)
        size = int(metadata.get("size", 0))
        return _ObjectReader(self, locator, bucket, key, size, str(metadata.get("generation", "")))

    async def delete(self, locator: Locator) -> None:
        bucket, key = locator_parts(locator)

        async def attempt(client: _LoopClient) -> None:
            try:
                await client.api.delete(bucket, key, timeout=int(self.timeout))
            except aiohttp.ClientResponseError as exc:
                if exc.status != 404:
                    raise

        await self._call("DeleteObject", key, attempt, bucket=bucket, locator=locator)

    def uri(self, locator: Locator) -> str | None:
        bucket, key = locator_parts(locator)
        return f"gs://{bucket}/{key}"

    # -- maintenance (garbage collection) -------------------------------------------------

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        page_token = ""
        while True:

            async def attempt(client: _LoopClient, token: str = page_token) -> dict[str, Any]:
                params = {"prefix": prefix}
                if token:
                    params["pageToken"] = token
                page: dict[str, Any] = await client.api.list_objects(
                    self.bucket, params=params, timeout=int(self.timeout)
                )
                return page

            page = await self._call("ListObjects", prefix, attempt)
            for item in page.get("items") or []:
                yield item
            page_token = str(page.get("nextPageToken") or "")
            if not page_token:
                return

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every object at a content address under ``<prefix>/sha256/`` (page by page);
        its time is when it was last written or marked as reused."""
        base = f"{self._base()}sha256/"
        async for item in self._list(base):
            name = str(item.get("name", ""))
            fan, _, sha256 = name[len(base) :].partition("/")
            if not _SHA256.match(sha256) or fan != sha256[:2]:
                continue
            locator = {"bucket": self.bucket, "key": name}
            yield BlobInfo(locator, sha256, int(item.get("size", 0)), _modified(item))

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """Delete the object if it was still last written (or reused) before `older_than`:
        read its metadata, then delete it conditional on the generation and metageneration
        seen. A save that reused it in between changed its metageneration, so the delete
        fails and the object stays."""
        bucket, key = locator_parts(blob.locator)
        if bucket != self.bucket or not key.startswith(f"{self._base()}sha256/"):
            msg = f"{blob.locator!r} is not a blob of {self!r}"
            raise StorageError(msg)

        async def attempt(client: _LoopClient) -> dict[str, Any] | None:
            try:
                metadata: dict[str, Any] = await client.api.download_metadata(
                    bucket, key, timeout=int(self.timeout)
                )
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    return None
                raise
            return metadata

        metadata = await self._call("GetObject", key, attempt, locator=blob.locator)
        if metadata is None or _modified(metadata) >= older_than:
            return False
        generation, metageneration = metadata.get("generation"), metadata.get("metageneration")
        return await self._delete_object(key, generation=generation, metageneration=metageneration)

    async def delete_leftovers(self, *, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Delete the temporary objects under ``<prefix>/uploads/`` of streams whose
        process died between their upload and their rewrite, if older than `older_than`."""
        removed: list[str] = []
        async for item in self._list(f"{self._base()}{UPLOADS}/"):
            if _modified(item) >= older_than:
                continue
            name = str(item["name"])
            if dry_run or await self._delete_object(name, generation=item.get("generation")):
                removed.append(f"gs://{self.bucket}/{name}")
        return removed

    def _base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""


class _ResumableUpload:
    """One resumable upload session: chunks sent in order, each retried from the first
    byte GCS reports as persisted (a status query after a failure)."""

    def __init__(self, storage: GCSStorage, name: str, session: str) -> None:
        self._storage = storage
        self._name = name
        self._session = session
        self._offset = 0

    async def send(self, chunk: bytes, *, final: bool) -> dict[str, Any]:
        storage = self._storage
        start = self._offset
        end = start + len(chunk)
        total = str(end) if final else "*"
        failed = False

        async def attempt(client: _LoopClient) -> dict[str, Any]:
            nonlocal failed
            committed = start
            try:
                if failed:
                    committed, finished = await self._query(client, total)
                    if finished is not None:
                        return finished
                    committed = max(start, min(committed, end))
                    if committed == end and not final:
                        return {}
                body = memoryview(chunk)[committed - start :]
                if body.nbytes:
                    content_range = f"bytes {committed}-{end - 1}/{total}"
                else:
                    content_range = f"bytes */{total}"
                status, _headers, answer = await storage._request(
                    client,
                    "PUT",
                    self._session,
                    headers={"Content-Range": content_range},
                    data=bytes(body),
                    expect=(200, 201) if final else (308,),
                )
            except Exception:
                failed = True
                raise
            return json.loads(answer) if status in (200, 201) else {}

        resource = await storage._call("UploadChunk", self._name, attempt, passthrough=_exists)
        self._offset = end
        return resource

    async def _query(self, client: _LoopClient, total: str) -> tuple[int, dict[str, Any] | None]:
        """How many bytes GCS has persisted (and the resource if the upload is done)."""
        status, headers, answer = await self._storage._request(
            client,
            "PUT",
            self._session,
            headers={"Content-Range": f"bytes */{total}"},
            expect=(200, 201, 308),
        )
        if status in (200, 201):
            return 0, json.loads(answer)
        match = re.fullmatch(r"bytes=0-(\d+)", headers.get("Range", "").strip())
        committed = int(match[1]) + 1 if match else 0
        # GCS persists whole 256 KiB quanta of an unfinished upload. gcp-storage-emulator
        # answers "bytes=0-0" when it has nothing at all: a count off the quantum is
        # rounded down (resending bytes it has already is harmless; skipping is not).
        return committed - committed % CHUNK_QUANTUM, None

    async def cancel(self) -> None:
        """Cancel the session (GCS answers 499); what was sent is discarded."""
        storage = self._storage
        with contextlib.suppress(Exception):
            client = await storage._clients.get()
            await storage._request(
                client, "DELETE", self._session, expect=(200, 204, 404, 410, 499)
            )


# -- clients ------------------------------------------------------------------------------


@dataclass(eq=False)
class _LoopClient:
    loop: asyncio.AbstractEventLoop
    api: Any  # gcloud.aio.storage.Storage
    session: aiohttp.ClientSession
    slots: anyio.Semaphore
    closed: bool = False
    keeper: AsyncGenerator[None, None] | None = None


class _Clients:
    """One gcloud-aio-storage client per event loop (an aiohttp session belongs to its
    loop), created on first use and closed by `close()` or when the loop shuts down."""

    def __init__(self, storage: GCSStorage) -> None:
        self._storage = storage
        self._clients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._lock = threading.Lock()

    async def get(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            for dead in [other for other in self._clients if other.is_closed()]:
                del self._clients[dead]
            current = self._clients.get(loop)
        if current is not None and not current.closed:
            return current
        current = self._open(loop)
        keeper = _close_at_shutdown(current)
        await keeper.__anext__()
        current.keeper = keeper
        with self._lock:
            existing = self._clients.get(loop)
            if existing is not None and not existing.closed:  # made meanwhile: keep one
                await keeper.aclose()
                return existing
            self._clients[loop] = current
        return current

    def _open(self, loop: asyncio.AbstractEventLoop) -> _LoopClient:
        from gcloud.aio.storage import Storage as Client

        storage = self._storage
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=storage.max_concurrency + 4),
            auto_decompress=False,
        )
        try:
            api = Client(
                service_file=storage._service_file,
                token=storage._token,
                session=cast(Any, session),  # typed as the client's aiohttp alias
                api_root=storage.endpoint,
                api_is_dev=storage.anonymous,
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                loop.create_task(session.close())
            msg = f"cannot create the GCS client of {storage!r} ({describe(exc)})"
            raise ConfigurationError(msg) from None
        return _LoopClient(
            loop=loop, api=api, session=session, slots=anyio.Semaphore(storage.max_concurrency)
        )

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = list(self._clients.items())
            self._clients.clear()
        for owner, client in clients:
            if owner is loop and client.keeper is not None:
                await client.keeper.aclose()
            elif not owner.is_closed() and owner.is_running() and client.keeper is not None:
                asyncio.run_coroutine_threadsafe(client.keeper.aclose(), owner)


async def _close_at_shutdown(client: _LoopClient) -> AsyncGenerator[None, None]:
    """Suspended for the client's life; finalized by `close()` or the loop's shutdown."""
    try:
        yield
    finally:
        client.closed = True
        with anyio.CancelScope(shield=True):
            await client.api.close()
            if not client.session.closed:
                await client.session.close()


# -- reads ------------------------------------------------------------------------------


class _ObjectReader:
    """A streamed read: ranged GETs of `read_chunk_size` bytes, each pinned to the
    generation seen when the read was opened, resumed from the first byte not yet
    returned after a break; the bytes are checked against the sha256 of the address."""

    def __init__(
        self,
        storage: GCSStorage,
        locator: Locator,
        bucket: str,
        key: str,
        size: int,
        generation: str,
    ) -> None:
        self._storage = storage
        self._locator = locator
        self._bucket = bucket
        self._key = key
        self._where = f"gs://{bucket}/{key}"
        self._size = size
        self._generation = generation
        self._offset = 0
        self._hasher = hashlib.sha256()
        self._done = False

    def __aiter__(self) -> _ObjectReader:
        return self

    async def __anext__(self) -> Buffer:
        if self._done:
            raise StopAsyncIteration
        if self._offset >= self._size:
            self._done = True
            if self._hasher.hexdigest() != self._key.rsplit("/", 1)[1]:
                raise StorageError(_damaged(self._where))
            raise StopAsyncIteration
        storage = self._storage
        length = min(storage.read_chunk_size, self._size - self._offset)
        offset = self._offset
        params = {"alt": "media"}
        if self._generation:
            params["ifGenerationMatch"] = self._generation

        async def attempt(client: _LoopClient) -> bytes:
            try:
                _status, _headers, data = await storage._request(
                    client,
                    "GET",
                    storage._object_url(self._key, self._bucket),
                    params=params,
                    headers={"Range": f"bytes={offset}-{offset + length - 1}"},
                    expect=(200, 206),
                )
            except GCSHTTPError as exc:
                if exc.status != 412:
                    raise
                msg = (
                    f"{self._where} changed while it was being read (at byte {offset} of "
                    f"{self._size}); read it again"
                )
                raise StorageError(msg) from None
            if len(data) != length:
                raise ConnectionError(f"got {len(data)} of {length} bytes")
            return data

        chunk = await storage._call(
            "Download", self._key, attempt, bucket=self._bucket, locator=self._locator
        )
        if len(chunk) > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(self._hasher.update, chunk)
        else:
            self._hasher.update(chunk)
        self._offset += len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._done = True


def _damaged(where: str) -> str:
    return f"{where} does not hold the content of its address (sha256 mismatch)"


async def _check_hash(data: bytes, key: str, where: str) -> None:
    if len(data) > THREAD_THRESHOLD:
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
    else:
        digest = hashlib.sha256(data).hexdigest()
    if digest != key.rsplit("/", 1)[1]:
        raise StorageError(_damaged(where))


def _check_size(resource: Mapping[str, Any], size: int, where: str) -> None:
    if int(resource.get("size", -1)) != size:
        msg = f"the upload of {where} stored {resource.get('size')} bytes, not {size}"
        raise StorageError(msg)


def _modified(item: Mapping[str, Any]) -> datetime:
    """When an object was last written or marked as reused: its ``updated`` time, or the
    ``lakery_reused`` entry of its metadata if later (a metadata update changes
    ``updated`` on GCS, but not on gcp-storage-emulator)."""
    times = [_parse_time(item.get("updated")) or datetime(1970, 1, 1, tzinfo=UTC)]
    reused = _parse_time((item.get("metadata") or {}).get(REUSED_KEY))
    if reused is not None:
        times.append(reused)
    return max(times)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- layout -------------------------------------------------------------------------------


def check_bucket(bucket: object) -> str:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket) or ".." in bucket:
        msg = (
            f"invalid GCS bucket name {bucket!r}: use 3-63 lowercase letters, digits, '-', "
            "'_' and '.', starting and ending with a letter or digit"
        )
        raise ConfigurationError(msg)
    return bucket


def locator_parts(locator: Any) -> tuple[str, str]:
    """The bucket and object name of a locator, after checking them."""
    return object_locator_parts(
        locator, storage="GCSStorage", place="bucket", check_place=check_bucket, rules=PREFIX_RULES
    )


# -- helpers ------------------------------------------------------------------------------


def _bounded(option: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{option} must be an int from {low} to {high}, got {value!r}"
        raise ConfigurationError(msg)
    return value


async def _buffers(data: Sequence[Buffer]) -> AsyncIterator[Buffer]:
    for buffer in data:
        yield buffer


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _utc_now() -> datetime:
    return datetime.now(UTC)
