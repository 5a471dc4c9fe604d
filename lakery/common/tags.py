"""Tag validation: tags are a flat mapping of non-empty str keys to str values.

A key or value must also be storable as text on every database lakery supports: no NUL
character (PostgreSQL refuses it, SQLite cuts the string at it) and no lone surrogate (not
encodable as UTF-8).
"""

from __future__ import annotations

from collections.abc import Mapping

from lakery.common.exceptions import InvalidTagsError

__all__ = ["TagMap", "validate_tags"]

TagMap = Mapping[str, str]
"""Free-form string tags attached to a manifest or a content part."""


def validate_tags(tags: object, *, what: str = "tags") -> dict[str, str]:
    """Return `tags` as a new dict, or raise `InvalidTagsError` saying which entries are wrong."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        msg = f"{what} must be a mapping of str to str, got {type(tags).__name__}: {tags!r}"
        raise InvalidTagsError(msg)
    bad = [
        f"{k!r}: {v!r}"
        for k, v in tags.items()
        if not isinstance(k, str) or not k or not isinstance(v, str)
    ]
    if bad:
        msg = (
            f"{what} must map non-empty str keys to str values; convert these entries "
            f"to strings (e.g. str(value)): {', '.join(bad)}"
        )
        raise InvalidTagsError(msg)
    unstorable = [f"{k!r}: {v!r}" for k, v in tags.items() if not (_is_text(k) and _is_text(v))]
    if unstorable:
        msg = (
            f"{what} must be plain text: remove NUL characters ('\\x00') and lone surrogates "
            f"(e.g. from undecodable bytes) from these entries: {', '.join(unstorable)}"
        )
        raise InvalidTagsError(msg)
    return dict(tags)


def _is_text(text: str) -> bool:
    """Whether `text` is storable as a database string: UTF-8 encodable and without NUL."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
