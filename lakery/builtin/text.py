"""CSV tables, ISO-8601 dates and times, and raw bytes."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import date
from datetime import datetime

from lakery.core.serializer import Buffer
from lakery.core.serializer import Serializer

__all__ = ["BytesSerializer", "CsvSerializer", "IsoDateSerializer", "IsoDatetimeSerializer"]


class CsvSerializer(Serializer[list[dict[str, str]]]):
    """Rows (a sequence of mappings with the same keys) as CSV with a header line.

    Values are written with `str()` and read back as strings. Not chosen by type: name it
    for a part (e.g. ``UnpackedValue(rows, serializer=CsvSerializer)``).
    """

    name = "lakery.csv@v1"
    content_type = "text/csv"
    content_encoding = "utf-8"

    def serialize(self, value: Sequence[Mapping[str, object]]) -> bytes:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            msg = f"CSV needs a sequence of row mappings, got {type(value).__name__}"
            raise TypeError(msg)
        columns: list[str] = list(value[0].keys()) if value else []
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
        writer.writeheader()
        for row in value:
            if not isinstance(row, Mapping) or list(row.keys()) != columns:
                msg = f"every CSV row must be a mapping with the columns {columns}, got {row!r}"
                raise ValueError(msg)
            writer.writerow(row)
        return buffer.getvalue().encode()

    def deserialize(self, data: Buffer) -> list[dict[str, str]]:
        text = bytes(data).decode()
        return [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]


class IsoDatetimeSerializer(Serializer[datetime]):
    """A datetime as ISO-8601 text (time zone kept when present)."""

    name = "lakery.datetime.iso@v1"
    types = (datetime,)
    content_type = "text/plain"
    content_encoding = "utf-8"

    def serialize(self, value: datetime) -> bytes:
        if not isinstance(value, datetime):
            msg = f"expected a datetime, got {type(value).__name__}"
            raise TypeError(msg)
        return value.isoformat().encode()

    def deserialize(self, data: Buffer) -> datetime:
        return datetime.fromisoformat(bytes(data).decode())


class IsoDateSerializer(Serializer[date]):
    """A date as ISO-8601 text."""

    name = "lakery.date.iso@v1"
    types = (date,)
    content_type = "text/plain"
    content_encoding = "utf-8"

    def serialize(self, value: date) -> bytes:
        if not isinstance(value, date) or isinstance(value, datetime):
            msg = f"expected a date, got {type(value).__name__}"
            raise TypeError(msg)
        return value.isoformat().encode()

    def deserialize(self, data: Buffer) -> date:
        return date.fromisoformat(bytes(data).decode())


class BytesSerializer(Serializer[bytes]):
    """Raw bytes, stored as they are."""

    name = "lakery.bytes@v1"
    types = (bytes, bytearray)
    content_type = "application/octet-stream"

    def serialize(self, value: bytes) -> Buffer:
        if not isinstance(value, bytes | bytearray | memoryview):
            msg = f"expected bytes, got {type(value).__name__}"
            raise TypeError(msg)
        return value

    def deserialize(self, data: Buffer) -> bytes:
        return bytes(data)
