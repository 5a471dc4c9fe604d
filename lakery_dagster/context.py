"""Dagster's input and output contexts, read defensively (for inputs and outputs alike).

Dagster raises for what a context does not have (a run id outside a run, a step context
in ``build_input_context()``); these helpers answer None or False instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["assets_def_of", "context_attribute", "is_single_run", "step_context_hook", "step_of"]


def context_attribute(context: Any, attribute: str) -> Any:
    """`context.attribute`, or None where Dagster raises for it (e.g. outside a run)."""
    try:
        return getattr(context, attribute)
    except Exception:
        return None


def step_of(context: Any) -> tuple[str, str] | None:
    """``(run_id, step_key)`` of the step that runs with `context`, or None outside a step."""
    try:
        step_context = context.step_context
        return step_context.run_id, step_context.step.key
    except Exception:
        return None


def step_context_hook(context: Any, name: str) -> Any:
    """A method of Dagster's step context that is not public API, or None without it.

    Used for ``add_asset_metadata`` (per-partition metadata) and ``set_data_version``
    (content-based data versions), both present in Dagster 1.13.
    """
    try:
        return getattr(context.step_context, name, None)
    except Exception:
        return None


def assets_def_of(context: Any) -> Any:
    """The assets definition of the running step, or None outside a step."""
    try:
        return context.step_context.assets_def
    except Exception:
        return None


def is_single_run(assets_def: Any) -> bool:
    """Whether the assets run over all their partitions at once (a single-run backfill)."""
    policy = getattr(assets_def, "backfill_policy", None)
    return policy is not None and policy.policy_type.value == "SINGLE_RUN"
