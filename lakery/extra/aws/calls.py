"""`S3Calls`: the S3 calls of one storage, with its clients, call limit and retries."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from lakery.extra.aws.client import ClientManager
from lakery.extra.aws.client import LoopClient
from lakery.extra.aws.client import client_config
from lakery.extra.aws.client import new_aws_session
from lakery.extra.aws.options import ConnectionOptions
from lakery.extra.aws.retry import RetryPolicy
from lakery.extra.aws.retry import call_with_retries

__all__ = ["S3Calls"]

T = TypeVar("T")


class S3Calls:
    """Calls to S3, to `bucket` unless told otherwise, as `connection` and `retry` say.

    Each call takes the running event loop's client (created on first use, see
    `ClientManager`) and one of its `max_concurrency` slots, and is retried with backoff.
    A pickled `S3Calls` keeps its options and leaves its clients behind.

    Args:
        bucket: the bucket of calls that name none.
        connection: how to make the clients.
        retry: how failed calls are tried again.
        label: names the storage in error messages.
    """

    def __init__(
        self,
        bucket: str,
        connection: ConnectionOptions,
        retry: RetryPolicy,
        label: str = "S3Storage",
    ) -> None:
        self.bucket = bucket
        self.connection = connection
        self.retry = retry
        self.label = label
        self.clients = ClientManager(
            self._create_client,
            self._new_session,
            max_concurrency=connection.max_concurrency,
            label=label,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.bucket, self.connection, self.retry, self.label)

    async def client(self) -> LoopClient:
        """The client of the running event loop."""
        return await self.clients.get()

    async def close(self) -> None:
        """Close the client of the running event loop (the next call opens a new one)."""
        await self.clients.close()

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
        client = await self.clients.get()

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

    def _new_session(self) -> Any:
        connection = self.connection
        if connection.session is not None:
            return connection.session
        return new_aws_session(connection.profile)

    def _create_client(self, session: Any) -> Any:
        connection = self.connection
        return session.create_client(
            "s3",
            region_name=connection.region,
            endpoint_url=connection.endpoint_url,
            config=client_config(
                max_concurrency=connection.max_concurrency,
                addressing_style=connection.addressing_style,
                request_checksum_calculation=connection.request_checksum_calculation,
                response_checksum_validation=connection.response_checksum_validation,
                extra=connection.client_options or {},
            ),
        )


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
