"""`AzureBlobStorage`: content-addressed block blobs in an Azure Blob Storage container."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import os
import re
import tempfile
import threading
import uuid
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import IO
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.core.exceptions import ResourceModifiedError
from azure.core.exceptions import ResourceNotFoundError

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.core.errors import raise_first
from lakery.core.serializer import Buffer
from lakery.core.storage import THREAD_THRESHOLD
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.extra.azure.retry import AzureRetryPolicy
from lakery.extra.azure.retry import call_with_retries
from lakery.extra.azure.retry import describe
from lakery.extra.azure.retry import redact
from lakery.extra.azure.retry import translate_error
from lakery.extra.object_store import PrefixRules
from lakery.extra.object_store import content_key
from lakery.extra.object_store import iter_buffers
from lakery.extra.object_store import joined
from lakery.extra.object_store import locator_parts as object_locator_parts
from lakery.extra.object_store import regroup

__all__ = ["AzureBlobStorage"]

logger = logging.getLogger("lakery.extra.azure")

T = TypeVar("T")
MiB = 1 << 20
MAX_BLOCKS = 50_000
"""Azure's limit on the committed blocks of one block blob."""
MAX_BLOCK_SIZE = 4000 * MiB
CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_URL_ENV = "AZURE_STORAGE_ACCOUNT_URL"
ACCOUNT_NAME_ENV = "AZURE_STORAGE_ACCOUNT"
REUSED_KEY = "lakery_reused"
"""Blob metadata entry set when a save finds its content stored already (refreshing the
blob's Last-Modified and ETag, for garbage collection)."""
CLEANUP_TIMEOUT = 60.0

_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX_RULES = PrefixRules("Azure blob name prefix", max_length=800, in_bytes=False)
_OCTETS = "application/octet-stream"


class AzureBlobStorage(Storage):
    """Content-addressed block blobs in an Azure Blob Storage container, on the Azure SDK's
    async client (``azure-storage-blob``'s ``aio`` API, over aiohttp).

    Layout: each blob is stored once under ``<prefix>/sha256/<ab>/<sha256>``; its locator
    is ``{"container": ..., "key": ...}`` (the account is the storage's, never recorded).

    Credentials, in this order: `connection_string`; the ``AZURE_STORAGE_CONNECTION_STRING``
    environment variable; else `account_url` (or ``AZURE_STORAGE_ACCOUNT_URL``, or the
    account named by ``AZURE_STORAGE_ACCOUNT``) with `credential`, by default
    ``azure.identity.aio.DefaultAzureCredential`` (environment, workload and managed
    identity, Azure CLI login, ...). They never appear in locators, records, logs, reprs,
    blob metadata or error messages.

    Writes never overwrite: every write is conditional on the blob not existing
    (``If-None-Match: *``). A write that finds its content stored already sets the
    ``lakery_reused`` metadata entry instead, which refreshes the blob's Last-Modified and
    ETag, so that garbage collection spares it until the save commits.

    - A value up to `single_put_size` is one Put Blob; a larger one is staged in
      `block_size` blocks (at most `upload_concurrency` in flight) and committed with one
      Put Block List.
    - A stream's hash is known only at its end, and a blob cannot be renamed. A stream
      that ends within its first block is one Put Blob. A longer one is spooled: written
      to an anonymous local file in `stream_spool_dir` while it is hashed, then staged
      from that file in blocks to its content address and committed (or, if that content
      is stored already, only refreshed). The spool file is deleted in every case (the
      operating system reclaims it even if the process dies), so the stream needs as much
      free disk space as it is long. Blocks staged by a write that failed stay
      uncommitted, invisible, and are discarded by Azure after a week.

    Reads: `get_value` is one ranged download; `get_stream` checks that the blob exists
    first (so a missing blob raises `NotFoundError` before iteration), then downloads it
    in `read_chunk_size` ranges, each conditional on the ETag it saw (``If-Match``), and
    resumes a transfer that broke off from the first byte not yet read. Both check the
    bytes against the sha256 of the content address and raise `StorageError` when they
    differ (or when the blob changed meanwhile).

    Calls are limited to `max_concurrency` at a time per event loop and retried with
    exponential backoff and jitter on throttling (503, 429), 5xx answers and broken
    connections. One client per event loop, created on first use; ``await
    storage.close()`` or ``async with storage:`` releases it.

    Args:
        container: the container to write to (3-63 lowercase letters, digits and '-').
        prefix: blob name prefix, e.g. ``"teams/ml/lakery"`` (no leading ``/``, no ``..``).
        name: the component name, to register several Azure storages side by side.
        connection_string: an account connection string (e.g. Azurite's).
        account_url: ``https://<account>.blob.core.windows.net``, with `credential`.
        credential: anything the SDK takes as a credential (an async token credential, a
            SAS token, an account key); default ``DefaultAzureCredential()``.
        block_size: bytes per staged block (1 MiB to 4000 MiB).
        single_put_size: values up to this are one Put Blob.
        upload_concurrency: blocks of one write staged at the same time.
        max_concurrency: calls in flight at once (per event loop).
        read_chunk_size: bytes per ranged GET of a streamed read, and the largest chunk
            it yields.
        stream_spool_dir: the directory of spool files; None: the system's temporary one.
        max_attempts: attempts per call (see `AzureRetryPolicy`).
        retry_base_delay: seconds; the cap of the first wait between attempts.
        retry_max_delay: seconds; no wait between attempts is longer.
    """

    name = "lakery.azure.blob@v1"

    def __init__(
        self,
        container: str,
        *,
        prefix: str = "",
        name: str | None = None,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        block_size: int = 8 * MiB,
        single_put_size: int = 64 * MiB,
        upload_concurrency: int = 4,
        max_concurrency: int = 10,
        read_chunk_size: int = 4 * MiB,
        stream_spool_dir: str | os.PathLike[str] | None = None,
        max_attempts: int = 5,
        retry_base_delay: float = 0.1,
        retry_max_delay: float = 20.0,
    ) -> None:
        super().__init__(name=name)
        self.container = check_container(container)
        self.prefix = PREFIX_RULES.check(prefix)
        self.block_size = _bounded("block_size", block_size, MiB, MAX_BLOCK_SIZE)
        self.single_put_size = _bounded("single_put_size", single_put_size, 0, 5000 * MiB)
        self.upload_concurrency = _bounded("upload_concurrency", upload_concurrency, 1, 1000)
        self.max_concurrency = _bounded("max_concurrency", max_concurrency, 1, 10_000)
        self.read_chunk_size = _bounded("read_chunk_size", read_chunk_size, 4096, 4000 * MiB)
        self.stream_spool_dir = os.fspath(stream_spool_dir) if stream_spool_dir else None
        self.retry = AzureRetryPolicy(max_attempts, retry_base_delay, retry_max_delay)
        self._connection = _Connection.resolve(connection_string, account_url, credential)
        self._clients = _Clients(self)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AzureBlobStorage:
        """An AzureBlobStorage for ``az://container/prefix``; `kwargs` are the constructor's
        options (the account comes from them or from the environment)."""
        parts = urlsplit(url)
        if parts.scheme != "az" or not parts.netloc or parts.query or parts.fragment:
            msg = f"expected an 'az://container/prefix' URL, got {url!r}"
            raise ConfigurationError(msg)
        return cls(parts.netloc, prefix=parts.path.strip("/"), **kwargs)

    def __repr__(self) -> str:
        return (
            f"AzureBlobStorage({self.container!r}, prefix={self.prefix!r}, "
            f"account={self._connection.account!r}, name={self.name!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_clients"]  # clients belong to their event loops
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = _Clients(self)

    async def __aenter__(self) -> AzureBlobStorage:
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
        attempt: Callable[[Any], Awaitable[T]],
        *,
        container: str | None = None,
        locator: Any = None,
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> T:
        """Run `attempt(container_client)` in a concurrency slot, with retries."""
        client = await self._clients.get()
        container = container or self.container
        if container != self.container:
            target = client.service.get_container_client(container)
        else:
            target = client.container

        async def limited() -> T:
            async with client.slots:
                return await attempt(target)

        where = f"az://{container}/{key}" if key else f"az://{container}"
        return await call_with_retries(
            limited,
            policy=self.retry,
            operation=operation,
            where=where,
            locator=locator if locator is not None else {"container": container, "key": key},
            secrets=self._connection.secrets,
            passthrough=passthrough,
        )

    async def create_container(self) -> None:
        """Create the container (for tests and examples); an existing one is fine."""

        async def attempt(container: Any) -> None:
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()

        await self._call("CreateContainer", None, attempt)

    # -- writing --------------------------------------------------------------------------

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        key = content_key(self.prefix, sha256)
        if size <= self.single_put_size:
            body = await joined(data, size)
            if len(body) != size:
                msg = f"put_value got {len(body)} bytes but was told size={size}"
                raise StorageError(msg)

            async def write() -> None:
                await self._put_blob(key, body)

        else:
            piece = max(self.block_size, math.ceil(size / MAX_BLOCKS))

            async def write() -> None:
                await self._put_blocks(key, iter_buffers(data, piece))

        await self._write_once(key, size, write)
        return {"container": self.container, "key": key}

    async def put_stream(self, stream: HashingStream, *, tags: Mapping[str, str]) -> Locator:
        async with contextlib.aclosing(regroup(stream, self.block_size)) as blocks:
            first = await anext(blocks, None)
            if first is None or len(first) < self.block_size:  # the stream has ended
                body = [first] if first is not None else []
                return await self.put_value(body, size=stream.size, sha256=stream.sha256, tags=tags)
            spool = await _Spool.create(self.stream_spool_dir)
            try:
                block: bytes | None = first
                del first
                while block is not None:
                    await spool.append(block)
                    block = await anext(blocks, None)
                key = content_key(self.prefix, stream.sha256)
                size = spool.size
                piece = max(self.block_size, math.ceil(size / MAX_BLOCKS))

                async def write() -> None:
                    await self._put_blocks(key, spool.blocks(piece))

                if not await self._refresh(key, size):
                    await self._write_once(key, size, write)
            finally:
                await spool.close()
        return {"container": self.container, "key": key}

    async def _write_once(self, key: str, size: int, write: Callable[[], Awaitable[None]]) -> None:
        """`write()` the blob, unless it exists already (then refresh it instead)."""
        for _ in range(3):
            try:
                await write()
                return
            except ResourceExistsError:
                pass
            if await self._refresh(key, size):
                return
            # deleted between the failed write and the refresh (garbage collection): again
        msg = f"az://{self.container}/{key} keeps appearing and disappearing; write it again"
        raise StorageError(msg)

    async def _put_blob(self, key: str, body: bytes | bytearray) -> None:
        from azure.storage.blob import ContentSettings

        async def attempt(container: Any) -> None:
            await container.get_blob_client(key).upload_blob(
                body,
                length=len(body),
                overwrite=False,  # If-None-Match: *
                content_settings=ContentSettings(content_type=_OCTETS),
            )

        await self._call("PutBlob", key, attempt, passthrough=(ResourceExistsError,))

    async def _put_blocks(self, key: str, blocks: AsyncIterator[Buffer]) -> None:
        """Stage `blocks` on `key` (`upload_concurrency` at a time), then commit them if
        the blob does not exist (``If-None-Match: *``)."""
        from azure.storage.blob import BlobBlock
        from azure.storage.blob import ContentSettings

        upload = uuid.uuid4().hex
        ids: list[str] = []
        slots = anyio.Semaphore(self.upload_concurrency)

        async def stage(block_id: str, body: Buffer) -> None:
            try:

                async def attempt(container: Any) -> None:
                    blob = container.get_blob_client(key)
                    await blob.stage_block(block_id, bytes(body), length=len(body))

                await self._call("PutBlock", key, attempt)
            finally:
                slots.release()

        try:
            async with anyio.create_task_group() as group:
                while True:
                    await slots.acquire()  # read the next block only when it can be sent
                    body = await anext(blocks, None)
                    if body is None:
                        slots.release()
                        break
                    if len(ids) >= MAX_BLOCKS:
                        msg = f"more than {MAX_BLOCKS} blocks: raise AzureBlobStorage(block_size)"
                        raise StorageError(msg)
                    block_id = base64.b64encode(f"{upload}-{len(ids):06d}".encode()).decode()
                    ids.append(block_id)
                    group.start_soon(stage, block_id, body)
                    del body
        except BaseExceptionGroup as group_error:
            raise_first(group_error)

        async def commit(container: Any) -> None:
            await container.get_blob_client(key).commit_block_list(
                [BlobBlock(block_id) for block_id in ids],
                content_settings=ContentSettings(content_type=_OCTETS),
                match_condition=MatchConditions.IfMissing,
            )

        await self._call("PutBlockList", key, commit, passthrough=(ResourceExistsError,))

    async def _refresh(self, key: str, size: int) -> bool:
        """Whether `key` holds `size` bytes already; if so, mark it as reused (a metadata
        write, which gives it a new Last-Modified and ETag)."""

        async def attempt(container: Any) -> bool:
            blob = container.get_blob_client(key)
            try:
                properties = await blob.get_blob_properties()
            except ResourceNotFoundError:
                return False
            if properties.size != size:
                msg = (
                    f"az://{self.container}/{key} holds {properties.size} bytes, not the "
                    f"{size} of its content; delete it and save again"
                )
                raise StorageError(msg)
            try:
                await blob.set_blob_metadata({REUSED_KEY: _utc_now().isoformat()})
            except ResourceNotFoundError:
                return False
            return True

        found = await self._call("SetBlobMetadata", key, attempt)
        if found:
            logger.debug("az://%s/%s is stored already: marked as reused", self.container, key)
        return found

    # -- reading --------------------------------------------------------------------------

    async def get_value(self, locator: Locator) -> Buffer:
        container, key = locator_parts(locator)

        async def attempt(client: Any) -> tuple[bytes, str]:
            downloader = await client.get_blob_client(key).download_blob(max_concurrency=1)
            return await downloader.readall(), str(downloader.properties.etag)

        data, _etag = await self._call(
            "GetBlob", key, attempt, container=container, locator=locator
        )
        await _check_hash(data, key, f"az://{container}/{key}")
        return data

    async def get_stream(self, locator: Locator) -> AsyncIterator[Buffer]:
        container, key = locator_parts(locator)

        async def attempt(client: Any) -> Any:
            return await client.get_blob_client(key).get_blob_properties()

        properties = await self._call(
            "GetBlobProperties", key, attempt, container=container, locator=locator
        )
        return _BlobReader(self, locator, container, key, properties.size, properties.etag)

    async def delete(self, locator: Locator) -> None:
        container, key = locator_parts(locator)

        async def attempt(client: Any) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                await client.get_blob_client(key).delete_blob()

        with contextlib.suppress(NotFoundError):  # no container: no blob either
            await self._call("DeleteBlob", key, attempt, container=container, locator=locator)

    def uri(self, locator: Locator) -> str | None:
        container, key = locator_parts(locator)
        return f"az://{container}/{key}"

    # -- maintenance (garbage collection) -------------------------------------------------

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every blob at a content address under ``<prefix>/sha256/`` (List Blobs, page by
        page); Last-Modified is when it was last written or marked as reused."""
        base = self._content_base()
        client = await self._clients.get()
        pages = client.container.list_blobs(name_starts_with=base).by_page()
        while True:
            try:
                async with client.slots:
                    page = await anext(pages, None)
                    items = [] if page is None else [item async for item in page]
            except Exception as exc:
                raise translate_error(
                    exc,
                    operation="ListBlobs",
                    where=f"az://{self.container}/{base}",
                    secrets=self._connection.secrets,
                ) from None
            if page is None:
                return
            for item in items:
                name = item.name
                fan, _, sha256 = name[len(base) :].partition("/")
                if not _SHA256.match(sha256) or fan != sha256[:2]:
                    continue
                locator = {"container": self.container, "key": name}
                yield BlobInfo(locator, sha256, int(item.size), _utc(item.last_modified))

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """Delete the blob if its Last-Modified is still before `older_than`: Get Blob
        Properties, then Delete Blob conditional on the ETag it saw (``If-Match``). A save
        that reused the blob in between changed its ETag, so the delete fails and the blob
        stays: there is no window in which a reused blob can be deleted."""
        container, key = locator_parts(blob.locator)
        if container != self.container or not key.startswith(self._content_base()):
            msg = f"{blob.locator!r} is not a blob of {self!r}"
            raise StorageError(msg)

        async def attempt(client: Any) -> bool:
            target = client.get_blob_client(key)
            try:
                properties = await target.get_blob_properties()
                if _utc(properties.last_modified) >= older_than:
                    return False
                await target.delete_blob(
                    etag=properties.etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceNotFoundError, ResourceModifiedError):
                return False
            return True

        return await self._call("DeleteBlob", key, attempt, locator=blob.locator)

    def _content_base(self) -> str:
        return f"{self.prefix}/sha256/" if self.prefix else "sha256/"


# -- connection and clients -------------------------------------------------------------


@dataclass(frozen=True)
class _Connection:
    """Where the account is and how to authenticate (never shown)."""

    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    credential: Any = field(default=None, repr=False)
    account: str | None = None

    @classmethod
    def resolve(
        cls, connection_string: str | None, account_url: str | None, credential: Any
    ) -> _Connection:
        if connection_string is None and account_url is None:
            connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
        if connection_string is not None:
            fields = _connection_fields(connection_string)
            account = fields.get("accountname")
            if not account and not fields.get("blobendpoint"):
                msg = (
                    "the Azure connection string names no AccountName or BlobEndpoint "
                    "(its contents are not shown)"
                )
                raise ConfigurationError(msg)
            return cls(connection_string=connection_string, account=account)
        account_url = account_url or os.environ.get(ACCOUNT_URL_ENV) or None
        if account_url is None and os.environ.get(ACCOUNT_NAME_ENV):
            account_url = f"https://{os.environ[ACCOUNT_NAME_ENV]}.blob.core.windows.net"
        if account_url is None:
            msg = (
                "AzureBlobStorage needs an account: pass connection_string= or account_url=, "
                f"or set {CONNECTION_STRING_ENV}, {ACCOUNT_URL_ENV} or {ACCOUNT_NAME_ENV}"
            )
            raise ConfigurationError(msg)
        parts = urlsplit(account_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"account_url must be an http(s) URL, got {redact(account_url)!r}"
            raise ConfigurationError(msg)
        if parts.query or parts.username or parts.password:
            msg = "account_url must not carry credentials (a SAS token): pass credential="
            raise ConfigurationError(msg)
        account = parts.hostname.split(".")[0]
        return cls(account_url=account_url, credential=credential, account=account)

    @property
    def secrets(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.connection_string:
            fields = _connection_fields(self.connection_string)
            found += [fields.get("accountkey", ""), fields.get("sharedaccesssignature", "")]
            found.append(self.connection_string)
        if isinstance(self.credential, str):
            found.append(self.credential)
        return tuple(s for s in found if s)


def _connection_fields(connection_string: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in connection_string.split(";"):
        name, sep, value = item.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


@dataclass(eq=False)
class _LoopClient:
    loop: asyncio.AbstractEventLoop
    service: Any
    container: Any
    slots: anyio.Semaphore
    credential: Any = None
    closed: bool = False
    keeper: AsyncGenerator[None, None] | None = None


class _Clients:
    """One Azure client per event loop (an aiohttp session belongs to its loop), created
    on first use and closed by `close()` or when `asyncio.run` shuts the loop down."""

    def __init__(self, storage: AzureBlobStorage) -> None:
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
        from azure.storage.blob.aio import BlobServiceClient

        storage = self._storage
        connection = storage._connection
        options: dict[str, Any] = {
            "retry_total": 0,  # retry.py retries
            "max_single_put_size": max(storage.single_put_size, 1),
            "max_block_size": storage.block_size,
            "max_single_get_size": storage.read_chunk_size,
            "max_chunk_get_size": storage.read_chunk_size,
            "user_agent": "lakery",
        }
        credential = connection.credential
        owned = None
        try:
            if connection.connection_string is not None:
                service = BlobServiceClient.from_connection_string(
                    connection.connection_string, **options
                )
            else:
                if credential is None:
                    from azure.identity.aio import DefaultAzureCredential

                    credential = owned = DefaultAzureCredential()
                service = BlobServiceClient(str(connection.account_url), credential, **options)
        except Exception as exc:
            msg = (
                f"cannot create the Azure client of {storage!r} "
                f"({describe(exc, connection.secrets)})"
            )
            raise ConfigurationError(msg) from None
        return _LoopClient(
            loop=loop,
            service=service,
            container=service.get_container_client(storage.container),
            slots=anyio.Semaphore(storage.max_concurrency),
            credential=owned,
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
            await client.service.close()
            if client.credential is not None:
                await client.credential.close()


# -- reads ------------------------------------------------------------------------------


class _BlobReader:
    """A streamed read: ranged GETs of `read_chunk_size` bytes, each conditional on the
    ETag seen when the read was opened, resumed from the first byte not yet returned
    after a break; the bytes are checked against the sha256 of the content address."""

    def __init__(
        self,
        storage: AzureBlobStorage,
        locator: Locator,
        container: str,
        key: str,
        size: int,
        etag: str,
    ) -> None:
        self._storage = storage
        self._locator = locator
        self._container = container
        self._key = key
        self._where = f"az://{container}/{key}"
        self._size = size
        self._etag = etag
        self._offset = 0
        self._hasher = hashlib.sha256()
        self._done = False

    def __aiter__(self) -> _BlobReader:
        return self

    async def __anext__(self) -> Buffer:
        if self._done:
            raise StopAsyncIteration
        if self._offset >= self._size:
            self._done = True
            if self._hasher.hexdigest() != self._key.rsplit("/", 1)[1]:
                raise StorageError(_damaged(self._where))
            raise StopAsyncIteration
        length = min(self._storage.read_chunk_size, self._size - self._offset)
        offset = self._offset

        async def attempt(client: Any) -> bytes:
            try:
                downloader = await client.get_blob_client(self._key).download_blob(
                    offset=offset,
                    length=length,
                    etag=self._etag,
                    match_condition=MatchConditions.IfNotModified,
                    max_concurrency=1,
                )
            except ResourceModifiedError:
                msg = (
                    f"{self._where} changed while it was being read (at byte {offset} of "
                    f"{self._size}); read it again"
                )
                raise StorageError(msg) from None
            data = await downloader.readall()
            if len(data) != length:
                raise ConnectionError(f"got {len(data)} of {length} bytes")
            return data

        chunk = await self._storage._call(
            "GetBlob", self._key, attempt, container=self._container, locator=self._locator
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


# -- spooling -----------------------------------------------------------------------------


class _Spool:
    """An anonymous temporary file (no name on Linux; deleted when closed, whatever
    happens), written and read in worker threads."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._lock = threading.Lock()
        self.size = 0

    @classmethod
    async def create(cls, directory: str | None) -> _Spool:
        def create() -> IO[bytes]:
            return tempfile.TemporaryFile(dir=directory, prefix="lakery-spool-")

        try:
            return cls(await anyio.to_thread.run_sync(create))
        except OSError as exc:
            where = directory or "the temporary directory"
            msg = (
                f"cannot create a spool file for a stream in {where} ({exc}); set "
                "AzureBlobStorage(stream_spool_dir=...)"
            )
            raise StorageError(msg) from None

    async def append(self, data: bytes) -> None:
        def write() -> None:
            with self._lock:
                self._file.seek(self.size)
                self._file.write(data)

        await anyio.to_thread.run_sync(write)
        self.size += len(data)

    async def blocks(self, piece: int) -> AsyncIterator[bytes]:
        for offset in range(0, self.size, piece):

            def read(offset: int = offset) -> bytes:
                with self._lock:
                    self._file.seek(offset)
                    return self._file.read(min(piece, self.size - offset))

            yield await anyio.to_thread.run_sync(read)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                self._file.close()

        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
            await anyio.to_thread.run_sync(close)


# -- layout -------------------------------------------------------------------------------


def check_container(container: object) -> str:
    if not isinstance(container, str) or not _CONTAINER.match(container):
        msg = (
            f"invalid Azure container name {container!r}: use 3-63 lowercase letters, digits "
            "and single '-' between them"
        )
        raise ConfigurationError(msg)
    return container


def locator_parts(locator: Any) -> tuple[str, str]:
    """The container and blob name of a locator, after checking them."""
    return object_locator_parts(
        locator,
        storage="AzureBlobStorage",
        place="container",
        check_place=check_container,
        rules=PREFIX_RULES,
    )


# -- helpers ------------------------------------------------------------------------------


def _bounded(option: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{option} must be an int from {low} to {high}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)
