"""By tags: lakery's newest saved output of the upstream that has the given tags.

The strategy of pinned run ids and tags, and of inputs with no Dagster instance to ask
(an op output, or a unit test's ``build_input_context()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lakery_dagster.selection.queries import newest_outputs
from lakery_dagster.selection.queries import stored_from_records
from lakery_dagster.shapes import Stored
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import COLLECTION_ID
from lakery_dagster.tags import PARTITION

if TYPE_CHECKING:
    from lakery_dagster.client import LakeryClient

__all__ = ["newest_with_tags"]


async def newest_with_tags(
    client: LakeryClient, tags: Mapping[str, str], partitions: list[str | None]
) -> dict[str | None, Stored]:
    """The newest manifest (or collection) with all of `tags`, per partition.

    `tags` name the upstream: its asset key, or (op outputs) its run, step and output.
    """
    asset_key = tags.get(ASSET_KEY)
    if asset_key is not None:
        async with client.session() as session:
            return await newest_outputs(
                session, asset_key=asset_key, partitions=partitions, tags=tags
            )
    found: dict[str | None, Stored] = {}
    for partition in partitions:  # op outputs: one partition, None
        wanted = dict(tags) if partition is None else {**tags, PARTITION: partition}
        newest = await client.find(tags=wanted, limit=1)
        if not newest:
            continue
        collection_id = newest[0].tags.get(COLLECTION_ID)
        if collection_id:
            newest = await client.find(tags={**wanted, COLLECTION_ID: collection_id}, limit=None)
        found[partition] = stored_from_records(newest)
    return found
