"""Apache Arrow tables and record batches as lakery content: Parquet or Arrow IPC.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.arrow"])
```

`pyarrow.Table` and `pyarrow.RecordBatch` values are then stored as Parquet (zstd, page
checksums); the Arrow IPC serializers are chosen by name or class. Streams of record
batches use `ArrowStreamSerializer`. `lakery.extra.pandas` and `lakery.extra.polars`
build on this module. Needs the ``arrow`` extra
(``pip install -e '/path/to/lakery[arrow]'``).
"""

try:
    import pyarrow  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.arrow needs pyarrow: install lakery's 'arrow' extra, "
        "e.g. pip install -e '/path/to/lakery[arrow]'"
    )
    raise ImportError(msg) from exc

from lakery.extra.arrow.serializers import IpcBatchSerializer
from lakery.extra.arrow.serializers import IpcTableSerializer
from lakery.extra.arrow.serializers import ParquetBatchSerializer
from lakery.extra.arrow.serializers import ParquetTableSerializer
from lakery.extra.arrow.serializers import TableSerializer
from lakery.extra.arrow.stream import ArrowStreamSerializer
from lakery.extra.arrow.stream import ParquetStreamSerializer
from lakery.extra.arrow.stream import collect_table

__all__ = [
    "ArrowStreamSerializer",
    "IpcBatchSerializer",
    "IpcTableSerializer",
    "ParquetBatchSerializer",
    "ParquetStreamSerializer",
    "ParquetTableSerializer",
    "TableSerializer",
    "collect_table",
]
