"""Turning a storage URL into a storage: the `lakery` CLI's ``--storage-url`` and
`lakery_dagster.LakeryResource.storage_url`.

Accepted forms:

- ``""`` — keep the registry's own default (with ``lakery.builtin``: the database itself);
- ``file:///absolute/path`` or a plain path (relative to the working directory) — a
  `FileStorage` rooted there;
- ``s3://bucket/optional/prefix`` — an `S3Storage` from ``lakery.extra.aws`` (install
  ``lakery[aws]``), with `s3_endpoint_url` and `s3_region` for S3-compatible servers;
- ``az://container/optional/prefix`` — an `AzureBlobStorage` from ``lakery.extra.azure``
  (install ``lakery[azure]``), its account and credentials from the environment
  (``AZURE_STORAGE_CONNECTION_STRING``, or ``AZURE_STORAGE_ACCOUNT`` /
  ``AZURE_STORAGE_ACCOUNT_URL`` with ``DefaultAzureCredential``);
- ``gs://bucket/optional/prefix`` — a `GCSStorage` from ``lakery.extra.gcs`` (install
  ``lakery[gcs]``), its credentials from Google's standard chain
  (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default credentials, the
  machine's service account) and its endpoint from ``STORAGE_EMULATOR_HOST`` when that
  is set (an emulator).

Each scheme is a row of `STORAGE_SCHEMES`: the storage class as ``"module:Class"`` (only
imported when a URL uses it), the extra that installs it, and how the URL becomes its
arguments. A new storage (``gs://``, ``az://``, ...) plugs in with a row there.

A `FileStorage` made here gets the default component name; records written by a storage
registered under another name need a storage of that name to be read back.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult
from urllib.parse import unquote
from urllib.parse import urlsplit

from lakery.common.exceptions import ConfigurationError
from lakery.core.storage import Storage

__all__ = ["STORAGE_SCHEMES", "StorageScheme", "StorageUrlOptions", "storage_from_url"]


@dataclass(frozen=True)
class StorageUrlOptions:
    """Settings that a URL cannot carry, passed to every scheme's `arguments`."""

    s3_endpoint_url: str = ""
    s3_region: str = ""


@dataclass(frozen=True)
class StorageScheme:
    """How URLs of one scheme become a storage.

    Attributes:
        target: the storage class, ``"module:Class"``.
        extra: the extra that installs `target` (None: always installed).
        arguments: the class's keyword arguments for a URL (given the URL as written, its
            parts and the options); raises `ConfigurationError` for a bad URL.
    """

    target: str
    extra: str | None
    arguments: Callable[[str, SplitResult, StorageUrlOptions], dict[str, Any]]


def _file_arguments(url: str, parts: SplitResult, _options: StorageUrlOptions) -> dict[str, Any]:
    if parts.scheme:
        if parts.netloc not in {"", "localhost"}:
            msg = (
                f"storage_url {url!r} names the host {parts.netloc!r}; a file URL needs three "
                "slashes and an absolute path, e.g. 'file:///data/lakery'"
            )
            raise ConfigurationError(msg)
        if not parts.path:
            msg = f"storage_url {url!r} has no path; use e.g. 'file:///data/lakery'"
            raise ConfigurationError(msg)
        path = Path(unquote(parts.path))
    else:
        path = Path(url)
    return {"root": _writable_folder(path.expanduser().resolve(), url)}


def _writable_folder(root: Path, url: str) -> Path:
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
    return root


def _azure_arguments(url: str, parts: SplitResult, _options: StorageUrlOptions) -> dict[str, Any]:
    if not parts.netloc or "@" in parts.netloc or parts.query or parts.fragment:
        msg = (
            f"storage_url {url!r} needs a container and nothing else before the path; use "
            "'az://container/optional/prefix' (the account and its credentials come from "
            "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with the Azure "
            "credential chain)"
        )
        raise ConfigurationError(msg)
    return {"container": parts.netloc, "prefix": parts.path.strip("/")}


def _gcs_arguments(url: str, parts: SplitResult, _options: StorageUrlOptions) -> dict[str, Any]:
    if not parts.netloc or "@" in parts.netloc or parts.query or parts.fragment:
        msg = (
            f"storage_url {url!r} needs a bucket and nothing else before the path; use "
            "'gs://bucket/optional/prefix' (credentials come from Google's standard chain, "
            "e.g. GOOGLE_APPLICATION_CREDENTIALS; an emulator from STORAGE_EMULATOR_HOST)"
        )
        raise ConfigurationError(msg)
    return {"bucket": parts.netloc, "prefix": parts.path.strip("/")}


def _s3_arguments(url: str, parts: SplitResult, options: StorageUrlOptions) -> dict[str, Any]:
    if not parts.netloc:
        msg = f"storage_url {url!r} has no bucket; use 's3://bucket/optional/prefix'"
        raise ConfigurationError(msg)
    arguments: dict[str, Any] = {"bucket": parts.netloc, "prefix": parts.path.strip("/")}
    if options.s3_endpoint_url:
        arguments["endpoint_url"] = options.s3_endpoint_url
    if options.s3_region:
        arguments["region"] = options.s3_region
    return arguments


STORAGE_SCHEMES: dict[str, StorageScheme] = {
    "": StorageScheme("lakery.builtin:FileStorage", None, _file_arguments),
    "file": StorageScheme("lakery.builtin:FileStorage", None, _file_arguments),
    "s3": StorageScheme("lakery.extra.aws:S3Storage", "aws", _s3_arguments),
    "az": StorageScheme("lakery.extra.azure:AzureBlobStorage", "azure", _azure_arguments),
    "gs": StorageScheme("lakery.extra.gcs:GCSStorage", "gcs", _gcs_arguments),
}
"""URL scheme (``""``: a plain path) → how such a URL becomes a storage."""


def storage_from_url(url: str, *, s3_endpoint_url: str = "", s3_region: str = "") -> Storage | None:
    """The storage that `url` names, checked for use; None for an empty URL."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url) if "://" in url else SplitResult("", "", url, "", "")
    scheme = STORAGE_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        forms = "'file:///absolute/path', a relative path, or " + ", ".join(
            f"'{name}://...'" for name in STORAGE_SCHEMES if name not in {"", "file"}
        )
        msg = (
            f"storage_url {url!r} has the unsupported scheme {parts.scheme.lower()!r}; use {forms}"
        )
        raise ConfigurationError(msg)
    options = StorageUrlOptions(s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)
    arguments = scheme.arguments(url, parts, options)
    storage_class = _import(scheme, url)
    try:
        return storage_class(**arguments)
    except TypeError as exc:
        msg = f"storage_url {url!r}: {scheme.target} does not accept these options: {exc}"
        raise ConfigurationError(msg) from None


def _import(scheme: StorageScheme, url: str) -> type[Storage]:
    module_name, _, class_name = scheme.target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        install = f"pip install -e '/path/to/lakery[{scheme.extra}]'" if scheme.extra else ""
        msg = f"storage_url {url!r} needs {module_name}, which cannot be imported ({exc})"
        raise ConfigurationError(
            f"{msg}; install the extra: {install}" if install else msg
        ) from None
