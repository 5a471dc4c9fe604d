"""Streams of record batches: the Arrow IPC stream format, or one Parquet file.

`ArrowStreamSerializer` writes the standard Arrow IPC *stream* format and reads each
batch back as soon as its bytes have arrived, holding one message at a time.
`ParquetStreamSerializer` writes one standard Parquet file a row group at a time; a
Parquet file is read from its footer, so loading spools the bytes to an anonymous
temporary file and then yields one row group at a time. Either way a table of any size
is saved and loaded without holding it twice.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import AsyncIterable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import IO
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from lakery.core.serializer import Buffer
from lakery.core.serializer import StreamDecoder
from lakery.core.serializer import StreamEncoder
from lakery.core.serializer import StreamSerializer
from lakery.extra.arrow.formats import ChunkSink
from lakery.extra.arrow.formats import IpcCompression
from lakery.extra.arrow.formats import ParquetCompression
from lakery.extra.arrow.serializers import PARQUET_CONTENT_TYPE

__all__ = ["ArrowStreamSerializer", "ParquetStreamSerializer", "collect_table"]

STREAM_ROW_GROUP_ROWS = 1 << 18
"""Rows per row group of `ParquetStreamSerializer` (what a save holds in memory at most)."""

_CONTINUATION = 0xFFFFFFFF
_SCHEMA, _DICTIONARY, _RECORD_BATCH = 1, 2, 3  # the IPC MessageHeader union's types
_READ_ERRORS = (pa.ArrowException, OSError)


class ArrowStreamSerializer(StreamSerializer[pa.RecordBatch]):
    """Record batches (or tables, batch by batch) in the Arrow IPC stream format.

    Args:
        compression: buffer compression, "zstd" (the default), "lz4" or None.

    Every item must have the first item's schema.
    """

    name = "lakery.arrow.stream@v1"
    types = (pa.RecordBatch, pa.Table)
    content_type = "application/vnd.apache.arrow.stream"

    def __init__(self, *, compression: IpcCompression | None = "zstd") -> None:
        self.compression = compression

    def encoder(self) -> StreamEncoder[pa.RecordBatch]:
        return _IpcEncoder(self.compression)

    def decoder(self) -> StreamDecoder[pa.RecordBatch]:
        return _IpcDecoder()


class ParquetStreamSerializer(StreamSerializer[pa.RecordBatch]):
    """Record batches (or tables) as one standard Parquet file, a row group at a time.

    Args:
        row_group_size: rows per row group; the file does not depend on how the stream
            splits its rows. A save holds at most about one row group.
        compression: the Parquet codec ("zstd" by default).

    Chosen by name or class only (``StorableStream(batches,
    serializer=ParquetStreamSerializer)``).
    """

    name = "lakery.arrow.parquet.stream@v1"
    types = ()
    content_type = PARQUET_CONTENT_TYPE

    def __init__(
        self,
        *,
        row_group_size: int = STREAM_ROW_GROUP_ROWS,
        compression: ParquetCompression = "zstd",
    ) -> None:
        if row_group_size < 1:
            msg = f"row_group_size must be at least 1, got {row_group_size}"
            raise ValueError(msg)
        self.row_group_size = row_group_size
        self.compression = compression

    def encoder(self) -> StreamEncoder[pa.RecordBatch]:
        return _ParquetEncoder(self.row_group_size, self.compression)

    def decoder(self) -> StreamDecoder[pa.RecordBatch]:
        return _ParquetDecoder()


async def collect_table(
    batches: AsyncIterable[pa.RecordBatch | pa.Table], *, schema: pa.Schema | None = None
) -> pa.Table:
    """A loaded stream of batches as one table (its batches, not copied).

    An empty stream needs `schema` to give an empty table.
    """
    collected: list[pa.RecordBatch] = []
    async for item in batches:
        collected.extend(item.to_batches() if isinstance(item, pa.Table) else [item])
    if not collected and schema is None:
        msg = "the stream has no batches: pass schema= to get an empty table"
        raise ValueError(msg)
    return pa.Table.from_batches(collected, schema=schema)


# -- writing --------------------------------------------------------------------------


def _batches_of(item: Any, schema: pa.Schema | None) -> list[pa.RecordBatch]:
    if isinstance(item, pa.Table):
        batches = item.to_batches()
    elif isinstance(item, pa.RecordBatch):
        batches = [item]
    else:
        msg = f"expected a pyarrow.RecordBatch or Table, got {type(item).__qualname__}"
        raise TypeError(msg)
    if schema is not None and not item.schema.equals(schema, check_metadata=False):
        msg = f"every item needs the stream's first schema: {_difference(schema, item.schema)}"
        raise ValueError(msg)
    return batches


def _difference(expected: pa.Schema, got: pa.Schema) -> str:
    """Which field of `got` differs from `expected`, in words."""
    for index, field in enumerate(expected):
        if index >= len(got):
            return f"field {field.name!r} ({field.type}) is missing"
        other = got.field(index)
        if other.name != field.name:
            return f"field {index} is {other.name!r}, expected {field.name!r}"
        if other.type != field.type:
            return f"field {field.name!r} has type {other.type}, expected {field.type}"
        if other.nullable != field.nullable:
            return f"field {field.name!r} has nullable={other.nullable}, expected {field.nullable}"
    if len(got) > len(expected):
        return f"field {got.field(len(expected)).name!r} is extra"
    return f"the schemas differ: {got} instead of {expected}"  # pragma: no cover


class _IpcEncoder(StreamEncoder[pa.RecordBatch]):
    def __init__(self, compression: IpcCompression | None) -> None:
        self._options = ipc.IpcWriteOptions(compression=compression)
        self._sink = ChunkSink()
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def encode(self, item: pa.RecordBatch) -> Buffer:
        batches = _batches_of(item, self._schema)
        if self._writer is None:
            self._schema = item.schema
            # Any file-like object will do; pyarrow's stubs want IOBase.
            self._writer = ipc.new_stream(self._sink, item.schema, options=self._options)  # type: ignore[arg-type]
        for batch in batches:
            self._writer.write_batch(batch)
        return self._sink.take()

    def finish(self) -> Buffer:
        if self._writer is None:
            return b""  # no items: no schema to write; decodes as an empty stream
        self._writer.close()
        return self._sink.take()


class _ParquetEncoder(StreamEncoder[pa.RecordBatch]):
    def __init__(self, row_group_size: int, compression: ParquetCompression) -> None:
        self._rows = row_group_size
        self._compression = compression
        self._sink = ChunkSink()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def encode(self, item: pa.RecordBatch) -> Buffer:
        batches = _batches_of(item, self._schema)
        if self._writer is None:
            self._schema = item.schema
            self._writer = pq.ParquetWriter(
                self._sink,  # type: ignore[arg-type]  # any file-like object; the stubs want IO
                item.schema,
                compression=self._compression,
                write_page_checksum=True,
            )
        self._pending.extend(batches)
        self._pending_rows += sum(b.num_rows for b in batches)
        while self._pending_rows >= self._rows:
            pending = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(pending.slice(0, self._rows), row_group_size=self._rows)
            self._pending = pending.slice(self._rows).to_batches()
            self._pending_rows -= self._rows
        return self._sink.take()

    def finish(self) -> Buffer:
        if self._writer is None:
            return b""
        if self._pending_rows:
            rest = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(rest, row_group_size=self._rows)
        self._writer.close()  # the footer, with the schema even when there were no rows
        return self._sink.take()


# -- reading --------------------------------------------------------------------------


class _Feed:
    """A read-only file for pyarrow's stream reader, fed whole messages."""

    closed = False

    def __init__(self) -> None:
        self._data = bytearray()

    def push(self, data: bytes | bytearray) -> None:
        self._data += data

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data)
        data = bytes(self._data[:size])
        del self._data[:size]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _IpcDecoder(StreamDecoder[pa.RecordBatch]):
    """Finds message boundaries itself, then lets pyarrow read each complete message."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._feed = _Feed()
        self._reader: Any = None
        self._ended = False
        self._started = False

    def decode(self, chunk: Buffer) -> list[pa.RecordBatch]:
        if not memoryview(chunk).nbytes:
            return []
        if self._ended:
            msg = "bytes after the end of the Arrow stream"
            raise ValueError(msg)
        self._started = True
        self._buffer += chunk
        batches = []
        while not self._ended and (message := self._next_message()) is not None:
            kind, data = message
            self._feed.push(data)
            try:
                if kind == _SCHEMA and self._reader is None:
                    # Any file-like object will do; pyarrow's stubs want IOBase.
                    self._reader = ipc.open_stream(self._feed)  # type: ignore[arg-type]
                elif kind == _RECORD_BATCH:
                    if self._reader is None:
                        raise ValueError("a record batch before the schema")
                    batches.append(self._reader.read_next_batch())
            except _READ_ERRORS as exc:
                msg = f"not a readable Arrow stream: {exc}"
                raise ValueError(msg) from exc
        if self._ended and self._buffer:
            msg = f"{len(self._buffer)} bytes after the end of the Arrow stream"
            raise ValueError(msg)
        return batches

    def finish(self) -> list[pa.RecordBatch]:
        if self._started and not self._ended:
            msg = "the Arrow stream ended before its end-of-stream marker (truncated)"
            raise ValueError(msg)
        return []

    def _next_message(self) -> tuple[int, bytes] | None:
        """The next complete message (its header type and bytes), or None for more bytes."""
        buffer = self._buffer
        if len(buffer) < 8:
            return None
        continuation, length = struct.unpack_from("<Ii", buffer, 0)
        if continuation != _CONTINUATION or length < 0:
            msg = "not an Arrow IPC stream (no message continuation marker)"
            raise ValueError(msg)
        if length == 0:
            del buffer[:8]
            self._ended = True
            return None
        if len(buffer) < 8 + length:
            return None
        kind, body = _message_fields(memoryview(buffer)[8 : 8 + length])
        end = 8 + length + body
        if len(buffer) < end:
            return None
        data = bytes(buffer[:end])
        del buffer[:end]
        return kind, data


def _message_fields(metadata: memoryview) -> tuple[int, int]:
    """(header type, body length) of a flatbuffer IPC `Message`.

    The table's fields: version (0), header_type (1), header (2), bodyLength (3).
    """
    try:
        (table,) = struct.unpack_from("<I", metadata, 0)
        (vtable_offset,) = struct.unpack_from("<i", metadata, table)
        vtable = table - vtable_offset
        (vtable_size,) = struct.unpack_from("<H", metadata, vtable)

        def field(index: int) -> int:
            slot = 4 + 2 * index
            if slot + 2 > vtable_size:
                return 0
            return int(struct.unpack_from("<H", metadata, vtable + slot)[0])

        kind_at, body_at = field(1), field(3)
        kind = metadata[table + kind_at] if kind_at else 0
        body = struct.unpack_from("<q", metadata, table + body_at)[0] if body_at else 0
    except (struct.error, IndexError) as exc:
        msg = "a malformed Arrow IPC message header"
        raise ValueError(msg) from exc
    if body < 0 or kind not in (_SCHEMA, _DICTIONARY, _RECORD_BATCH):
        msg = f"an unexpected Arrow IPC message (type {kind}, body {body} bytes)"
        raise ValueError(msg)
    return kind, body


class _ParquetDecoder(StreamDecoder[pa.RecordBatch]):
    """Spools the file to an anonymous temporary file; `finish` reads its row groups."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None

    def decode(self, chunk: Buffer) -> list[pa.RecordBatch]:
        if memoryview(chunk).nbytes:
            if self._file is None:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish()
            self._file.write(chunk)
        return []

    def finish(self) -> Iterable[pa.RecordBatch]:
        file, self._file = self._file, None
        if file is None:
            return []
        try:
            file.flush()
            file.seek(0)
            reader = pq.ParquetFile(file, page_checksum_verification=True)
        except _READ_ERRORS as exc:
            file.close()
            msg = f"not a readable Parquet file: {exc}"
            raise ValueError(msg) from exc
        return _row_groups(reader, file)


def _row_groups(reader: pq.ParquetFile, file: IO[bytes]) -> Iterator[pa.RecordBatch]:
    try:
        for index in range(reader.num_row_groups):
            try:
                table = reader.read_row_group(index)
            except _READ_ERRORS as exc:
                msg = f"row group {index} of the Parquet stream is unreadable: {exc}"
                raise ValueError(msg) from exc
            yield from table.to_batches()
    finally:
        file.close()
