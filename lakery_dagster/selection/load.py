"""`load_input` of `LakeryIOManager`: one call over the sync bridge per input.

The input's context is read first (`read_request`, the strategies to try); then one
coroutine selects the manifests of every partition and loads them all; the loaded values
are then shaped for the input.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING
from typing import Any

from dagster import DagsterInvariantViolationError
from dagster import InputContext

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.sync import run_sync
from lakery_dagster.selection.by_tags import newest_with_tags
from lakery_dagster.selection.latest import latest_materialized
from lakery_dagster.selection.manifests import lineage
from lakery_dagster.selection.manifests import load_selected
from lakery_dagster.selection.materializations import Materializations
from lakery_dagster.selection.pinned import pinned_ids
from lakery_dagster.selection.pinned import pinned_manifests
from lakery_dagster.selection.pinned import pinned_tags
from lakery_dagster.selection.request import InputRequest
from lakery_dagster.selection.request import read_request
from lakery_dagster.selection.same_run import same_run_of
from lakery_dagster.selection.same_run import saved_in_this_run
from lakery_dagster.selection.shape import input_value
from lakery_dagster.selection.strategy import Selected
from lakery_dagster.selection.strategy import Strategy
from lakery_dagster.selection.strategy import select
from lakery_dagster.tags import ALLOW_MISSING_METADATA
from lakery_dagster.tags import ASSET_KEY
from lakery_dagster.tags import MAPPING_KEY
from lakery_dagster.tags import OUTPUT
from lakery_dagster.tags import RUN_ID
from lakery_dagster.tags import STEP

if TYPE_CHECKING:
    from lakery_dagster.client import LakeryClient
    from lakery_dagster.resource import LakeryResource

__all__ = ["load_input"]


def load_input(context: InputContext, resource: LakeryResource) -> tuple[Any, dict[str, str]]:
    """The input value, and ``{label: manifest_id}`` of what was loaded (for lineage)."""
    request = read_request(context)
    strategies = strategies_for(context, request, resource)
    selected, values = run_sync(_select_and_load(resource.client, request, strategies))
    return input_value(context, request, values), lineage(selected)


def strategies_for(
    context: InputContext, request: InputRequest, resource: LakeryResource
) -> list[Strategy]:
    """The strategies an input tries, in order, for the partitions it loads."""
    ids = pinned_ids(request.metadata, request.wanted, request.where)
    if ids is not None:
        return [partial(pinned_manifests, ids)]
    upstream = _upstream_tags(context, request.where)
    tags = pinned_tags(request.metadata, request.where)
    client = resource.client
    if tags is not None:
        return [partial(newest_with_tags, client, {**upstream, **tags})]
    strategies: list[Strategy] = []
    same_run = same_run_of(context, client.settings.url, request.wanted)
    if same_run is not None:
        strategies.append(partial(saved_in_this_run, same_run))
    if context.has_asset_key and _has_instance(context):
        dagster = Materializations(context, request.where)
        strategies.append(partial(latest_materialized, client, dagster))
    else:  # an op output, or a unit test's build_input_context(): lakery's newest
        strategies.append(partial(newest_with_tags, client, upstream))
    return strategies


async def _select_and_load(
    client: LakeryClient, request: InputRequest, strategies: list[Strategy]
) -> tuple[dict[str | None, Selected], dict[str | None, Any]]:
    selected = await select(strategies, request.wanted)
    _check_nothing_missing(request, selected)
    return selected, await load_selected(client, selected, request.where, request.columns)


def _check_nothing_missing(request: InputRequest, selected: dict[str | None, Selected]) -> None:
    missing = [p for p in request.wanted if p not in selected]
    if not missing or request.metadata.get(ALLOW_MISSING_METADATA):
        return
    partitioned = request.partitions is not None
    shown = ", ".join(repr(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
    what = f"partitions {shown} of " if partitioned else ""
    msg = (
        f"lakery has nothing saved for {what}{request.where}: materialize "
        f"{'them' if partitioned else 'it'} first, or let the input skip "
        f'missing partitions with AssetIn(metadata={{"{ALLOW_MISSING_METADATA}": True}})'
    )
    raise NotFoundError(msg)


def _upstream_tags(context: InputContext, where: str) -> dict[str, str]:
    """The tags that name the upstream: its asset key, or its run, step and output."""
    if context.has_asset_key:
        return {ASSET_KEY: context.asset_key.to_user_string()}
    upstream = context.upstream_output
    if upstream is None:
        msg = f"{where} has no upstream output to load from lakery"
        raise ConfigurationError(msg)
    tags = {RUN_ID: upstream.run_id, STEP: upstream.step_key, OUTPUT: upstream.name}
    if upstream.mapping_key:
        tags[MAPPING_KEY] = upstream.mapping_key
    return tags


def _has_instance(context: InputContext) -> bool:
    """False for a context built without an instance (`build_input_context` in a test)."""
    try:
        return context.instance is not None
    except DagsterInvariantViolationError:
        return False
