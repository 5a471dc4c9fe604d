"""Turning a storage URL into a storage: the `lakery` CLI's ``--storage-url`` and
`lakery_dagster.LakeryResource.storage_url`.

Accepted forms:

- ``""`` — keep the registry's own default (with ``lakery.builtin``: the database itself);
- ``file:///absolute/path`` or a plain path (relative to the working directory) — a
  `FileStorage` rooted there;
- ``s3://bucket/optional/prefix`` — an `S3Storage` from ``lakery.extra.aws`` (install
  ``lakery[aws]``), with `s3_endpoint_url` and `s3_region` for S3-compatible servers.

A `FileStorage` made here gets the default component name; records written by a storage
registered under another name need a storage of that name to be read back.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError
from lakery.core.storage import Storage

__all__ = ["storage_from_url"]

_FORMS = "'file:///absolute/path', a relative path, or 's3://bucket/prefix'"


def storage_from_url(url: str, *, s3_endpoint_url: str = "", s3_region: str = "") -> Storage | None:
    """The storage that `url` names, checked for use; None for an empty URL."""
    url = url.strip()
    if not url:
        return None
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "file":
        return _file_storage(_file_url_path(url), url)
    if scheme == "s3":
        return _s3_storage(url, s3_endpoint_url, s3_region)
    if scheme:
        msg = f"storage_url {url!r} has the unsupported scheme {scheme!r}; use {_FORMS}"
        raise ConfigurationError(msg)
    return _file_storage(Path(url), url)


def _file_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        msg = (
            f"storage_url {url!r} names the host {parts.netloc!r}; a file URL needs three "
            "slashes and an absolute path, e.g. 'file:///data/lakery'"
        )
        raise ConfigurationError(msg)
    if not parts.path:
        msg = f"storage_url {url!r} has no path; use e.g. 'file:///data/lakery'"
        raise ConfigurationError(msg)
    return Path(unquote(parts.path))


def _file_storage(path: Path, url: str) -> Storage:
    from lakery.builtin import FileStorage

    root = path.expanduser().resolve()
    if root.exists() and not root.is_dir():
        msg = f"storage_url {url!r} points at {root}, which is a file, not a directory"
        raise ConfigurationError(msg)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"storage_url {url!r}: cannot create the directory {root}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from None
    if not os.access(root, os.W_OK | os.X_OK):
        msg = f"storage_url {url!r}: the directory {root} is not writable by this process"
        raise ConfigurationError(msg)
    return FileStorage(root)


def _s3_storage(url: str, endpoint_url: str, region: str) -> Storage:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket:
        msg = f"storage_url {url!r} has no bucket; use 's3://bucket/optional/prefix'"
        raise ConfigurationError(msg)
    prefix = parts.path.strip("/")
    try:
        from lakery.extra.aws import S3Storage
    except ImportError as exc:
        msg = (
            f"storage_url {url!r} needs lakery.extra.aws, which cannot be imported ({exc}); "
            "install the extra: pip install -e '/path/to/lakery[aws]'"
        )
        raise ConfigurationError(msg) from None
    options: dict[str, str] = {}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["region"] = region
    try:
        return S3Storage(bucket=bucket, prefix=prefix, **options)
    except TypeError as exc:
        msg = f"storage_url {url!r}: S3Storage does not accept these options: {exc}"
        raise ConfigurationError(msg) from None
