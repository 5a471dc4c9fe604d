"""polars DataFrames and LazyFrames as Parquet (polars' own writer) or Arrow IPC.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.polars"])
```

Parquet is written and read by polars itself (zstd, statistics, polars' fixed row group
size, the same bytes for the same frame: its writer encodes row groups in parallel and
needs about one row group of memory besides the file). A `LazyFrame` is collected when
saved and comes back as a `LazyFrame`. Needs the ``polars`` extra
(``pip install -e '/path/to/lakery[polars]'``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import ClassVar
from typing import Literal

try:
    import polars as pl
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.polars needs polars and pyarrow: install them with "
        "pip install -e '/path/to/lakery[polars]'"
    )
    raise ImportError(msg) from exc

from lakery.core.serializer import Buffer
from lakery.extra.arrow.formats import ChunkSink
from lakery.extra.arrow.formats import IpcFormat
from lakery.extra.arrow.formats import ParquetCompression
from lakery.extra.arrow.formats import ParquetFormat
from lakery.extra.arrow.formats import check_columns
from lakery.extra.arrow.serializers import IPC_CONTENT_TYPE
from lakery.extra.arrow.serializers import TableSerializer

__all__ = ["PolarsIpcSerializer", "PolarsLazyParquetSerializer", "PolarsParquetSerializer"]

_READ_ERRORS = (pl.exceptions.PolarsError, OSError, pa.ArrowException)


class PolarsParquetSerializer(TableSerializer[pl.DataFrame]):
    """A `polars.DataFrame` as Parquet, written and read by polars."""

    name = "lakery.polars.parquet@v1"
    types: ClassVar[tuple[type, ...]] = (pl.DataFrame,)

    def to_arrow(self, value: pl.DataFrame) -> pa.Table:
        return _frame(value).to_arrow()

    def from_arrow(self, table: pa.Table) -> pl.DataFrame:
        frame = pl.from_arrow(table)
        return frame if isinstance(frame, pl.DataFrame) else frame.to_frame()

    def write(self, value: pl.DataFrame) -> list[bytes]:
        if not isinstance(self.format, ParquetFormat):
            return super().write(value)
        sink = ChunkSink()
        level = self.format.compression_level
        frame = _frame(value)
        if max(frame.n_chunks("all"), default=1) > 1:
            frame = frame.rechunk()  # polars' file depends on the chunks: one layout, one file
        frame.write_parquet(
            sink,  # type: ignore[arg-type]  # any file-like object will do; the stubs want IO
            compression=_polars_codec(self.format.compression),
            compression_level=level,
            statistics=True,
            row_group_size=self.row_group_size,  # None: polars' own (fixed, 512² rows)
        )
        return sink.chunks  # written one after another: never joined into one buffer

    def deserialize(self, data: Buffer) -> pl.DataFrame:
        return self._read(io.BytesIO(data), None)

    def deserialize_columns(self, data: Buffer, columns: Sequence[str]) -> pl.DataFrame:
        return self._read(io.BytesIO(data), columns)

    def read_file(self, path: str) -> pl.DataFrame:
        return self._read(path, None)

    def read_columns(self, path: str, columns: Sequence[str]) -> pl.DataFrame | None:
        return self._read(path, columns)

    def _read(self, source: io.BytesIO | str, columns: Sequence[str] | None) -> pl.DataFrame:
        if not isinstance(self.format, ParquetFormat):
            if isinstance(source, str):
                return self.from_arrow(self.format.read_source(source, columns))
            return self.from_arrow(self.format.read(source.getbuffer(), columns))
        try:
            if columns is not None:
                check_columns(list(pl.read_parquet_schema(source)), columns)
                if isinstance(source, io.BytesIO):
                    source.seek(0)
            wanted = list(columns) if columns is not None else None
            if isinstance(source, str):  # a file: read, not mapped (mapped pages are memory too)
                return pl.read_parquet(source, columns=wanted, memory_map=False)
            return pl.read_parquet(source, columns=wanted)
        except _READ_ERRORS as exc:
            msg = f"not a readable Parquet table: {exc}"
            raise ValueError(msg) from exc


class PolarsLazyParquetSerializer(PolarsParquetSerializer):
    """A `polars.LazyFrame`: collected when saved, a `LazyFrame` again when loaded."""

    name = "lakery.polars.lazy.parquet@v1"
    types = (pl.LazyFrame,)

    def write(self, value: pl.LazyFrame) -> list[bytes]:  # type: ignore[override]
        return super().write(_frame(value))

    def to_arrow(self, value: pl.LazyFrame) -> pa.Table:  # type: ignore[override]
        return _frame(value).to_arrow()

    def from_arrow(self, table: pa.Table) -> pl.LazyFrame:  # type: ignore[override]
        return super().from_arrow(table).lazy()

    def _read(self, source: io.BytesIO | str, columns: Sequence[str] | None) -> pl.LazyFrame:  # type: ignore[override]
        frame = super()._read(source, columns)
        return frame if isinstance(frame, pl.LazyFrame) else frame.lazy()


class PolarsIpcSerializer(PolarsParquetSerializer):
    """A `polars.DataFrame` in the Arrow IPC file format (chosen by name or class only)."""

    name = "lakery.polars.ipc@v1"
    types = ()
    format_class = IpcFormat
    content_type = IPC_CONTENT_TYPE


def _polars_codec(
    codec: ParquetCompression,
) -> Literal["zstd", "snappy", "gzip", "lz4", "brotli", "uncompressed"]:
    """Polars' name of a Parquet codec (it calls "none" "uncompressed")."""
    return "uncompressed" if codec == "none" else codec


def _frame(value: object) -> pl.DataFrame:
    if isinstance(value, pl.LazyFrame):
        try:
            return value.collect()
        except pl.exceptions.PolarsError as exc:
            msg = f"the LazyFrame could not be collected: {exc}"
            raise ValueError(msg) from exc
    if not isinstance(value, pl.DataFrame):
        msg = f"expected a polars.DataFrame, got {type(value).__qualname__}"
        raise TypeError(msg)
    return value
