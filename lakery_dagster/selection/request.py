"""What an input asks for, read from its context and metadata before any database work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import InputContext

from lakery_dagster.tables import input_annotation
from lakery_dagster.tables import input_columns
from lakery_dagster.tables import wants_concat

__all__ = ["InputRequest", "read_request"]


@dataclass(frozen=True)
class InputRequest:
    """An input's metadata (checked where it is read) and what it loads."""

    where: str
    """The input, for messages: ``input 'name' (asset 'key')``."""
    metadata: Mapping[str, Any]
    partitions: list[str] | None
    """The upstream partitions; None when the input is not partitioned."""
    columns: list[str] | None
    concat: bool
    annotation: Any

    @property
    def wanted(self) -> list[str | None]:
        """The partitions to select, ``[None]`` for an unpartitioned input."""
        return list(self.partitions) if self.partitions is not None else [None]


def read_request(context: InputContext) -> InputRequest:
    metadata = {k: getattr(v, "value", v) for k, v in (context.definition_metadata or {}).items()}
    where = _describe(context)
    partitions = [str(k) for k in context.asset_partition_keys] if _partitioned(context) else None
    return InputRequest(
        where=where,
        metadata=metadata,
        partitions=partitions,
        columns=input_columns(metadata, where),
        concat=wants_concat(metadata, where),
        annotation=input_annotation(context),
    )


def _describe(context: InputContext) -> str:
    name = context.name if context.has_input_name else "?"
    if context.has_asset_key:
        return f"input {name!r} (asset {context.asset_key.to_user_string()!r})"
    return f"input {name!r}"


def _partitioned(context: InputContext) -> bool:
    try:
        return context.has_asset_key and context.has_asset_partitions
    except Exception:
        return False
