"""Storages for the names the records use but the registry lacks, made from their locators.

A storage name the records use is matched by the shape of its locators:

- ``{"root", "key"}``: a `FileStorage` at the recorded root, if that directory exists
  (several roots: a `FileRoots`, one `FileStorage` per existing root);
- ``{"bucket", "key"}``: an `S3Storage` of the recorded bucket and prefix (``lakery[aws]``
  installed; credentials, endpoint and region from the AWS environment or ``--s3-*``);
- ``{"sha256"}``: a `DatabaseStorage` (the records database itself) under that name.

An `S3Storage` reads each object from the bucket its locator names; when the records name
several buckets or prefixes, it is made for reading only and garbage collection skips it
(its listing would cover one of them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.builtin import DatabaseStorage
from lakery.builtin import FileStorage
from lakery.cli.file_roots import FileRoots
from lakery.common.exceptions import ConfigurationError
from lakery.core.records import ContentRecord
from lakery.core.registry import Registry
from lakery.core.storage import Storage

__all__ = ["Discovered", "discover_storages"]

_S3_KEY = len("sha256/ab/") + 64
"""Length of the ``sha256/<ab>/<hex>`` end of an S3 key (what precedes it is the prefix)."""
_SHAPES = 100
"""Most distinct locator shapes looked at per storage name."""


@dataclass
class Discovered:
    """What `discover_storages` found.

    Attributes:
        storages: storages made from the records.
        not_collected: names of storages (of those) that gc must skip, with the reason.
        notes: why a storage name the records use could not be made.
    """

    storages: list[Storage] = field(default_factory=list)
    not_collected: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def discover_storages(
    session: AsyncSession,
    registry: Registry,
    *,
    names: list[str] | None = None,
    s3_endpoint_url: str = "",
    s3_region: str = "",
) -> Discovered:
    """Storages for the storage names of the records (or of `names`) `registry` lacks."""
    if names is None:
        names = list(await session.scalars(select(ContentRecord.storage_name).distinct()))
    found = Discovered()
    for name in sorted(set(names) - set(registry.storages)):
        shapes = await _locator_shapes(session, name)
        _add(found, name, shapes, s3_endpoint_url, s3_region)
    return found


async def _locator_shapes(session: AsyncSession, name: str) -> Counter[tuple[str, ...]]:
    """``("file", root)``, ``("s3", bucket, prefix)``, ``("database",)`` or ``("other",)``
    per distinct locator shape, with the number of records of each."""
    data = ContentRecord.storage_data
    root, bucket, key = (data[k].as_string() for k in ("root", "bucket", "key"))
    sha256 = data["sha256"].as_string()
    length = func.length(key)
    prefix = case((length >= _S3_KEY, func.substr(key, 1, length - _S3_KEY)), else_="")
    prefix = case((bucket.is_not(None), prefix), else_=None)
    has_sha256 = case((sha256.is_not(None), 1), else_=0)
    columns = (root, bucket, prefix, has_sha256)
    rows = await session.execute(
        select(*columns, func.count())
        .where(ContentRecord.storage_name == name)
        .group_by(*columns)
        .limit(_SHAPES)
    )
    shapes: Counter[tuple[str, ...]] = Counter()
    for root_value, bucket_value, prefix_value, sha_flag, count in rows:
        if isinstance(root_value, str) and bucket_value is None:
            shapes["file", root_value] += count
        elif isinstance(bucket_value, str) and root_value is None:
            shapes["s3", bucket_value, (prefix_value or "").rstrip("/")] += count
        elif sha_flag and root_value is None and bucket_value is None:
            shapes["database",] += count
        else:
            shapes["other",] += count
    return shapes


def _add(
    found: Discovered, name: str, shapes: Counter[tuple[str, ...]], endpoint: str, region: str
) -> None:
    kinds = {shape[0] for shape in shapes}
    hint = f"pass --storage-url {name}=URL"
    if len(kinds) != 1 or kinds == {"other"}:
        msg = f"storage {name!r}: its records' locators are not of one known kind; {hint}"
        found.notes.append(msg)
        return
    kind = kinds.pop()
    if kind == "database":
        found.storages.append(DatabaseStorage(name=name))
        return
    places = [shape[1:] for shape, _ in shapes.most_common()]
    if kind == "file":
        existing = [p[0] for p in places if Path(p[0]).is_dir()]
        missing = [p[0] for p in places if p[0] not in existing]
        if missing:
            roots = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            found.notes.append(
                f"storage {name!r}: its records name the root(s) {roots}, which do not exist "
                f"here; {hint}"
            )
        if existing:
            one = len(existing) == 1
            found.storages.append(
                FileStorage(existing[0], name=name) if one else FileRoots(existing, name=name)
            )
        return
    try:
        bucket, prefix = places[0]  # an "s3" shape is (bucket, prefix)
        storage = _s3_storage(name, bucket, prefix, endpoint, region)
    except (ImportError, ConfigurationError) as exc:
        found.notes.append(f"storage {name!r}: cannot make an S3Storage ({exc}); {hint}")
        return
    found.storages.append(storage)
    if len(places) > 1:
        where = ", ".join("/".join(filter(None, p)) for p in places[:3])
        more = ", ..." if len(places) > 3 else ""
        found.not_collected[name] = (
            f"its records name {len(places)} locations ({where}{more}); collect each one "
            f"with --storage-url {name}=URL"
        )


def _s3_storage(name: str, bucket: str, prefix: str, endpoint: str, region: str) -> Storage:
    from lakery.extra.aws import S3Storage

    return S3Storage(
        bucket, prefix=prefix, name=name, endpoint_url=endpoint or None, region=region or None
    )
