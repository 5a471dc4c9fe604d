"""What the Dagster instance knows of an upstream asset's latest materializations.

Blocking reads of the instance: `lakery_dagster.selection.latest` runs them in a worker
thread of the bridge loop, so the step's thread keeps waiting on one bridge call.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

from dagster import AssetRecordsFilter
from dagster import DagsterEventType
from dagster import InputContext

from lakery_dagster.metadata import LAYOUT
from lakery_dagster.metadata import LAYOUTS
from lakery_dagster.shapes import Layout

__all__ = ["DATA_VERSION_TAG", "Materializations", "Version"]

_BATCH = 500
DATA_VERSION_TAG = "dagster/data_version"
"""The materialization tag that holds the data version (Dagster's ``DATA_VERSION_TAG``)."""


class Version(NamedTuple):
    """The data version of a latest materialization (and, when at hand, its run)."""

    data_version: str
    run_id: str | None = None


class Materializations:
    """The latest materializations of the upstream asset of an input."""

    def __init__(self, context: InputContext, where: str) -> None:
        self.context = context
        self.where = where
        self.asset_key = context.asset_key

    def data_versions(self, partitions: list[str | None]) -> tuple[dict[str | None, Version], bool]:
        """The data version of each partition's latest materialization, where cheap to get,
        and whether the partitions left out have no materialization with a data version.

        Partitioned: one query on the event log's tag index. Unpartitioned: what the step
        fetched at its start for Dagster's own staleness bookkeeping (no query).
        """
        try:
            if partitions == [None]:
                return self._unpartitioned_version()
            storage = self.context.instance.event_log_storage
            versions: dict[str | None, Version] = {}
            names = [p for p in partitions if p is not None]
            for start in range(0, len(names), _BATCH):
                latest = storage.get_latest_tags_by_partition(
                    self.asset_key,
                    DagsterEventType.ASSET_MATERIALIZATION,
                    [DATA_VERSION_TAG],
                    asset_partitions=names[start : start + _BATCH],
                )
                for partition, tags in latest.items():
                    if tags.get(DATA_VERSION_TAG):
                        versions[str(partition)] = Version(tags[DATA_VERSION_TAG])
            return versions, True
        except Exception as exc:  # not public API: without it, every partition takes the log
            self.context.log.debug("lakery: cannot read data versions from the instance (%s)", exc)
            return {}, False

    def _unpartitioned_version(self) -> tuple[dict[str | None, Version], bool]:
        step_context = self.context.step_context
        info = step_context.maybe_fetch_and_get_input_asset_version_info(self.asset_key)
        if info is None:
            return {}, True
        if info.event_type != DagsterEventType.ASSET_MATERIALIZATION or info.data_version is None:
            return {}, False
        return {None: Version(info.data_version.value, info.run_id)}, True

    def recorded_layouts(self, partitions: list[str | None]) -> dict[str | None, Layout]:
        """The layouts recorded by the latest materialization of each partition."""
        if partitions == [None]:
            records_filter = AssetRecordsFilter(asset_key=self.asset_key)
            result = self.context.instance.fetch_materializations(records_filter, limit=1)
            layouts = [layout for layout in map(_layout_of, result.records) if layout is not None]
            found: dict[str | None, Layout] = {None: layouts[0]} if layouts else {}
        else:
            found = self._recorded_by_partition(partitions)
        if not found:
            self.context.log.debug(
                "lakery: no lakery materialization of %s in this instance", self.where
            )
        return found

    def _recorded_by_partition(self, partitions: list[str | None]) -> dict[str | None, Layout]:
        storage_ids = list(self._latest_storage_ids(partitions).values())
        found: dict[str | None, Layout] = {}
        for start in range(0, len(storage_ids), _BATCH):
            chunk = storage_ids[start : start + _BATCH]
            records_filter = AssetRecordsFilter(asset_key=self.asset_key, storage_ids=chunk)
            result = self.context.instance.fetch_materializations(records_filter, limit=len(chunk))
            for record in result.records:
                layout = _layout_of(record)
                if layout is not None and record.partition_key is not None:
                    found[str(record.partition_key)] = layout
        return found

    def _latest_storage_ids(self, partitions: list[Any]) -> dict[str, int]:
        instance = self.context.instance
        try:
            return dict(
                instance.get_latest_storage_id_by_partition(
                    self.asset_key, DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
                )
            )
        except (AttributeError, TypeError, NotImplementedError):
            # Older instances: walk the materializations of these partitions, newest first.
            latest: dict[str, int] = {}
            cursor = None
            records_filter = AssetRecordsFilter(
                asset_key=self.asset_key, asset_partitions=partitions
            )
            while True:
                result = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor)
                for record in result.records:
                    if record.partition_key is not None:
                        latest.setdefault(str(record.partition_key), record.storage_id)
                if not result.has_more or len(latest) == len(partitions):
                    return latest
                cursor = result.cursor


def _layout_of(record: Any) -> Layout | None:
    """The layout a materialization recorded (a single-run fallback: its partition's)."""
    materialization = record.asset_materialization
    if materialization is None:
        return None
    metadata = materialization.metadata
    layout = Layout.from_json(metadata.get(LAYOUT))
    if layout is None and LAYOUTS in metadata:
        layouts = getattr(metadata[LAYOUTS], "value", metadata[LAYOUTS]) or {}
        layout = Layout.from_json(layouts.get(str(record.partition_key)))
    return layout
