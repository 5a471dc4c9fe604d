"""Which manifests an input of `LakeryIOManager` loads, per upstream partition.

Strategies (`strategy.Strategy`), tried in this order:

1. pinned (`pinned`): ``AssetIn(metadata={"lakery/manifest_id": ...})`` loads that manifest
   (partitioned: ``{partition_key: manifest_id}``); ``"lakery/run_id"`` or
   ``"lakery/match_tags"`` the newest manifest of the upstream saved by that run / carrying
   all those tags (`by_tags`);
2. otherwise the same run (`same_run`): what this process saved for the upstream earlier
   in the run, with no lookup at all;
3. then the latest materialization per the Dagster instance (`latest`), what the Dagster
   UI shows; without an instance (an op output, ``build_input_context()``), the newest
   manifest of the upstream in lakery's database (`by_tags`).

`load.load_input` reads the context, then makes one call over the sync bridge that
selects and loads every partition (`manifests`); `shape` hands the values to the input.
"""

from lakery_dagster.selection.load import load_input

__all__ = ["load_input"]
