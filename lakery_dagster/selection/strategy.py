"""What a selection strategy is, and how an input tries its strategies in turn."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

from lakery_dagster.shapes import Layout
from lakery_dagster.shapes import Stored

__all__ = ["Selected", "Strategy", "layout_of", "select"]

Selected = Stored | Layout
"""What an input loads for one partition: records at hand, or manifest ids to fetch."""

Strategy = Callable[[list[str | None]], Awaitable[Mapping[str | None, Selected]]]
"""A coroutine function: the partitions still wanted (``[None]``: unpartitioned) to what it
found for them; partitions it leaves out go to the next strategy."""


async def select(
    strategies: Sequence[Strategy], partitions: list[str | None]
) -> dict[str | None, Selected]:
    """What each partition loads: each strategy selects among what the ones before left."""
    found: dict[str | None, Selected] = {}
    for strategy in strategies:
        rest = [p for p in partitions if p not in found]
        if not rest:
            break
        found.update(await strategy(rest))
    return found


def layout_of(chosen: Selected) -> Layout:
    return chosen.layout if isinstance(chosen, Stored) else chosen
