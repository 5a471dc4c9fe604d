"""What the object-store storages (S3, Azure Blob, GCS) share: the content-address layout of
keys, the retry backoff, and the regrouping of in-memory buffers and streams into parts.

```
<prefix>/sha256/<ab>/<sha256 hex>   content, addressed by its hash (ab: first two hex digits)
```
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncGenerator
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorageError
from lakery.core.serializer import Buffer
from lakery.core.storage import THREAD_THRESHOLD

__all__ = [
    "BackoffPolicy",
    "PrefixRules",
    "content_key",
    "iter_buffers",
    "joined",
    "locator_parts",
    "regroup",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_KEY = re.compile(
    r"^(?:(?P<prefix>.+)/)?sha256/(?P<fan>[0-9a-f]{2})/(?P<hash>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class PrefixRules:
    """The key prefixes one object store accepts.

    Attributes:
        what: the prefix's name in messages, e.g. ``"S3 key prefix"``.
        max_length: the longest prefix allowed.
        in_bytes: whether `max_length` counts UTF-8 bytes (else characters).
        forbidden: characters refused besides control characters and backslashes.
    """

    what: str
    max_length: int
    in_bytes: bool = True
    forbidden: str = ""

    def check(self, prefix: object) -> str:
        """The normalized prefix (no trailing slash), or raise `ConfigurationError`."""
        if not isinstance(prefix, str):
            msg = f"the {self.what} must be a str, got {type(prefix).__name__}"
            raise ConfigurationError(msg)
        problem = self.problem(prefix)
        if problem:
            msg = f"invalid {self.what} {prefix!r}: {problem}"
            raise ConfigurationError(msg)
        return prefix.rstrip("/")

    def problem(self, prefix: str) -> str | None:
        """What is wrong with `prefix`, or None."""
        if prefix.startswith("/"):
            return "it must not start with '/' (write 'data/lakery', not '/data/lakery')"
        segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
        if any(s in ("", ".", "..") for s in segments):
            return "it must not contain empty, '.' or '..' segments"
        if any(ord(c) < 32 or c in "\\\x7f" or c in self.forbidden for c in prefix):
            extra = f" or {self.forbidden!r}" if self.forbidden else ""
            return f"it must not contain control characters, backslashes{extra}"
        length = len(prefix.encode()) if self.in_bytes else len(prefix)
        if length > self.max_length:
            unit = "bytes" if self.in_bytes else "characters"
            return f"it must be at most {self.max_length} {unit} long"
        return None

    def is_content_key(self, key: object) -> bool:
        """Whether `key` is ``<prefix>/sha256/<ab>/<sha256 hex>`` with a valid prefix."""
        match = _CONTENT_KEY.match(key) if isinstance(key, str) else None
        if not match or match["fan"] != match["hash"][:2]:
            return False
        prefix = match["prefix"]
        return prefix is None or not (prefix.endswith("/") or self.problem(prefix))


def content_key(prefix: str, sha256: str) -> str:
    """The key of the content whose sha256 hex digest is `sha256`."""
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        msg = f"expected a sha256 hex digest, got {sha256!r}"
        raise StorageError(msg)
    key = f"sha256/{sha256[:2]}/{sha256}"
    return f"{prefix}/{key}" if prefix else key


def locator_parts(
    locator: object,
    *,
    storage: str,
    place: str,
    check_place: Callable[[object], str],
    rules: PrefixRules,
) -> tuple[str, str]:
    """The place (bucket, container) and key of a locator ``{place: ..., "key": ...}``,
    after checking that they name a content address; else a `StorageError` naming
    `storage`."""
    if not isinstance(locator, Mapping):
        msg = f"invalid {storage} locator {locator!r}: expected {{{place!r}: ..., 'key': ...}}"
        raise StorageError(msg)
    where, key = locator.get(place), locator.get("key")
    try:
        where = check_place(where)
    except ConfigurationError as exc:
        raise StorageError(f"invalid {storage} locator {locator!r}: {exc}") from None
    if not isinstance(key, str) or not rules.is_content_key(key):
        msg = (
            f"invalid {storage} locator {locator!r}: the key must be "
            "'<prefix>/sha256/<ab>/<sha256 hex>' with no leading '/' and no '..' segments"
        )
        raise StorageError(msg)
    return where, key


@dataclass(frozen=True)
class BackoffPolicy:
    """How often and how patiently a failed call is tried again: the n-th retry waits a
    random time between 0 and ``min(max_delay, base_delay * 2**n)`` ("full jitter").

    Attributes:
        max_attempts: attempts per call, the first included (1 disables retries).
        base_delay: seconds; the cap of the first wait.
        max_delay: seconds; no wait is longer.
    """

    max_attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            msg = f"max_attempts must be an int of at least 1, got {self.max_attempts!r}"
            raise ConfigurationError(msg)
        if self.base_delay < 0 or self.max_delay < 0:
            msg = "retry delays must not be negative"
            raise ConfigurationError(msg)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**retry))


async def joined(data: Sequence[Buffer], size: int) -> bytes | bytearray:
    """In-memory buffers as one bytes object (joined in a thread when large)."""
    if len(data) == 1 and isinstance(data[0], bytes | bytearray):
        return data[0]
    if size > THREAD_THRESHOLD:
        return await anyio.to_thread.run_sync(b"".join, data)
    return b"".join(data)


async def iter_buffers(data: Sequence[Buffer], piece: int) -> AsyncIterator[memoryview]:
    """Slices of at most `piece` bytes of in-memory buffers, without copying them."""
    for buffer in data:
        view = memoryview(buffer).cast("B")
        for start in range(0, view.nbytes, piece):
            yield view[start : start + piece]


async def regroup(chunks: AsyncIterator[Buffer], size: int) -> AsyncGenerator[bytes, None]:
    """Parts of exactly `size` bytes (the last one may be shorter) from any chunks.

    Chunks are copied into one reused buffer; each full part is copied out of it as `bytes`
    (the type the HTTP clients send with the fewest further copies).
    """
    buffer = bytearray(size)
    filled = 0
    async for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view.nbytes:
            take = min(size - filled, view.nbytes)
            buffer[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == size:
                yield bytes(buffer)
                filled = 0
    if filled:
        yield bytes(memoryview(buffer)[:filled])
