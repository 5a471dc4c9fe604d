"""The tag keys with their own index, and the SQL expression that reads one tag's value.

Tag filters usually name Dagster's asset key and partition (``find_manifests(tags={
"dagster/asset_key": ..., "dagster/partition": ...})``), so ``lakery_manifests`` has one
composite index on the text of those two tags, then ``created_at`` and ``id``: the newest
manifest of an (asset, partition) pair is one index probe on either database. Other tag
keys are served by the GIN index on PostgreSQL and by a table scan on SQLite.

SQLite uses an index on an expression only when a query writes the same expression, with
the JSON path as a literal (not a bound parameter): filter with `tag_text` to get it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlalchemy import literal_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.elements import SQLCoreOperations

__all__ = ["INDEXED_TAG_KEYS", "is_plain_tag_key", "tag_text"]

INDEXED_TAG_KEYS = ("dagster/asset_key", "dagster/partition")
"""The tag keys of the composite index, in index order."""

_PLAIN_KEY = re.compile(r"^[ !#-&(-\[\]-~]+$")
"""Keys an SQLite JSON path names as written: printable ASCII without quotes."""


def is_plain_tag_key(key: str) -> bool:
    """Whether `tag_text` can read this key with a plain path on SQLite."""
    return _PLAIN_KEY.match(key) is not None


def tag_text(tags: SQLCoreOperations[Any], key: str, dialect: str) -> ColumnElement[Any]:
    """The value of tag `key` as text, written as the tag index is (a literal key).

    Args:
        tags: the tags column (``ManifestRecord.tags`` or its table column).
        key: a tag key; on SQLite it must be plain (`is_plain_tag_key`).
        dialect: ``"postgresql"`` or ``"sqlite"`` (anything else: SQLAlchemy's generic
            JSON accessor).
    """
    if dialect == "postgresql":
        return tags.op("->>")(literal_column(_quoted(key)))
    if dialect == "sqlite":
        if not is_plain_tag_key(key):
            msg = f"tag key {key!r} cannot be written as a plain SQLite JSON path"
            raise ValueError(msg)
        return func.json_extract(tags, literal_column(_quoted(f'$."{key}"')))
    text: ColumnElement[Any] = tags[key].as_string()  # JSON's comparator is untyped
    return text


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
