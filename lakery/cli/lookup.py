"""Manifest ids given on the command line: a whole id, or a unique prefix of one (like git)."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import String
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.core.records import ManifestRecord

__all__ = ["MIN_PREFIX", "resolve_manifest_id"]

MIN_PREFIX = 4
"""The fewest hex digits a prefix may have."""
_PREFIX = re.compile(r"^[0-9a-f]+$")


async def resolve_manifest_id(session: AsyncSession, text: str) -> uuid.UUID | None:
    """The id that `text` is or uniquely begins; None when no manifest matches.

    Raises:
        ConfigurationError: `text` is neither an id nor a hex prefix of at least
            `MIN_PREFIX` digits, or several manifests begin with it.
    """
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    prefix = text.strip().lower().replace("-", "")
    if len(prefix) < MIN_PREFIX or not _PREFIX.match(prefix):
        msg = f"{text!r} is not a manifest id, nor a prefix of at least {MIN_PREFIX} hex digits"
        raise ConfigurationError(msg)
    hex_id = func.replace(cast(ManifestRecord.id, String), "-", "")
    matches = select(ManifestRecord.id).where(func.lower(hex_id).like(f"{prefix}%"))
    ids = list(await session.scalars(matches.limit(2)))
    if len(ids) > 1:
        count = await session.scalar(select(func.count()).select_from(matches.subquery()))
        msg = f"the id prefix {text!r} is ambiguous: {count} manifests begin with it"
        raise ConfigurationError(msg)
    return ids[0] if ids else None
