"""Arrow tables as Parquet or Arrow IPC bytes, and back: the formats behind every table
serializer.

Writers return the chunks they wrote, in order (lakery writes them one after another,
so a large table's file is never joined into, or regrown as, one buffer). Both writers
give the same bytes for the same table however it is split into chunks
(Parquet row groups and IPC record batches hold a fixed number of rows), so equal tables
get equal content hashes. Readers take the buffer they are given without copying it.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import TypeAlias

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from lakery.core.serializer import Buffer

__all__ = [
    "ChunkSink",
    "IpcCompression",
    "IpcFormat",
    "ParquetCompression",
    "ParquetFormat",
    "as_batch",
    "check_columns",
    "select_columns",
]

ROW_GROUP_ROWS = 1 << 20
"""Rows per Parquet row group (pyarrow's default) and per IPC record batch."""

_READ_ERRORS = (pa.ArrowException, OSError)

ParquetCompression: TypeAlias = Literal["zstd", "snappy", "gzip", "lz4", "brotli", "none"]
"""The Parquet codecs."""
IpcCompression: TypeAlias = Literal["zstd", "lz4"]
"""The Arrow IPC buffer codecs (None: uncompressed)."""


class ChunkSink:
    """A write-only file for the Parquet and IPC writers that keeps the chunks written
    (no growing buffer that is copied as it grows) until they are taken."""

    closed = False

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._size = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self._size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        """What was written since the last take, as one bytes."""
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True)
class ParquetFormat:
    """Parquet with zstd and page checksums (written, and checked on every read).

    Parquet counts rows by their column values: a table without columns comes back with
    no rows (the IPC format keeps its row count).
    """

    compression: ParquetCompression = "zstd"
    compression_level: int | None = None
    row_group_size: int = ROW_GROUP_ROWS

    def write(self, table: pa.Table) -> list[bytes]:
        sink = ChunkSink()
        pq.write_table(
            table,
            sink,  # type: ignore[arg-type]  # any file-like object will do; the stubs want IO
            row_group_size=self.row_group_size,
            compression=self.compression,
            compression_level=self.compression_level,
            write_page_checksum=True,
        )
        return sink.chunks

    def read(self, data: Buffer, columns: Sequence[str] | None = None) -> pa.Table:
        return self.read_source(pa.BufferReader(pa.py_buffer(data)), columns)

    def read_source(self, source: Any, columns: Sequence[str] | None = None) -> pa.Table:
        """Read from a path or a pyarrow input file (columns in parallel, as pyarrow does)."""
        try:
            if columns is not None:
                _check_columns(pq.read_schema(source), columns)
                if not isinstance(source, str):
                    source.seek(0)
            return pq.read_table(
                source,
                columns=list(columns) if columns is not None else None,
                use_pandas_metadata=True,
                page_checksum_verification=True,
            )
        except _READ_ERRORS as exc:
            msg = f"not a readable Parquet table: {exc}"
            raise ValueError(msg) from exc


@dataclass(frozen=True)
class IpcFormat:
    """The Arrow IPC file format (memory-mappable), buffers zstd-compressed by default."""

    compression: IpcCompression | None = "zstd"
    batch_rows: int = ROW_GROUP_ROWS

    def write(self, table: pa.Table) -> list[bytes]:
        sink = ChunkSink()
        options = ipc.IpcWriteOptions(compression=self.compression)
        # Any file-like object will do; pyarrow's stubs want IOBase.
        with ipc.new_file(sink, table.schema, options=options) as writer:  # type: ignore[arg-type]
            for batch in _fixed_batches(table, self.batch_rows):
                writer.write_batch(batch)
        return sink.chunks

    def read(self, data: Buffer, columns: Sequence[str] | None = None) -> pa.Table:
        return self.read_source(pa.BufferReader(pa.py_buffer(data)), columns)

    def read_source(self, source: Any, columns: Sequence[str] | None = None) -> pa.Table:
        try:
            if isinstance(source, str):
                source = pa.memory_map(source, "r")
            table = ipc.open_file(source).read_all()
        except _READ_ERRORS as exc:
            msg = f"not a readable Arrow IPC file: {exc}"
            raise ValueError(msg) from exc
        return table if columns is None else select_columns(table, columns)


def _fixed_batches(table: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    """The table as record batches of exactly `rows` rows (the last one shorter)."""
    if table.num_columns == 0:  # no columns to slice: one batch that keeps the row count
        structs = pa.array([{}] * table.num_rows, pa.struct([]))  # a StructArray
        yield pa.RecordBatch.from_struct_array(structs)  # type: ignore[arg-type]  # stubs: Array
        return
    if table.num_rows == 0:
        yield as_batch(table)
        return
    for start in range(0, table.num_rows, rows):
        yield as_batch(table.slice(start, rows))


def as_batch(table: pa.Table) -> pa.RecordBatch:
    """The table's rows as one record batch (an empty one for a table without rows)."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def select_columns(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """`columns` of `table`, in that order (and a pandas index stored as columns, as
    Parquet readers keep it); KeyError naming what is missing."""
    _check_columns(table.schema, columns)
    wanted = list(columns)
    index = (table.schema.pandas_metadata or {}).get("index_columns", [])
    wanted += [c for c in index if isinstance(c, str) and c not in wanted]
    return table.select(wanted)


def _check_columns(schema: pa.Schema, columns: Sequence[str]) -> None:
    check_columns(schema.names, columns)


def check_columns(names: Sequence[str], columns: Sequence[str]) -> None:
    """KeyError naming the `columns` that are not among `names`, and the ones there are."""
    missing = [c for c in columns if c not in names]
    if missing:
        msg = f"no column {', '.join(map(repr, missing))} in the table (it has: {list(names)})"
        raise KeyError(msg)
