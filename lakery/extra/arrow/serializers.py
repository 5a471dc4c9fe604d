"""Table serializers: a format (Parquet or Arrow IPC) and a library's way to and from Arrow.

`TableSerializer` does the work; a subclass names the types it is chosen for and says how
its tables become Arrow tables (`to_arrow`) and back (`from_arrow`). The pandas and polars
modules build theirs on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import TypeVar

import pyarrow as pa

from lakery.core.serializer import Buffer
from lakery.core.serializer import ColumnarSerializer
from lakery.core.serializer import SerializedValue
from lakery.extra.arrow.formats import IpcFormat
from lakery.extra.arrow.formats import ParquetFormat
from lakery.extra.arrow.formats import as_batch

__all__ = [
    "IPC_CONTENT_TYPE",
    "PARQUET_CONTENT_TYPE",
    "IpcBatchSerializer",
    "IpcTableSerializer",
    "ParquetBatchSerializer",
    "ParquetTableSerializer",
    "TableSerializer",
]

T = TypeVar("T")

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
IPC_CONTENT_TYPE = "application/vnd.apache.arrow.file"


class TableSerializer(ColumnarSerializer[T]):
    """A table in Parquet (the default) or the Arrow IPC file format.

    Args:
        compression: the codec (Parquet: "zstd", "snappy", "gzip", "lz4", "brotli",
            "none"; IPC: "zstd", "lz4" or None).
        compression_level: the codec's level (Parquet only), None for its default.
        row_group_size: rows per Parquet row group / IPC record batch.

    The options change how tables are written, not how they are read, so an instance
    with other options keeps the serializer's name.
    """

    format_class: ClassVar[type[ParquetFormat] | type[IpcFormat]] = ParquetFormat
    content_type = PARQUET_CONTENT_TYPE

    def __init__(
        self,
        *,
        compression: str | None = None,
        compression_level: int | None = None,
        row_group_size: int | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        self.row_group_size = row_group_size
        if compression is not None:
            options["compression"] = compression
        if row_group_size is not None:
            if row_group_size < 1:
                msg = f"row_group_size must be at least 1, got {row_group_size}"
                raise ValueError(msg)
            options["row_group_size" if self.format_class is ParquetFormat else "batch_rows"] = (
                row_group_size
            )
        if compression_level is not None:
            if self.format_class is not ParquetFormat:
                msg = "compression_level applies to Parquet only"
                raise ValueError(msg)
            options["compression_level"] = compression_level
        self.format = self.format_class(**options)

    def to_arrow(self, value: T) -> pa.Table:
        """The value as an Arrow table; TypeError/ValueError when it cannot be one."""
        raise NotImplementedError

    def from_arrow(self, table: pa.Table) -> T:
        """The library's table from an Arrow table read back."""
        raise NotImplementedError

    def serialize(self, value: T) -> SerializedValue:
        return self.write(value)

    def write(self, value: T) -> list[bytes]:
        """The bytes of `value` (the Arrow route; polars overrides it with its own writer)."""
        return self.format.write(self.to_arrow(value))

    def deserialize(self, data: Buffer) -> T:
        return self.from_arrow(self.format.read(data))

    def deserialize_columns(self, data: Buffer, columns: Sequence[str]) -> T:
        return self.from_arrow(self.format.read(data, columns))

    reads_files = True

    def read_file(self, path: str) -> T:
        return self.from_arrow(self.format.read_source(path))

    def read_columns(self, path: str, columns: Sequence[str]) -> T | None:
        return self.from_arrow(self.format.read_source(path, columns))


class ParquetTableSerializer(TableSerializer[pa.Table]):
    """A `pyarrow.Table` as Parquet (zstd, page checksums, fixed row groups)."""

    name = "lakery.arrow.parquet@v1"
    types: ClassVar[tuple[type, ...]] = (pa.Table,)

    def to_arrow(self, value: pa.Table) -> pa.Table:
        if not isinstance(value, pa.Table):
            msg = f"expected a pyarrow.Table, got {type(value).__qualname__}"
            raise TypeError(msg)
        return value

    def from_arrow(self, table: pa.Table) -> pa.Table:
        return table


class ParquetBatchSerializer(TableSerializer[pa.RecordBatch]):
    """A `pyarrow.RecordBatch` as Parquet; loads back as one record batch."""

    name = "lakery.arrow.parquet.batch@v1"
    types: ClassVar[tuple[type, ...]] = (pa.RecordBatch,)

    def to_arrow(self, value: pa.RecordBatch) -> pa.Table:
        if not isinstance(value, pa.RecordBatch):
            msg = f"expected a pyarrow.RecordBatch, got {type(value).__qualname__}"
            raise TypeError(msg)
        return pa.Table.from_batches([value])

    def from_arrow(self, table: pa.Table) -> pa.RecordBatch:
        return as_batch(table)


class IpcTableSerializer(ParquetTableSerializer):
    """A `pyarrow.Table` in the Arrow IPC file format: fast, memory-mappable, larger.

    Chosen by name or class only (``StorableValue(table, serializer=IpcTableSerializer)``).
    """

    name = "lakery.arrow.ipc@v1"
    types = ()
    format_class = IpcFormat
    content_type = IPC_CONTENT_TYPE


class IpcBatchSerializer(ParquetBatchSerializer):
    """A `pyarrow.RecordBatch` in the Arrow IPC file format (by name or class only)."""

    name = "lakery.arrow.ipc.batch@v1"
    types = ()
    format_class = IpcFormat
    content_type = IPC_CONTENT_TYPE
