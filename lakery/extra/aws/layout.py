"""Where `S3Storage` puts things: bucket and prefix rules, keys, locators and object tags.

```
<prefix>/sha256/<ab>/<sha256 hex>   content, addressed by its hash (ab: first two hex digits)
<prefix>/tmp/<random hex>           a stream being uploaded, before its hash is known
```
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from lakery.common.exceptions import ConfigurationError
from lakery.extra.object_store import PrefixRules
from lakery.extra.object_store import content_key
from lakery.extra.object_store import locator_parts as object_locator_parts

__all__ = [
    "TAG_MODES",
    "check_bucket",
    "check_prefix",
    "content_key",
    "locator_parts",
    "tag_params",
    "temp_prefix",
]

TAG_MODES = ("tagging", "metadata", "off")
METADATA_TAGS_KEY = "lakery-tags"
"""User metadata entry (``x-amz-meta-lakery-tags``) holding the tags as JSON."""

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
PREFIX_RULES = PrefixRules("S3 key prefix", max_length=512)
"""S3 allows keys of 1,024 bytes; the prefix keeps room for the content address."""
_TAG_TEXT = re.compile(r"^[\w +\-=.:/@]*$")
_MAX_TAGS = 10
_MAX_TAG_KEY = 128
_MAX_TAG_VALUE = 256
_MAX_METADATA = 2048


def check_bucket(bucket: object) -> str:
    """Return `bucket` if it can be an S3 bucket name, else raise `ConfigurationError`."""
    if not isinstance(bucket, str) or not _BUCKET.match(bucket) or ".." in bucket:
        msg = (
            f"invalid S3 bucket name {bucket!r}: use 3-255 letters, digits, '.', '-' or '_' "
            "(AWS itself allows 3-63 lowercase letters, digits, '.' and '-')"
        )
        raise ConfigurationError(msg)
    return bucket


def check_prefix(prefix: object) -> str:
    """Return the normalized key prefix (no trailing slash), or raise `ConfigurationError`."""
    return PREFIX_RULES.check(prefix)


def temp_prefix(prefix: str) -> str:
    """The key prefix (with a trailing slash) of streams still being uploaded."""
    return f"{prefix}/tmp/" if prefix else "tmp/"


def locator_parts(locator: Any) -> tuple[str, str]:
    """The bucket and key of a locator, after checking that they are a content address."""
    return object_locator_parts(
        locator, storage="S3Storage", place="bucket", check_place=check_bucket, rules=PREFIX_RULES
    )


def tag_params(tags: Mapping[str, str], mode: str) -> dict[str, Any]:
    """PutObject / CreateMultipartUpload parameters that attach `tags` to the object.

    ``"tagging"`` writes S3 object tags. S3 allows at most 10, with keys of at most 128
    and values of at most 256 characters from letters, digits, spaces and ``+-=._:/@``;
    tags beyond those rules are left out (lakery's records always hold all of them).
    ``"metadata"`` writes all tags as JSON in the ``x-amz-meta-lakery-tags`` metadata
    entry, if it fits S3's 2 KB metadata limit. ``"off"`` writes none.
    """
    if not tags or mode == "off":
        return {}
    if mode == "metadata":
        text = json.dumps(dict(sorted(tags.items())), ensure_ascii=True, separators=(",", ":"))
        if len(text) + len(METADATA_TAGS_KEY) > _MAX_METADATA:
            return {}
        return {"Metadata": {METADATA_TAGS_KEY: text}}
    fitting = [(k, v) for k, v in sorted(tags.items()) if _fits_s3_tag(k, v)][:_MAX_TAGS]
    if not fitting:
        return {}
    return {"Tagging": "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in fitting)}


def tags_left_out(tags: Mapping[str, str], mode: str) -> list[str]:
    """The tag keys that `tag_params` leaves out under `mode`."""
    if mode == "off" or not tags:
        return []
    if mode == "metadata":
        return [] if tag_params(tags, mode) else sorted(tags)
    fitting = [k for k, v in sorted(tags.items()) if _fits_s3_tag(k, v)][:_MAX_TAGS]
    return [k for k in sorted(tags) if k not in fitting]


def _fits_s3_tag(key: str, value: str) -> bool:
    return (
        0 < len(key) <= _MAX_TAG_KEY
        and len(value) <= _MAX_TAG_VALUE
        and not key.lower().startswith("aws:")
        and bool(_TAG_TEXT.match(key))
        and bool(_TAG_TEXT.match(value))
    )
