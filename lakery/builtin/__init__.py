"""Built-in components: JSON, CSV, date/time and bytes serializers; file, memory and
database storages; `StorableValue`, `StorableStream` and `StorableDataclass`.

A `Registry(modules=["lakery.builtin"])` gets all of them, with `DatabaseStorage` (the
records database itself) as its default storage.
"""

from lakery.builtin.database_storage import DatabaseStorage
from lakery.builtin.dataclass import DataclassUnpacker
from lakery.builtin.dataclass import StorableDataclass
from lakery.builtin.file_storage import FileStorage
from lakery.builtin.json import JsonSerializer
from lakery.builtin.json import JsonStreamSerializer
from lakery.builtin.memory_storage import MemoryStorage
from lakery.builtin.storables import StorableStream
from lakery.builtin.storables import StorableValue
from lakery.builtin.storables import StreamUnpacker
from lakery.builtin.storables import ValueUnpacker
from lakery.builtin.text import BytesSerializer
from lakery.builtin.text import CsvSerializer
from lakery.builtin.text import IsoDateSerializer
from lakery.builtin.text import IsoDatetimeSerializer

__all__ = [
    "BytesSerializer",
    "CsvSerializer",
    "DatabaseStorage",
    "DataclassUnpacker",
    "FileStorage",
    "IsoDateSerializer",
    "IsoDatetimeSerializer",
    "JsonSerializer",
    "JsonStreamSerializer",
    "MemoryStorage",
    "StorableDataclass",
    "StorableStream",
    "StorableValue",
    "StreamUnpacker",
    "ValueUnpacker",
]

lakery_default_storage = DatabaseStorage
"""The default storage of registries built from this module."""
