"""One aiobotocore S3 client per running event loop, created lazily and reused.

An aiobotocore client owns an aiohttp connection pool, which belongs to the event loop it
was created on. `ClientManager.get()` returns the client of the *running* loop, creating it
on first use; a storage used from `asyncio.run(...)` twice, or from a Dagster resource's
own loop and the main thread, thus gets one client per loop and never touches a client
whose loop is gone. When a loop is shut down by `asyncio.run` (or `asyncio.Runner`,
`anyio.run`), its client is closed on that loop, through an async generator that the
loop finalizes on shutdown; clients of loops that were closed some other way are dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncGenerator
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import anyio

from lakery.common.exceptions import ConfigurationError
from lakery.extra.aws.retry import describe

__all__ = ["ClientManager", "LoopClient", "client_config", "new_aws_session"]

logger = logging.getLogger("lakery.extra.aws")


@dataclass(eq=False)
class LoopClient:
    """The S3 client of one event loop, with the limit on concurrent calls through it.

    Attributes:
        client: the aiobotocore S3 client.
        slots: at most this many S3 calls are in flight through this client at a time.
        request_checksums: whether botocore sends the newer flexible checksum headers
            (its ``request_checksum_calculation`` resolved to ``"when_supported"``).
    """

    loop: asyncio.AbstractEventLoop
    client: Any
    slots: anyio.Semaphore
    request_checksums: bool
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The credential strings the client started with, only used to redact messages."""
    closed: bool = False
    _keeper: AsyncGenerator[None, None] | None = field(default=None, repr=False)


class ClientManager:
    """Creates, caches and closes one S3 client per event loop.

    Args:
        create: an async context manager factory: ``create(session)`` returns what
            ``session.create_client("s3", ...)`` returns.
        new_session: returns the aiobotocore session to create a client with.
        max_concurrency: the size of each loop client's call limit.
        label: names the storage in error messages.
    """

    def __init__(
        self,
        create: Callable[[Any], Any],
        new_session: Callable[[], Any],
        *,
        max_concurrency: int,
        label: str = "S3Storage",
    ) -> None:
        self._label = label
        self._create = create
        self._new_session = new_session
        self._max_concurrency = max_concurrency
        self._clients: dict[asyncio.AbstractEventLoop, LoopClient] = {}
        self._creating: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._lock = threading.Lock()
        self.created = 0
        """How many clients were created so far (for tests and diagnostics)."""

    async def get(self) -> LoopClient:
        """The client of the running event loop, created on first use."""
        loop = _running_loop()
        with self._lock:
            self._forget_dead_loops()
            current = self._clients.get(loop)
            if current is not None and not current.closed:
                return current
            lock = self._creating.setdefault(loop, asyncio.Lock())
        async with lock:
            with self._lock:
                current = self._clients.get(loop)
            if current is not None and not current.closed:
                return current
            current = await self._open(loop)
            with self._lock:
                self._clients[loop] = current
            return current

    async def close(self) -> None:
        """Close the running loop's client; drop or schedule closing the others."""
        loop = _running_loop()
        with self._lock:
            clients = list(self._clients.items())
            self._clients.clear()
            self._creating.clear()
        for owner, loop_client in clients:
            if owner is loop:
                await _close(loop_client)
            elif not owner.is_closed() and owner.is_running():
                asyncio.run_coroutine_threadsafe(_close(loop_client), owner)
            # a client of a closed loop cannot be closed any more; it is dropped

    def _forget_dead_loops(self) -> None:
        for loop in [loop for loop in self._clients if loop.is_closed()]:
            logger.debug("dropping the S3 client of a closed event loop")
            del self._clients[loop]
            self._creating.pop(loop, None)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> LoopClient:
        try:
            session = self._new_session()
            context = self._create(session)
            client = await context.__aenter__()
        except Exception as exc:
            msg = (
                f"cannot create the S3 client of {self._label} ({describe(exc)}); check its "
                "region, endpoint_url and profile, and the AWS configuration files"
            )
            raise ConfigurationError(msg) from exc
        try:
            mode = getattr(client.meta.config, "request_checksum_calculation", None)
            loop_client = LoopClient(
                loop=loop,
                client=client,
                slots=anyio.Semaphore(self._max_concurrency),
                request_checksums=(mode or "when_supported") == "when_supported",
                secrets=await _secrets(session),
            )
            keeper = _close_at_loop_shutdown(loop_client, context)
            await keeper.__anext__()
            loop_client._keeper = keeper
        except BaseException:
            with anyio.CancelScope(shield=True):
                await context.__aexit__(None, None, None)
            raise
        self.created += 1
        logger.debug("created an S3 client for event loop %#x", id(loop))
        return loop_client


async def _close_at_loop_shutdown(
    loop_client: LoopClient, context: Any
) -> AsyncGenerator[None, None]:
    """Suspended for the client's life; finalized by `close()` or by the loop's shutdown."""
    try:
        yield
    finally:
        loop_client.closed = True
        with anyio.CancelScope(shield=True):
            await context.__aexit__(None, None, None)


async def _secrets(session: Any) -> tuple[str, ...]:
    try:
        credentials = await session.get_credentials()
        if credentials is None:
            return ()
        frozen = await credentials.get_frozen_credentials()
    except Exception:  # missing credentials are reported by the first call instead
        return ()
    return tuple(s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s)


async def _close(loop_client: LoopClient) -> None:
    loop_client.closed = True
    if loop_client._keeper is not None:
        await loop_client._keeper.aclose()


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        msg = (
            "S3Storage runs on asyncio (aiobotocore): call it from a coroutine on an asyncio "
            "event loop (asyncio.run, anyio with the asyncio backend), not from trio or "
            "synchronous code"
        )
        raise ConfigurationError(msg) from None


def new_aws_session(profile: str | None) -> Any:
    """An aiobotocore session on the standard credential chain (with `profile`, if any)."""
    from aiobotocore.session import AioSession

    session = AioSession(profile=profile)
    session.register_component("data_loader", _shared_loader())
    return session


def client_config(
    *,
    max_concurrency: int,
    addressing_style: str,
    request_checksum_calculation: str | None,
    response_checksum_validation: str | None,
    extra: Mapping[str, Any],
) -> Any:
    """The `AioConfig` of an S3Storage client; `extra` (client_options) is applied last."""
    from aiobotocore.config import AioConfig

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": 1},  # retry.py retries
        "max_pool_connections": max_concurrency,
        "s3": {"addressing_style": addressing_style},
        "user_agent_extra": "lakery",
        "warm_up_loader_caches": True,  # parse botocore's JSON models in a thread
    }
    if request_checksum_calculation:
        options["request_checksum_calculation"] = request_checksum_calculation
    if response_checksum_validation:
        options["response_checksum_validation"] = response_checksum_validation
    options.update(extra)
    return AioConfig(**options)


@functools.cache
def _shared_loader() -> Any:
    """botocore's service-model loader, shared so that new sessions skip re-parsing JSON."""
    from botocore.loaders import create_loader

    return create_loader()
