"""Tables (pyarrow, pandas, polars) as Dagster outputs and inputs.

Outputs: a table's materialization gets ``dagster/column_schema``, ``dagster/row_count``
and ``lakery/table`` (library, type and serializer), read from the in-memory value.
Inputs: ``AssetIn(metadata={"columns": [...]})`` loads only those columns,
``{"lakery/concat": True}`` concatenates a partition fan-in into one table, and a table
annotation (``pd.DataFrame``, ``pl.LazyFrame``, ``dict[str, pa.Table]``, ...) converts
what was loaded to that library.

pyarrow, pandas and polars are imported only once a value or annotation is one of theirs,
so `lakery_dagster` works without the table extras.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from dagster import InputContext
from dagster import MetadataValue
from dagster import TableColumn
from dagster import TableSchema

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.exceptions import StorableTypeError
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery_dagster.tags import COLUMNS_METADATA
from lakery_dagster.tags import CONCAT_METADATA

__all__ = [
    "COLUMN_SCHEMA",
    "ROW_COUNT",
    "TABLE",
    "concat_partitions",
    "convert_input",
    "input_columns",
    "is_table",
    "table_metadata",
    "wants_concat",
]

COLUMN_SCHEMA = "dagster/column_schema"
ROW_COUNT = "dagster/row_count"
TABLE = "lakery/table"

_TABLE_CLASSES = {
    "pyarrow": ("Table", "RecordBatch"),
    "pandas": ("DataFrame",),
    "polars": ("DataFrame", "LazyFrame"),
}


def library_of(value: Any) -> str | None:
    """``"pyarrow"``, ``"pandas"`` or ``"polars"`` for a table of that library, else None."""
    library = type(value).__module__.partition(".")[0]
    module = sys.modules.get(library)
    if library not in _TABLE_CLASSES or module is None:
        return None
    classes = tuple(getattr(module, name) for name in _TABLE_CLASSES[library])
    return library if isinstance(value, classes) else None


def is_table(value: Any) -> bool:
    """Whether `value` is a pyarrow Table/RecordBatch, a pandas or polars (Lazy)Frame."""
    return library_of(value) is not None


def table_metadata(
    value: Any, records: Sequence[tuple[str, ManifestRecord]], registry: Registry
) -> dict[str, Any]:
    """Column schema, row count and ``lakery/table`` of a table output ({} for others).

    Only the schema and the row count are read: nothing is converted or copied. A
    LazyFrame's rows are counted from the Parquet footer of the saved file when the
    storage has it on local disk, and left out otherwise.
    """
    library = library_of(value)
    if library is None or len(records) != 1:
        return {}
    schema, rows = _schema_and_rows(value, library)
    serializers = sorted({c.serializer_name for c in records[0][1].contents})
    if rows is None:
        rows = _saved_rows(records[0][1], registry)
    columns = [TableColumn(str(f.name), str(f.type)) for f in schema]
    metadata: dict[str, Any] = {
        COLUMN_SCHEMA: MetadataValue.table_schema(TableSchema(columns=columns)),
        TABLE: MetadataValue.json(
            {
                "library": library,
                "type": f"{library}.{type(value).__name__}",
                "serializer": ", ".join(serializers),
            }
        ),
    }
    if rows is not None:
        metadata[ROW_COUNT] = MetadataValue.int(int(rows))
    return metadata


def _schema_and_rows(value: Any, library: str) -> tuple[Any, int | None]:
    import pyarrow as pa

    if library == "pyarrow":
        return value.schema, value.num_rows
    if library == "pandas":
        return pa.Schema.from_pandas(value), len(value)
    import polars as pl

    if isinstance(value, pl.LazyFrame):
        return pl.DataFrame(schema=value.collect_schema()).to_arrow().schema, None
    return value.head(0).to_arrow().schema, value.height


def _saved_rows(record: ManifestRecord, registry: Registry) -> int | None:
    for content in record.contents:
        if "parquet" not in content.content_type:
            continue
        storage = registry.get_storage(content.storage_name)
        local_path = getattr(storage, "local_path", None)
        path = local_path(content.storage_data) if local_path is not None else None
        if path:
            import pyarrow.parquet as pq

            return pq.read_metadata(path).num_rows
    return None


def input_columns(metadata: Mapping[str, Any], where: str) -> list[str] | None:
    """The ``columns`` of an input's metadata, checked (None when not given)."""
    columns = metadata.get(COLUMNS_METADATA)
    if columns is None:
        return None
    if (
        not isinstance(columns, list | tuple)
        or not columns
        or not all(isinstance(c, str) and c for c in columns)
    ):
        msg = (
            f'"{COLUMNS_METADATA}" of {where} must be a non-empty list of column names '
            f'(str), e.g. AssetIn(metadata={{"{COLUMNS_METADATA}": ["a", "b"]}}); '
            f"got {columns!r}"
        )
        raise ConfigurationError(msg)
    return list(columns)


def wants_concat(metadata: Mapping[str, Any], where: str) -> bool:
    """Whether ``lakery/concat`` asks to concatenate the partitions of an input."""
    concat = metadata.get(CONCAT_METADATA, False)
    if not isinstance(concat, bool):
        msg = f'"{CONCAT_METADATA}" of {where} must be True or False, got {concat!r}'
        raise ConfigurationError(msg)
    return concat


def concat_partitions(values: Mapping[str, Any], order: Sequence[str], where: str) -> Any:
    """The tables of `values` (``{partition: table}``) concatenated in `order`.

    Tables of different libraries are converted to the library of the first one.
    """
    if not values:
        msg = f"{where}: none of its partitions is saved, so there is nothing to concatenate"
        raise NotFoundError(msg)
    position = {key: i for i, key in enumerate(order)}
    keys = sorted(values, key=lambda k: (position.get(k, len(position)), k))
    others = [k for k in keys if not is_table(values[k])]
    if others:
        kinds = sorted({type(values[k]).__qualname__ for k in others})
        msg = (
            f'{where} has "{CONCAT_METADATA}": True, but partitions {others[:5]!r} hold '
            f"{', '.join(kinds)}, not tables; only pyarrow, pandas and polars tables can be "
            "concatenated (drop the metadata to get {partition_key: value})"
        )
        raise StorableTypeError(msg)
    from lakery.extra.arrow.convert import concat_tables
    from lakery.extra.arrow.convert import convert_table

    first = type(values[keys[0]])
    tables = [v if type(v) is first else convert_table(v, first) for v in map(values.get, keys)]
    try:
        return concat_tables(tables)
    except (TypeError, ValueError) as exc:
        shown = ", ".join(repr(k) for k in keys[:10]) + (" ..." if len(keys) > 10 else "")
        msg = f"{where}: cannot concatenate the tables of partitions {shown}: {exc}"
        raise ConfigurationError(msg) from exc


def convert_input(value: Any, annotation: Any, where: str) -> Any:
    """`value` converted to the table library of the input's annotation, where it is one.

    ``pd.DataFrame``, ``pl.DataFrame``, ``pl.LazyFrame``, ``pa.Table``, ``pa.RecordBatch``
    convert a table; ``dict[str, <table type>]`` converts the values of a mapping.
    Other annotations (``Any``, none, non-table types) leave the value as loaded.
    """
    if value is None or annotation is None or annotation is Any:
        return value
    if typing.get_origin(annotation) in (dict, Mapping):
        args = typing.get_args(annotation)
        if len(args) == 2 and isinstance(value, Mapping) and _is_table_type(args[1]):
            return {k: _convert(v, args[1], f"{where}, partition {k!r}") for k, v in value.items()}
        return value
    if not _is_table_type(annotation):
        return value
    if isinstance(value, Mapping) and not is_table(value):
        msg = (
            f"{where} is annotated as {_name(annotation)} but loads {len(value)} partitions "
            f'as {{partition_key: table}}: set AssetIn(metadata={{"{CONCAT_METADATA}": '
            "True}) to get them as one table, or annotate it as dict[str, ...]"
        )
        raise ConfigurationError(msg)
    return _convert(value, annotation, where)


def _is_table_type(annotation: Any) -> bool:
    if not isinstance(annotation, type):
        return False
    library = annotation.__module__.partition(".")[0]
    if library not in _TABLE_CLASSES or library not in sys.modules:
        return False
    from lakery.extra.arrow.convert import is_table_type

    return is_table_type(annotation)


def _convert(value: Any, target: type, where: str) -> Any:
    if isinstance(value, target) or not is_table(value):
        return value
    from lakery.extra.arrow.convert import convert_table

    try:
        return convert_table(value, target)
    except (TypeError, ValueError) as exc:
        msg = f"{where}: cannot convert the loaded {_name(type(value))} to {_name(target)}: {exc}"
        raise ConfigurationError(msg) from exc


def _name(tp: Any) -> str:
    return f"{tp.__module__.partition('.')[0]}.{getattr(tp, '__name__', tp)}"


def partition_order(context: InputContext, keys: Sequence[str]) -> list[str]:
    """`keys` in the order of the upstream's partitions definition, else sorted."""
    try:
        partitions_def = context.asset_partitions_def
        if hasattr(partitions_def, "time_window_for_partition_key"):
            return sorted(keys, key=lambda k: partitions_def.time_window_for_partition_key(k).start)
        every = partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
    except Exception:
        return sorted(keys)
    position = {str(k): i for i, k in enumerate(every)}
    if not all(k in position for k in keys):
        return sorted(keys)
    return sorted(keys, key=position.__getitem__)


def input_annotation(context: InputContext) -> Any:
    """The Python type an input is annotated with (None when Dagster cannot tell)."""
    try:
        return context.dagster_type.typing_type
    except Exception:
        return None
