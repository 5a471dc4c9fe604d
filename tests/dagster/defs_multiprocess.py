"""Assets for the multiprocess-executor test (importable, so step processes can rebuild them).

The database URL comes from the environment (``LAKERY_TEST_MP_DATABASE_URL``), as it
would in a deployment; every step process opens its own engine on its own bridge loop.
"""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from lakery.builtin import StorableValue
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from tests.dagster.storables import Reading

PARTITIONS = dg.StaticPartitionsDefinition(["p1", "p2", "p3", "p4"])
EXTRA_SAVES = 15


def partitioned_asset() -> Any:
    """``@asset`` over all partitions with a single-run backfill policy (a beta parameter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())


lakery = LakeryResource(database_url=dg.EnvVar("LAKERY_TEST_MP_DATABASE_URL"))


@partitioned_asset()
def numbers(context) -> dict[str, list[int]]:
    return {key: list(range(int(key[1:]) * 3)) for key in context.partition_keys}


def _stress(lakery: LakeryResource, name: str) -> None:
    """Separate small transactions while the other step processes write too."""
    for i in range(EXTRA_SAVES):
        lakery.save(StorableValue(i), tags={"stress": name, "i": str(i)})


@partitioned_asset()
def total(numbers: dict[str, list[int]], lakery: LakeryResource) -> dict[str, int]:
    _stress(lakery, "total")
    return {key: sum(values) for key, values in numbers.items()}


@partitioned_asset()
def readings(numbers: dict[str, list[int]], lakery: LakeryResource) -> dict[str, Reading]:
    _stress(lakery, "readings")
    return {key: Reading(key, [float(v) for v in values]) for key, values in numbers.items()}


@partitioned_asset()
async def longest(numbers: dict[str, list[int]], lakery: LakeryResource) -> dict[str, int]:
    for i in range(EXTRA_SAVES):
        await lakery.save_async(StorableValue(i), tags={"stress": "longest", "i": str(i)})
    return {key: len(values) for key, values in numbers.items()}


@dg.asset
def fork_report(base: dict[str, list[int]], lakery: LakeryResource) -> dict[str, int]:
    """What this step process inherited from a forkserver (see `tests.dagster.preload_engine`)."""
    import os

    from lakery_dagster import engines

    for i in range(3):
        lakery.save(StorableValue(i), tags={"forked": str(os.getpid()), "i": str(i)})
    return {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "inherited_engines": len(engines._INHERITED),
        "saved": len(lakery.find(tags={"forked": str(os.getpid())}, limit=None)),
    }


@dg.asset
def base() -> dict[str, list[int]]:
    return {"values": [1, 2, 3]}


@dg.asset
def doubled(base: dict[str, list[int]]) -> list[int]:
    return [2 * v for v in base["values"]]


@dg.asset
def report(base: dict[str, list[int]], doubled: list[int]) -> dict[str, int]:
    return {"base": sum(base["values"]), "doubled": sum(doubled)}


defs = dg.Definitions(
    assets=[numbers, total, readings, longest, base, doubled, report, fork_report],
    jobs=[
        dg.define_asset_job(
            "lakery_multiprocess",
            selection=[numbers, total, readings, longest],
            executor_def=dg.multiprocess_executor.configured({"max_concurrent": 3}),
        ),
        dg.define_asset_job(
            "lakery_multiprocess_chain",
            selection=[base, doubled, report],
            executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
        ),
        dg.define_asset_job(
            "lakery_forkserver",
            selection=[base, doubled, report, fork_report],
            executor_def=dg.multiprocess_executor.configured(
                {
                    "max_concurrent": 2,
                    "start_method": {
                        "forkserver": {"preload_modules": ["tests.dagster.preload_engine"]}
                    },
                }
            ),
        ),
    ],
    resources={"io_manager": LakeryIOManager(lakery=lakery), "lakery": lakery},
)


def lakery_multiprocess_job() -> dg.JobDefinition:
    return defs.resolve_job_def("lakery_multiprocess")


def lakery_multiprocess_chain_job() -> dg.JobDefinition:
    return defs.resolve_job_def("lakery_multiprocess_chain")


def lakery_forkserver_job() -> dg.JobDefinition:
    return defs.resolve_job_def("lakery_forkserver")
