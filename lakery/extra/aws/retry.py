"""Retries with backoff, and the one place where S3 errors become lakery errors.

botocore's own retries are switched off for `S3Storage` clients: every call goes through
`call_with_retries`, which also retries reading a response body that broke off halfway,
something botocore cannot do. Errors that survive the retries are translated by
`translate_error` into the `lakery.common.exceptions` tree, with messages that never
contain credentials (known secrets are redacted from anything the server said).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

import anyio
from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import CredentialRetrievalError
from botocore.exceptions import FlexibleChecksumError
from botocore.exceptions import HTTPClientError
from botocore.exceptions import IncompleteReadError
from botocore.exceptions import NoCredentialsError
from botocore.exceptions import PartialCredentialsError
from botocore.exceptions import ResponseStreamingError

from lakery.common.exceptions import AccessDeniedError
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import LakeryError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorageError

__all__ = ["RetryPolicy", "call_with_retries", "is_retryable", "translate_error"]

logger = logging.getLogger("lakery.extra.aws")

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "ServiceUnavailable",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "BadDigest",  # the bytes did not match their checksum on arrival: send them again
    }
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", "404"})
ACCESS_CODES = frozenset({"AccessDenied", "Forbidden", "403", "AllAccessDisabled"})
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AccountProblem",
    }
)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_MAX_DETAIL = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed S3 call is tried again.

    The n-th retry waits a random time between 0 and ``min(max_delay, base_delay * 2**n)``
    ("full jitter"), so that many clients backing off from one throttled prefix spread out.
    `S3Storage(retry=...)` takes one; its keywords ``max_attempts``, ``retry_base_delay``
    and ``retry_max_delay`` make one.

    Attributes:
        max_attempts: attempts per call, the first included (1 disables retries).
        base_delay: seconds; the cap of the first wait.
        max_delay: seconds; no wait is longer.
    """

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"max_attempts must be at least 1, got {self.max_attempts}"
            raise ConfigurationError(msg)
        if self.base_delay < 0 or self.max_delay < 0:
            msg = "retry delays must not be negative"
            raise ConfigurationError(msg)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**retry))


def error_code(exc: BaseException) -> tuple[str, int | None]:
    """The S3 error code and HTTP status of a botocore `ClientError`, else ("", None)."""
    if not isinstance(exc, ClientError):
        return "", None
    response: dict[str, Any] = exc.response or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed if tried again (throttling, 5xx, broken connection)."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        return code in THROTTLING_CODES or code in TRANSIENT_CODES or status in RETRYABLE_STATUS
    if isinstance(
        exc,
        BotoConnectionError
        | HTTPClientError
        | ResponseStreamingError
        | IncompleteReadError
        | FlexibleChecksumError,  # damaged in transit: a new transfer may be whole
    ):
        return True
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiobotocore depends on aiohttp
        return False
    return isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    operation: str,
    where: str,
    locator: Any = None,
    secrets: Callable[[], Iterable[str]] = tuple,
) -> T:
    """Run `attempt` until it succeeds, retrying transient failures with backoff.

    Args:
        attempt: one try of the whole operation (request and body read).
        policy: how many attempts and how long to wait between them.
        operation: the S3 operation name, for messages (e.g. ``"PutObject"``).
        where: ``s3://bucket/key`` of the object, for messages.
        locator: attached to `NotFoundError` and `AccessDeniedError`.
        secrets: returns credential strings to redact from messages.

    Raises:
        LakeryError: the translated error once the attempts are used up, or at once for
            an error that retrying cannot fix.
    """
    retry = 0
    while True:
        try:
            return await attempt()
        except LakeryError:
            raise
        except Exception as exc:
            if retry + 1 < policy.max_attempts and is_retryable(exc):
                wait = policy.delay(retry)
                retry += 1
                logger.info(
                    "S3 %s %s failed (%s); retry %d of %d in %.2fs",
                    operation,
                    where,
                    describe(exc, secrets()),
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
                secrets=secrets(),
            ) from exc


def translate_error(
    exc: BaseException,
    *,
    operation: str,
    where: str,
    locator: Any = None,
    attempts: int = 1,
    secrets: Iterable[str] = (),
) -> LakeryError:
    """The lakery error for a botocore/aiohttp error raised by an S3 call."""
    detail = describe(exc, secrets)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    code, status = error_code(exc)
    if code in NOT_FOUND_CODES or (isinstance(exc, ClientError) and status == 404):
        if code == "NoSuchBucket":
            msg = (
                f"S3 {operation} {where}: the bucket does not exist ({detail}); check the "
                "bucket name, endpoint_url and region of the S3Storage"
            )
        elif code == "NoSuchUpload":
            msg = f"S3 {operation} {where}: the multipart upload is gone ({detail})"
        else:
            msg = f"S3 {operation}: no object at {where} ({detail})"
        return NotFoundError(msg, locator=locator)
    if code in CREDENTIAL_CODES:
        msg = (
            f"S3 {operation} {where}: the server rejected the credentials ({detail}); check "
            "the AWS credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, or the session passed to S3Storage)"
        )
        return AccessDeniedError(msg, locator=locator)
    if code in ACCESS_CODES or status == 403:
        msg = (
            f"S3 {operation} {where}: access denied ({detail}); grant the credentials' IAM "
            f"identity s3:{_permission(operation)} on this bucket and prefix (see "
            "docs/integrations/s3.md)"
        )
        if operation in ("GetObject", "HeadObject"):
            msg += "; without s3:ListBucket, S3 also answers 403 for a missing object"
        return AccessDeniedError(msg, locator=locator)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        msg = (
            f"S3 {operation} {where}: no usable AWS credentials ({detail}); set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass "
            "S3Storage(session=...) with credentials"
        )
        return ConfigurationError(msg)
    if code in THROTTLING_CODES:
        msg = (
            f"S3 {operation} {where}: still throttled{tries} ({detail}); lower "
            "S3Storage(max_concurrency=...) or raise max_attempts"
        )
        return StorageError(msg)
    if is_retryable(exc):
        msg = (
            f"S3 {operation} {where} failed{tries} ({detail}); check that the endpoint is "
            "reachable, or raise S3Storage(max_attempts=...)"
        )
        return StorageError(msg)
    if isinstance(exc, ClientError | BotoCoreError):
        return StorageError(f"S3 {operation} {where} failed ({detail})")
    return StorageError(f"S3 {operation} {where} failed unexpectedly ({detail})")


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short, credential-free description of an error: code, status and server message."""
    code, status = error_code(exc)
    if isinstance(exc, ClientError):
        message = str((exc.response or {}).get("Error", {}).get("Message", "") or "")
        text = f"{code or 'error'}, HTTP {status}" + (f": {message}" if message else "")
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text, secrets)[:_MAX_DETAIL]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret and anything shaped like an access key id masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _ACCESS_KEY_ID.sub("***", text)


def _permission(operation: str) -> str:
    tagging = " (and s3:PutObjectTagging when writing object tags)"
    return {
        "HeadObject": "GetObject",
        "PutObject": "PutObject" + tagging,
        "CreateMultipartUpload": "PutObject" + tagging,
        "UploadPart": "PutObject",
        "UploadPartCopy": "PutObject and s3:GetObject",
        "CopyObject": "PutObject and s3:GetObject (and s3:GetObjectTagging, "
        "s3:PutObjectTagging when copying object tags)",
        "CompleteMultipartUpload": "PutObject",
        "AbortMultipartUpload": "AbortMultipartUpload",
        "ListMultipartUploads": "ListBucketMultipartUploads",
        "ListObjectsV2": "ListBucket",
    }.get(operation, operation)
