"""What lakery's migrations manage: its tables (and their objects) and its version table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BASELINE_TABLES", "TABLES", "VERSION_TABLE", "object_filter"]

VERSION_TABLE = "lakery_alembic_version"
"""The table that holds the revision of lakery's schema."""

TABLES = ("lakery_manifests", "lakery_contents", "lakery_blobs", "lakery_lineage")
"""lakery's tables; the migrations leave every other table of the database alone."""

BASELINE_TABLES = TABLES[:3]
"""The tables of the first revision (``"0001"``): tables made by an older
`BaseRecord.create_all` that are adopted have all of these (and maybe later ones)."""


def object_filter(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for a database of `dialect` (e.g. ``"sqlite"``): only
    lakery's tables and their objects are managed, and indexes limited to another dialect
    (``Index(...).ddl_if(dialect=...)``, such as the PostgreSQL GIN index on tags) are
    left out."""

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table":
            return name in TABLES
        table = getattr(obj, "table", None)
        if table is not None and table.name not in TABLES:
            return False
        if type_ == "index" and not reflected:
            only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
            if only is not None and only != dialect:
                return False
        return True

    return include_object
