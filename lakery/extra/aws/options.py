"""`S3Storage`'s options, in three frozen groups, and their checks.

`ConnectionOptions` (how the client reaches S3), `TransferOptions` (how bytes move) and
`RetryPolicy` (how failed calls are tried again). `S3Storage` takes each group as one
object or its fields as keywords; each error names the option and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from typing import Any
from typing import Literal
from typing import TypedDict
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError
from lakery.extra.aws.retry import RetryPolicy

__all__ = [
    "ADDRESSING_STYLES",
    "CHECKSUM_SETTINGS",
    "MAX_OBJECT_SIZE",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "ConnectionOptions",
    "GiB",
    "MiB",
    "OptionKeywords",
    "TransferOptions",
    "bounded_int",
    "check_endpoint",
    "checksum_setting",
    "choice",
    "directory",
    "grouped",
    "optional_size",
]

MiB = 1 << 20
GiB = 1 << 30
MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (all but the last part of a multipart upload)."""
MAX_PART_SIZE = 5 * GiB
"""S3's largest part, single PUT and single copy."""
MAX_OBJECT_SIZE = 5 * 1024 * GiB
"""S3's largest object."""
ADDRESSING_STYLES = ("auto", "path", "virtual")
CHECKSUM_SETTINGS = ("when_supported", "when_required")

ChecksumSetting = Literal["when_supported", "when_required"]


@dataclass(frozen=True)
class ConnectionOptions:
    """How an `S3Storage` reaches S3: endpoint, credentials, client settings, call limit.

    Attributes:
        endpoint_url: for S3-compatible servers, e.g. ``"http://127.0.0.1:9000"``.
        region: the AWS region; default from the AWS configuration chain.
        profile: a profile from ``~/.aws/config``; ignored when `session` is given.
        session: an ``aiobotocore.session.AioSession`` with explicit credentials or setup.
        addressing_style: ``"auto"``, ``"path"`` (most S3-compatible servers) or
            ``"virtual"``.
        request_checksum_calculation: botocore's setting: ``"when_supported"`` (its
            default since 1.36) sends CRC32/SHA-256 checksum headers; ``"when_required"``
            sends them only where the API demands, for servers that reject them. None:
            from ``AWS_REQUEST_CHECKSUM_CALCULATION`` or the config file.
        response_checksum_validation: ``"when_required"`` (the default) leaves checking
            downloads to lakery, which verifies the size and SHA-256 of everything it
            reads; ``"when_supported"`` makes botocore check stored checksums too (twice
            the hashing work on loads); None: from ``AWS_RESPONSE_CHECKSUM_VALIDATION``.
        max_concurrency: S3 calls in flight at once (per event loop); also the size of
            the connection pool.
        client_options: more ``aiobotocore.config.AioConfig`` arguments (timeouts,
            proxies, ...), applied last.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    session: Any = field(default=None, repr=False)
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    request_checksum_calculation: ChecksumSetting | None = None
    response_checksum_validation: ChecksumSetting | None = "when_required"
    max_concurrency: int = 10
    client_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint_url)
        choice("addressing_style", self.addressing_style, ADDRESSING_STYLES)
        checksum_setting("request_checksum_calculation", self.request_checksum_calculation)
        checksum_setting("response_checksum_validation", self.response_checksum_validation)
        bounded_int("max_concurrency", self.max_concurrency, 1, 10_000)
        object.__setattr__(self, "client_options", dict(self.client_options or {}))


@dataclass(frozen=True)
class TransferOptions:
    """How an `S3Storage` moves bytes: part sizes, parallel parts, spooling, read chunks.

    Attributes:
        part_size: bytes per part of a streamed upload (at least 5 MiB).
        multipart_threshold: values larger than this are uploaded in `part_size` parts
            instead of one PUT (5 MiB to 5 GiB). Lower it to bound the memory and speed up
            the upload of large values: one PUT needs about twice the value's size.
        upload_concurrency: parts of one stream uploaded at the same time.
        copy_part_size: server-side copies of objects larger than this (a stream sent
            through a temporary object, stored content refreshed in place) are made in
            parts of this size (5 MiB to 5 GiB).
        stream_spool_dir: the directory of spool files (kept as a str); None: the
            system's temporary directory (`tempfile.gettempdir()`, e.g. ``$TMPDIR``) at
            the time of the write.
        stream_spool_max_bytes: the longest stream spooled to a local file (and at most
            half the free space of `stream_spool_dir`); longer streams, and every stream
            when 0 (None is kept as 0), go through a temporary object.
        read_chunk_size: the largest chunk a streamed read yields (a reader holds one
            chunk, plus aiohttp's read buffer).
    """

    part_size: int = 8 * MiB
    multipart_threshold: int = 5 * GiB
    upload_concurrency: int = 4
    copy_part_size: int = 256 * MiB
    stream_spool_dir: str | os.PathLike[str] | None = None
    stream_spool_max_bytes: int | None = 4 * GiB
    read_chunk_size: int = 1 * MiB

    def __post_init__(self) -> None:
        bounded_int("part_size", self.part_size, MIN_PART_SIZE, MAX_PART_SIZE)
        bounded_int("multipart_threshold", self.multipart_threshold, MIN_PART_SIZE, MAX_PART_SIZE)
        bounded_int("upload_concurrency", self.upload_concurrency, 1, 10_000)
        bounded_int("copy_part_size", self.copy_part_size, MIN_PART_SIZE, MAX_PART_SIZE)
        bounded_int("read_chunk_size", self.read_chunk_size, 1, MAX_PART_SIZE)
        spool_dir = directory("stream_spool_dir", self.stream_spool_dir)
        spool_max = optional_size(
            "stream_spool_max_bytes", self.stream_spool_max_bytes, MAX_OBJECT_SIZE
        )
        object.__setattr__(self, "stream_spool_dir", spool_dir)
        object.__setattr__(self, "stream_spool_max_bytes", spool_max)


class OptionKeywords(TypedDict, total=False):
    """The fields of the option groups, as `S3Storage` also takes them one by one."""

    endpoint_url: str | None
    region: str | None
    profile: str | None
    session: Any
    addressing_style: Literal["auto", "path", "virtual"]
    request_checksum_calculation: ChecksumSetting | None
    response_checksum_validation: ChecksumSetting | None
    max_concurrency: int
    client_options: Mapping[str, Any] | None
    part_size: int
    multipart_threshold: int
    upload_concurrency: int
    copy_part_size: int
    stream_spool_dir: str | os.PathLike[str] | None
    stream_spool_max_bytes: int | None
    read_chunk_size: int
    max_attempts: int
    retry_base_delay: float
    retry_max_delay: float


_GROUPS: dict[str, type] = {
    "connection": ConnectionOptions,
    "transfer": TransferOptions,
    "retry": RetryPolicy,
}
_RETRY_KEYWORDS = {
    "max_attempts": "max_attempts",
    "retry_base_delay": "base_delay",
    "retry_max_delay": "max_delay",
}
_KEYWORDS: dict[str, tuple[str, str]] = {
    **{f.name: ("connection", f.name) for f in fields(ConnectionOptions)},
    **{f.name: ("transfer", f.name) for f in fields(TransferOptions)},
    **{k: ("retry", name) for k, name in _RETRY_KEYWORDS.items()},
}


def grouped(
    groups: Mapping[str, object], keywords: Mapping[str, Any]
) -> tuple[ConnectionOptions, TransferOptions, RetryPolicy]:
    """The option groups of an `S3Storage`: each one given (`groups`, None if not), else
    made from its fields among `keywords`; a group and one of its fields is an error."""
    fields_of: dict[str, dict[str, Any]] = {group: {} for group in _GROUPS}
    for keyword, value in keywords.items():
        if keyword not in _KEYWORDS:
            msg = f"S3Storage() got an unexpected keyword argument {keyword!r}"
            raise TypeError(msg)
        group, name = _KEYWORDS[keyword]
        fields_of[group][name] = value
    made: list[Any] = []
    for group, cls in _GROUPS.items():
        given = groups.get(group)
        if given is None:
            made.append(cls(**fields_of[group]))
            continue
        if not isinstance(given, cls):
            msg = f"S3Storage({group}=...) must be a {cls.__name__}, got {given!r}"
            raise ConfigurationError(msg)
        if fields_of[group]:
            both = ", ".join(k for k in keywords if _KEYWORDS[k][0] == group)
            msg = (
                f"S3Storage got {group}= and also {both}, which belong to it: set them "
                f"in the {cls.__name__} (e.g. with dataclasses.replace), or give only keywords"
            )
            raise ConfigurationError(msg)
        made.append(given)
    connection, transfer, retry = made
    return connection, transfer, retry


def check_endpoint(endpoint_url: str | None) -> str | None:
    if endpoint_url is None:
        return None
    if not isinstance(endpoint_url, str):
        msg = f"endpoint_url must be a str URL, got {type(endpoint_url).__name__}"
        raise ConfigurationError(msg)
    parts = urlsplit(endpoint_url)
    if parts.username is not None or parts.password is not None:
        msg = (
            "endpoint_url must not contain credentials (user:password@): remove them from "
            "the URL and provide them through the AWS credential chain or session="
        )
        raise ConfigurationError(msg)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = (
            "endpoint_url must be an http(s) URL such as 'http://127.0.0.1:9000', "
            f"got {endpoint_url!r}"
        )
        raise ConfigurationError(msg)
    return endpoint_url


def choice(option: str, value: object, choices: Sequence[str]) -> Any:
    if value not in choices:
        msg = f"{option} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def checksum_setting(option: str, value: object) -> Any:
    return None if value is None else choice(option, value, CHECKSUM_SETTINGS)


def bounded_int(option: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        msg = f"{option} must be an int from {low} to {high}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def directory(option: str, value: object) -> str | None:
    """A directory path as a str (None stays None); it need not exist yet."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        msg = f"{option} must be a directory path or None, got {value!r}"
        raise ConfigurationError(msg)
    path = os.fspath(value)
    if not isinstance(path, str):
        msg = f"{option} must be a str path, got {value!r}"
        raise ConfigurationError(msg)
    return path


def optional_size(option: str, value: object, high: int) -> int:
    """A byte count from 0 to `high`; None counts as 0 (off)."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        msg = f"{option} must be None or 0 (off) or a number of bytes up to {high}, got {value!r}"
        raise ConfigurationError(msg)
    return value
