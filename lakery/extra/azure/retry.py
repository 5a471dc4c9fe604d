"""Retries with backoff for `AzureBlobStorage`, and where Azure errors become lakery errors.

The Azure SDK's own retry policy is switched off (``retry_total=0``) for the storage's
clients: every call goes through `call_with_retries`, which retries throttling (503
ServerBusy, 429), other 5xx answers and broken connections with exponential backoff and
full jitter. Messages never contain credentials: known secrets (account keys, SAS
signatures) are redacted from anything the server or the SDK said.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import TypeVar

import anyio
from azure.core.exceptions import AzureError
from azure.core.exceptions import ClientAuthenticationError
from azure.core.exceptions import HttpResponseError
from azure.core.exceptions import IncompleteReadError
from azure.core.exceptions import ResourceNotFoundError
from azure.core.exceptions import ServiceRequestError
from azure.core.exceptions import ServiceResponseError

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.extra.object_store import BackoffPolicy

__all__ = ["AzureRetryPolicy", "call_with_retries", "is_retryable", "redact", "translate_error"]

logger = logging.getLogger("lakery.extra.azure")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SECRET_FIELDS = re.compile(
    r"(?i)(AccountKey=|SharedAccessSignature=|sig=|Signature=|Bearer |SharedKey [^:\s]+:)"
    r"[^;&\s\"'<]+"
)
_MAX_DETAIL = 300


class AzureRetryPolicy(BackoffPolicy):
    """How often and how patiently a failed Azure call is tried again: the n-th retry
    waits a random time between 0 and ``min(max_delay, base_delay * 2**n)`` (see
    `lakery.extra.object_store.BackoffPolicy`: ``max_attempts``, ``base_delay``,
    ``max_delay``)."""


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def error_code_of(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed if tried again (throttling, 5xx, broken connection)."""
    if isinstance(exc, HttpResponseError) and not isinstance(exc, IncompleteReadError):
        status = status_of(exc)
        if status is None:  # no answer: a transport error (e.g. a cut body) wrapped by the SDK
            inner = getattr(exc, "inner_exception", None) or exc.__cause__
            return inner is not None and inner is not exc and is_retryable(inner)
        return status in RETRYABLE_STATUS
    if isinstance(exc, ServiceRequestError | ServiceResponseError | IncompleteReadError):
        return True
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    import aiohttp

    return isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: AzureRetryPolicy,
    operation: str,
    where: str,
    locator: Any = None,
    secrets: Iterable[str] = (),
    passthrough: tuple[type[BaseException], ...] = (),
) -> T:
    """Run `attempt` until it succeeds, retrying transient failures with backoff; errors
    of the `passthrough` types are raised as they are (for the caller to handle)."""
    retry = 0
    while True:
        try:
            return await attempt()
        except LakeryError:
            raise
        except passthrough:
            raise
        except Exception as exc:
            if retry + 1 < policy.max_attempts and is_retryable(exc):
                wait = policy.delay(retry)
                retry += 1
                logger.info(
                    "Azure %s %s failed (%s); retry %d of %d in %.2fs",
                    operation,
                    where,
                    describe(exc, secrets),
                    retry,
                    policy.max_attempts - 1,
                    wait,
                )
                await anyio.sleep(wait)
                continue
            raise translate_error(
                exc,
                operation=operation,
                where=where,
                locator=locator,
                attempts=retry + 1,
                secrets=secrets,
            ) from None  # the SDK's exception holds the request, headers included


def translate_error(
    exc: BaseException,
    *,
    operation: str,
    where: str,
    locator: Any = None,
    attempts: int = 1,
    secrets: Iterable[str] = (),
) -> LakeryError:
    """The lakery error for an error raised by an Azure call (never with credentials)."""
    detail = describe(exc, secrets)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    status = status_of(exc)
    code = error_code_of(exc)
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        if code == "ContainerNotFound":
            msg = (
                f"Azure {operation} {where}: the container does not exist ({detail}); check "
                "the container name and the account of the AzureBlobStorage"
            )
        else:
            msg = f"Azure {operation}: no blob at {where} ({detail})"
        return NotFoundError(msg, locator=locator)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        msg = (
            f"Azure {operation} {where}: access denied ({detail}); check the credential "
            "(connection string, AZURE_STORAGE_CONNECTION_STRING, or the identity of "
            "DefaultAzureCredential and its role, e.g. Storage Blob Data Contributor)"
        )
        return AccessDeniedError(msg, locator=locator)
    if is_retryable(exc):
        msg = (
            f"Azure {operation} {where} failed{tries} ({detail}); check that the account "
            "is reachable, or raise AzureBlobStorage(max_attempts=...)"
        )
        return StorageError(msg)
    if isinstance(exc, AzureError):
        return StorageError(f"Azure {operation} {where} failed ({detail})")
    return StorageError(f"Azure {operation} {where} failed unexpectedly ({detail})")


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short, credential-free description: status, error code and the message's first line."""
    status = status_of(exc)
    code = error_code_of(exc)
    message = str(getattr(exc, "reason", None) or getattr(exc, "message", None) or exc)
    first = message.strip().splitlines()[0] if message.strip() else ""
    if status is not None:
        text = f"{code or type(exc).__name__}, HTTP {status}" + (f": {first}" if first else "")
    else:
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return redact(text, secrets)[:_MAX_DETAIL]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret, and anything shaped like a key or signature, masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _SECRET_FIELDS.sub(lambda m: f"{m.group(1)}***", text)
