"""The manifest tags and definition-metadata keys that `LakeryIOManager` uses.

Every manifest the IO manager saves is tagged with where it came from, so it can be found
from lakery's own database (``LakeryResource.find(tags=...)``) as well as from Dagster:

=================================  ==================================================
tag                                value
=================================  ==================================================
``dagster/asset_key``              the asset key, e.g. ``"sales/daily"``
``dagster/partition``              the partition key (multi-dimensional: ``"a|b"``)
``dagster/partition/<dimension>``  one per dimension of a multi-dimensional key
``dagster/run_id``                 the run that saved it
``dagster/job``, ``dagster/step``  job name and step key
``dagster/output``                 the output name
``dagster/mapping_key``            the mapping key of a dynamic output
``dagster/code_version``           the asset's code version, when it has one
``dagster/input/<input>[/<key>]``  the id of each manifest the step loaded as input
``lakery/collection``              ``mapping`` or ``list`` for items of a collection
``lakery/collection_id``           shared by the items of one collection
``lakery/collection_key``          the item's key (mapping) or index (list)
``lakery/wrapped``                 ``true`` when a plain value was wrapped in StorableValue
``lakery/value_type``              ``tuple`` for a tuple output (stored as a list)
=================================  ==================================================

User tags come from the ``lakery/tags`` entry of the asset's or output's metadata
(``@asset(metadata={"lakery/tags": {"team": "ml"}})``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakery.common.exceptions import InvalidTagsError
from lakery.common.tags import validate_tags

__all__ = [
    "ALLOW_MISSING_METADATA",
    "ASSET_KEY",
    "AS_MAPPING_METADATA",
    "CODE_VERSION",
    "COLLECTION",
    "COLLECTION_ID",
    "COLLECTION_KEY",
    "COLUMNS_METADATA",
    "CONCAT_METADATA",
    "INPUT_PREFIX",
    "JOB",
    "MANIFEST_ID_METADATA",
    "MAPPING_KEY",
    "MATCH_TAGS_METADATA",
    "MAX_INPUT_TAGS",
    "OUTPUT",
    "PARTITION",
    "PARTITION_DIMENSION_PREFIX",
    "RUN_ID",
    "RUN_ID_METADATA",
    "STEP",
    "TAGS_METADATA",
    "WRAPPED",
    "input_tags",
    "partition_tags",
    "user_tags",
]

ASSET_KEY = "dagster/asset_key"
PARTITION = "dagster/partition"
PARTITION_DIMENSION_PREFIX = "dagster/partition/"
RUN_ID = "dagster/run_id"
JOB = "dagster/job"
STEP = "dagster/step"
OUTPUT = "dagster/output"
MAPPING_KEY = "dagster/mapping_key"
CODE_VERSION = "dagster/code_version"
INPUT_PREFIX = "dagster/input/"
COLLECTION = "lakery/collection"
COLLECTION_ID = "lakery/collection_id"
COLLECTION_KEY = "lakery/collection_key"
WRAPPED = "lakery/wrapped"

MAX_INPUT_TAGS = 100
"""At most this many ``dagster/input/...`` tags per input (all ids are in the metadata)."""

# Definition metadata keys read by the IO manager.
TAGS_METADATA = "lakery/tags"
"""Output/asset metadata: extra manifest tags, a mapping of str to str."""
MANIFEST_ID_METADATA = "lakery/manifest_id"
"""Input metadata: load this manifest id (or ``{partition_key: manifest_id}``)."""
RUN_ID_METADATA = "lakery/run_id"
"""Input metadata: load what this Dagster run saved for the upstream."""
MATCH_TAGS_METADATA = "lakery/match_tags"
"""Input metadata: load the newest manifest of the upstream that has all these tags."""
ALLOW_MISSING_METADATA = "lakery/allow_missing"
"""Input metadata: leave out upstream partitions that were never saved instead of raising."""
AS_MAPPING_METADATA = "lakery/as_mapping"
"""Input metadata: always (True) or never (False) load partitions as ``{key: value}``."""
COLUMNS_METADATA = "columns"
"""Input metadata: load only these columns of the tables (a list of str)."""
CONCAT_METADATA = "lakery/concat"
"""Input metadata: concatenate the tables of the upstream partitions into one table."""


def user_tags(metadata: Mapping[str, Any] | None, *, where: str) -> dict[str, str]:
    """The ``lakery/tags`` entry of definition metadata, checked."""
    raw = (metadata or {}).get(TAGS_METADATA)
    raw = getattr(raw, "value", raw)  # a JsonMetadataValue holds its mapping in .value
    if raw is None:
        return {}
    try:
        return validate_tags(raw, what=f"the {TAGS_METADATA!r} metadata of {where}")
    except InvalidTagsError as exc:
        exc.add_note(f'set it as metadata={{"{TAGS_METADATA}": {{"key": "value"}}}}')
        raise


def partition_tags(partition_key: str, dimensions: Mapping[str, str] | None) -> dict[str, str]:
    """``dagster/partition`` plus one ``dagster/partition/<dimension>`` tag per dimension."""
    tags = {PARTITION: str(partition_key)}
    for dimension, key in (dimensions or {}).items():
        tags[PARTITION_DIMENSION_PREFIX + dimension] = str(key)
    return tags


def input_tags(loaded: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Lineage tags from ``{input_name: {label: manifest_id}}`` (label "" for a lone manifest)."""
    tags: dict[str, str] = {}
    for input_name, ids in loaded.items():
        items = list(ids.items())
        if len(items) == 1 and items[0][0] == "":
            tags[INPUT_PREFIX + input_name] = items[0][1]
            continue
        for label, manifest_id in items[:MAX_INPUT_TAGS]:
            tags[f"{INPUT_PREFIX}{input_name}/{label}"] = manifest_id
        if len(items) > MAX_INPUT_TAGS:
            tags[f"{INPUT_PREFIX}{input_name}/more"] = str(len(items) - MAX_INPUT_TAGS)
    return tags
