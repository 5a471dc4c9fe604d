"""Retries with backoff for `GCSStorage`, and where GCS errors become lakery errors.

Every call of the storage goes through `call_with_retries`, which retries throttling
(429), 5xx answers (503 above all), request timeouts (408) and broken connections (a cut
body included) with exponential backoff and full jitter; the client library's own
upload retries are never used. Messages never contain credentials: bearer tokens,
private keys and resumable-upload session ids are masked in anything the server or the
client library said, and the client's exceptions (which hold the request, headers
included) are never chained.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import aiohttp
import anyio

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError
from lakery.extra.object_store import BackoffPolicy

__all__ = [
    "GCSHTTPError",
    "GCSRetryPolicy",
    "call_with_retries",
    "describe",
    "is_retryable",
    "redact",
    "status_of",
    "translate_error",
]

logger = logging.getLogger("lakery.extra.gcs")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SECRETS = re.compile(
    r"(?i)(Bearer\s+|access_token[\"'=:\s]+|private_key[\"'=:\s]+|upload_id=|sig(?:nature)?=)"
    r"[^\s\"'&,;}]+"
)
_MAX_DETAIL = 300


class GCSHTTPError(Exception):
    """An error answer of the GCS JSON API to a request the storage made itself."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class GCSRetryPolicy(BackoffPolicy):
    """How often and how patiently a failed GCS call is tried again: the n-th retry
    waits a random time between 0 and ``min(max_delay, base_delay * 2**n)`` (see
    `lakery.extra.object_store.BackoffPolicy`: ``max_attempts``, ``base_delay``,
    ``max_delay``)."""


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an error answer (ours or aiohttp's), None for other errors."""
    if isinstance(exc, GCSHTTPError | aiohttp.ClientResponseError):
        return exc.status
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed if tried again (throttling, 5xx, broken connection)."""
    status = status_of(exc)
    if status is not None:
        return status in RETRYABLE_STATUS
    return isinstance(
        exc,
        TimeoutError
        | ConnectionError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientConnectionError
        | aiohttp.ServerDisconnectedError,
    )


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: GCSRetryPolicy,
    operation: str,
    where: str,
    locator: Any = None,
    passthrough: Callable[[BaseException], bool] = lambda exc: False,
) -> T:
    """Run `attempt` until it succeeds, retrying transient failures with backoff; errors
    for which `passthrough` is true are raised as they are (for the caller to handle)."""
    retry = 0
    while True:
        try:
            return await attempt()
        except LakeryError:
            raise
        except Exception as exc:
            if passthrough(exc):
                raise
            if retry + 1 < policy.max_attempts and is_retryable(exc):
                wait = policy.delay(retry)
                retry += 1
                logger.info(
                    "GCS %s %s failed (%s); retry %d of %d in %.2fs",
                    operation,
                    where,
                    describe(exc),
                    retry,
                    policy.max_attempts - 1,
                    wait,
                )
                await anyio.sleep(wait)
                continue
            raise translate_error(
                exc, operation=operation, where=where, locator=locator, attempts=retry + 1
            ) from None  # the client's exception holds the request, headers included


def translate_error(
    exc: BaseException,
    *,
    operation: str,
    where: str,
    locator: Any = None,
    attempts: int = 1,
) -> LakeryError:
    """The lakery error for an error raised by a GCS call (never with credentials)."""
    detail = describe(exc)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    status = status_of(exc)
    if status == 404:
        return NotFoundError(f"GCS {operation}: nothing at {where} ({detail})", locator=locator)
    if status in (401, 403):
        msg = (
            f"GCS {operation} {where}: access denied ({detail}); check the credentials "
            "(GCSStorage(service_file=...), GOOGLE_APPLICATION_CREDENTIALS, or the "
            "service account of the machine) and their role on the bucket, e.g. Storage "
            "Object Admin"
        )
        return AccessDeniedError(msg, locator=locator)
    if is_retryable(exc):
        msg = (
            f"GCS {operation} {where} failed{tries} ({detail}); check that the service is "
            "reachable, or raise GCSStorage(max_attempts=...)"
        )
        return StorageError(msg)
    return StorageError(f"GCS {operation} {where} failed ({detail})")


def describe(exc: BaseException) -> str:
    """A short, credential-free description: the status and the message's first line."""
    status = status_of(exc)
    if isinstance(exc, GCSHTTPError):
        message = exc.message
    elif isinstance(exc, aiohttp.ClientResponseError):
        message = str(exc.message)  # never str(exc): it shows the request URL
    else:
        message = str(exc)
    lines = message.strip().splitlines()
    first = _error_message(lines[0] if len(lines) == 1 else message.strip())
    if status is not None:
        text = f"HTTP {status}" + (f": {first}" if first else "")
    else:
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return redact(text)[:_MAX_DETAIL]


def redact(text: str) -> str:
    """`text` with anything shaped like a token, private key or upload session masked."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}***", text)


def _error_message(text: str) -> str:
    """The ``error.message`` of a JSON API error body, else the text's first line."""
    import json

    try:
        body = json.loads(text)
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        message = None
    if isinstance(message, str) and message.strip():
        return message.strip().splitlines()[0]
    return text.strip().splitlines()[0] if text.strip() else ""
