"""Which path an input takes to its manifests, and that every path loads the right ones.

- same run, same process: the records `handle_output` saved (no lookup at all);
- otherwise lakery's newest output of each partition, when it matches Dagster's latest
  materialization (its data version; a single-run backfill is checked as a whole);
- otherwise the event log (a stray newer lakery save, a materialization made by another
  IO manager, a data version given by the asset).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import text

from lakery.builtin import StorableValue
from lakery.common import sync
from lakery.common.sync import run_sync
from lakery_dagster import LakeryIOManager
from lakery_dagster import LakeryResource
from lakery_dagster import run_outputs
from lakery_dagster.client import LakeryClient
from lakery_dagster.io_manager import LakeryIOWorker
from lakery_dagster.metadata import data_version_of
from lakery_dagster.selection import latest
from lakery_dagster.selection import load
from lakery_dagster.selection import queries
from lakery_dagster.selection.materializations import Materializations

LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
SINGLE_RUN = dg.BackfillPolicy.single_run()


@dataclass
class Paths:
    """The lookups inputs made, in order."""

    latest: list[list[str | None]] = field(default_factory=list)
    by_run: list[list[str | None]] = field(default_factory=list)
    event_log: list[list[str | None]] = field(default_factory=list)
    fetched: list[int] = field(default_factory=list)
    bridges: list[int] = field(default_factory=list, compare=False)
    """Calls over the sync bridge, per `load_input`."""

    def clear(self) -> None:
        for calls in (self.latest, self.by_run, self.event_log, self.fetched, self.bridges):
            calls.clear()


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    seen = Paths()

    def spy(owner: Any, name: str, calls: list[Any], argument: int) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(sorted(args[argument], key=str))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    spy(load, "latest_materialized", seen.latest, 2)
    spy(latest, "saved_by_one_backfill", seen.by_run, 4)
    spy(Materializations, "recorded_layouts", seen.event_log, 1)
    get_many = LakeryClient.get_many

    async def counted(self: LakeryClient, ids: Any, **kwargs: Any) -> Any:
        ids = list(ids)
        seen.fetched.append(len(ids))
        return await get_many(self, ids, **kwargs)

    monkeypatch.setattr(LakeryClient, "get_many", counted)
    calls = [0]
    get_loop = sync.get_loop

    def counted_loop() -> Any:
        calls[0] += 1
        return get_loop()

    monkeypatch.setattr(sync, "get_loop", counted_loop)
    load_input = LakeryIOWorker.load_input

    def bridged(self: LakeryIOWorker, context: dg.InputContext) -> Any:
        before = calls[0]
        try:
            return load_input(self, context)
        finally:
            seen.bridges.append(calls[0] - before)

    monkeypatch.setattr(LakeryIOWorker, "load_input", bridged)
    return seen


def _query(lakery: LakeryResource, query: Any, **kwargs: Any) -> Any:
    """Run a `queries` function in a session of the resource."""
    client = lakery.client

    async def run() -> Any:
        async with client.session() as session:
            return await query(session, **kwargs)

    return run_sync(run())


def _run(assets: list, resources: dict, instance: dg.DagsterInstance, **kwargs: Any) -> Any:
    return dg.materialize(assets, resources=resources, instance=instance, **kwargs)


def _range(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def _latest_tags(instance: dg.DagsterInstance, key: str, partition: str) -> dict[str, str]:
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition])
    [record] = instance.fetch_materializations(records_filter, limit=1).records
    return dict(record.asset_materialization.tags or {})


def test_same_run_inputs_load_what_the_run_saved(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    state = {"n": 1}

    @dg.asset
    def upstream() -> dict[str, int]:
        return {"n": state["n"]}

    @dg.asset
    def downstream(upstream: dict[str, int]) -> int:
        return upstream["n"] * 10

    @dg.asset(partitions_def=LETTERS, backfill_policy=SINGLE_RUN)
    def ranged(context) -> dict[str, str]:
        return {key: key * state["n"] for key in context.partition_keys}

    @dg.asset(partitions_def=LETTERS, backfill_policy=SINGLE_RUN)
    def ranged_down(ranged: dict[str, str]) -> dict[str, str]:
        return {key: value.upper() for key, value in ranged.items()}

    result = _run([upstream, downstream], resources, instance)
    assert result.output_for_node("downstream") == 10
    assert paths == Paths()  # no event log, no lakery query: the records of this run
    assert paths.bridges == [1]  # the blob reads
    [up] = lakery.find(tags={"dagster/asset_key": "upstream", "dagster/run_id": result.run_id})
    [down] = lakery.find(tags={"dagster/asset_key": "downstream"})
    assert down.tags["dagster/input/upstream"] == str(up.id)
    assert result.run_id not in run_outputs._RUNS  # forgotten at the end of the run

    result = _run([ranged, ranged_down], resources, instance, tags=_range("a", "c"))
    assert result.output_for_node("ranged_down") == {"a": "A", "b": "B", "c": "C"}
    assert paths == Paths()

    # A later run that only materializes the downstream asset looks the upstream up...
    state["n"] = 2
    _run([upstream], resources, instance)
    result = _run([upstream, downstream], resources, instance, selection=[downstream])
    assert result.output_for_node("downstream") == 20
    assert paths.latest == [[None]] and paths.event_log == []
    assert paths.bridges == [1, 1, 1]
    # ...and a run that materializes both again loads its own, new upstream.
    paths.clear()
    state["n"] = 3
    result = _run([upstream, downstream], resources, instance)
    assert result.output_for_node("downstream") == 30
    assert paths == Paths()


def test_earlier_runs_load_lakery_records_checked_against_dagster(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    @dg.asset(partitions_def=LETTERS)
    def letter(context) -> str:
        return context.partition_key.upper()

    @dg.asset
    def word(letter: dict[str, str]) -> str:
        return "".join(letter[k] for k in sorted(letter))

    for key in "abcd":
        _run([letter], resources, instance, partition_key=key)
    result = _run([letter, word], resources, instance, selection=[word])
    assert result.output_for_node("word") == "ABCD"
    assert paths.latest == [list("abcd")]
    assert paths.by_run == [] and paths.event_log == [] and paths.fetched == []
    assert paths.bridges == [1]

    # A newer lakery save that no materialization recorded: that partition takes the
    # event log, the others still come from lakery's records.
    paths.clear()
    lakery.save(
        StorableValue("stray"),
        tags={"dagster/asset_key": "letter", "dagster/partition": "b", "lakery/wrapped": "true"},
    )
    result = _run([letter, word], resources, instance, selection=[word])
    assert result.output_for_node("word") == "ABCD"
    assert paths.event_log == [["b"]]
    assert paths.fetched == [1]  # the one manifest the materialization recorded
    assert paths.bridges == [1]  # lakery's newest, the event log, the fetch and the load
    found = lakery.find(tags={"dagster/asset_key": "letter", "dagster/partition": "b"})
    [recorded] = [r for r in found if r.tags.get("dagster/run_id")]
    [made] = lakery.find(tags={"dagster/asset_key": "word", "dagster/run_id": result.run_id})
    assert made.tags["dagster/input/letter/b"] == str(recorded.id)


def test_materializations_not_made_by_lakery_take_the_event_log(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    @dg.asset(partitions_def=LETTERS)
    def letter(context) -> dg.Output[str]:
        key = context.partition_key
        # Partition "d" gets a data version chosen by the asset itself.
        version = dg.DataVersion("chosen") if key == "d" else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.Output(key.upper(), data_version=version)

    @dg.asset
    def word(letter: dict[str, str]) -> str:
        return "".join(letter[k] for k in sorted(letter))

    for key in "abcd":
        _run([letter], resources, instance, partition_key=key)
    assert _latest_tags(instance, "letter", "d")["dagster/data_version"] == "chosen"
    # Partition "c" is materialized again by another IO manager: its latest
    # materialization records no lakery manifest, and lakery's newest ("C") is loaded.
    _run([letter], {"io_manager": dg.mem_io_manager}, instance, partition_key="c")
    result = _run([letter, word], resources, instance, selection=[word])
    assert result.output_for_node("word") == "ABCD"
    assert paths.event_log == [["c", "d"]]
    assert paths.fetched == []  # the event log named the manifests lakery had found


def test_single_run_backfills_then_fan_in(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    state = {"suffix": "1"}

    @dg.asset(partitions_def=LETTERS, backfill_policy=SINGLE_RUN)
    def ranged(context) -> dict[str, Any]:
        return {key: {key: state["suffix"]} for key in context.partition_keys}

    @dg.asset
    def everything(ranged: dict[str, Any]) -> dict[str, Any]:
        return ranged

    backfill = _run([ranged], resources, instance, tags=_range("a", "d"))
    # One data version for the range, derived from every partition's content.
    outputs = _query(lakery, queries.run_outputs, asset_key="ranged", run_id=backfill.run_id)
    version = data_version_of({p: stored.items for p, stored in outputs.items()})
    assert {_latest_tags(instance, "ranged", p)["dagster/data_version"] for p in "abcd"} == {
        version
    }
    result = _run([ranged, everything], resources, instance, selection=[everything])
    assert result.output_for_node("everything") == {k: {k: "1"} for k in "abcd"}
    assert paths.by_run == [list("abcd")] and paths.event_log == []
    assert paths.bridges == [1]  # lakery's newest, the backfill's outputs and the load

    # One partition again, alone: it matches on its own, the rest as the backfill they were.
    paths.clear()
    state["suffix"] = "2"
    _run([ranged], resources, instance, partition_key="b")
    result = _run([ranged, everything], resources, instance, selection=[everything])
    expected = {k: {k: "2" if k == "b" else "1"} for k in "abcd"}
    assert result.output_for_node("everything") == expected
    assert paths.by_run == [["a", "c", "d"]] and paths.event_log == []

    # A range over part of the partitions: still no event log.
    paths.clear()
    state["suffix"] = "3"
    _run([ranged], resources, instance, tags=_range("c", "d"))
    result = _run([ranged, everything], resources, instance, selection=[everything])
    expected = {"a": {"a": "1"}, "b": {"b": "2"}, "c": {"c": "3"}, "d": {"d": "3"}}
    assert result.output_for_node("everything") == expected
    assert paths.event_log == []


def test_collections_and_pins_over_partitions(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    state = {"n": 1}

    @dg.asset(partitions_def=LETTERS)
    def pair(context) -> dict[str, Any]:
        key = context.partition_key
        return {"first": StorableValue(f"{key}{state['n']}"), "second": StorableValue(state["n"])}

    @dg.asset(ins={"pair": dg.AssetIn(metadata={"lakery/allow_missing": True})})
    def pairs(pair: dict[str, Any]) -> dict[str, str]:
        return {k: f"{v['first'].value}/{v['second'].value}" for k, v in pair.items()}

    first_runs = [_run([pair], resources, instance, partition_key=k) for k in "abc"]
    state["n"] = 2
    _run([pair], resources, instance, partition_key="a")
    result = _run([pair, pairs], resources, instance, selection=[pairs])
    assert result.output_for_node("pairs") == {"a": "a2/2", "b": "b1/1", "c": "c1/1"}
    assert paths.event_log == []

    first_a = first_runs[0].run_id

    @dg.asset(
        ins={"pair": dg.AssetIn(metadata={"lakery/run_id": first_a, "lakery/allow_missing": True})}
    )
    def pinned(pair: dict[str, Any]) -> list[str]:
        return sorted(f"{k}:{v['first'].value}" for k, v in pair.items())

    result = _run([pair, pinned], resources, instance, selection=[pinned])
    assert result.output_for_node("pinned") == ["a:a1"]


def test_pins_and_op_outputs_make_one_bridge_call(
    lakery: LakeryResource, resources: dict, instance: dg.DagsterInstance, paths: Paths
) -> None:
    @dg.asset
    def upstream() -> dict[str, Any]:
        return {"x": StorableValue(1), "y": StorableValue(2)}

    first = _run([upstream], resources, instance)
    [record, _] = lakery.find(tags={"dagster/asset_key": "upstream"})

    def ins(metadata: dict[str, Any]) -> dict[str, dg.AssetIn]:
        return {"upstream": dg.AssetIn(metadata=metadata)}

    @dg.asset(ins=ins({"lakery/manifest_id": str(record.id)}))
    def by_id(upstream: Any) -> int:
        return upstream.value

    @dg.asset(ins=ins({"lakery/run_id": first.run_id}))
    def by_run(upstream: dict[str, Any]) -> list[str]:
        return sorted(upstream)

    @dg.asset(ins=ins({"lakery/match_tags": {"dagster/output": "result"}}))
    def by_tags(upstream: dict[str, Any]) -> int:
        return sum(v.value for v in upstream.values())

    result = _run(
        [upstream, by_id, by_run, by_tags], resources, instance, selection=[by_id, by_run, by_tags]
    )
    outputs = {name: result.output_for_node(name) for name in ["by_id", "by_run", "by_tags"]}
    assert outputs == {"by_id": lakery.load(record).value, "by_run": ["x", "y"], "by_tags": 3}
    assert paths.latest == [] and paths.fetched == [1]  # the pinned manifest, by id
    assert paths.bridges == [1, 1, 1]

    # An op output outside a run: lakery's newest collection saved with its run and step.
    paths.clear()
    manager = LakeryIOManager(lakery=lakery)
    made = dg.build_output_context(step_key="make", name="result", run_id="r1")
    manager.handle_output(made, {"a": StorableValue(1), "b": StorableValue(2)})
    loaded = manager.load_input(dg.build_input_context(upstream_output=made))
    assert {key: value.value for key, value in loaded.items()} == {"a": 1, "b": 2}
    assert paths.bridges == [1]


def test_newest_output_query_uses_the_tag_index(lakery: LakeryResource) -> None:
    partitions = [f"p{i}" for i in range(40)]
    for round_ in range(3):
        lakery.save_many(
            [StorableValue(round_) for _ in partitions],
            tags=[{"dagster/asset_key": "daily", "dagster/partition": p} for p in partitions],
        )
    found = _query(lakery, queries.newest_outputs, asset_key="daily", partitions=partitions)
    assert sorted(found) == sorted(partitions)
    assert {lakery.load(s.records[0]).value for s in found.values()} == {2}

    client = lakery.client
    engine = client._engine
    assert engine is not None
    dialect = engine.dialect.name
    statement = queries._newest_statement(dialect, True, ()).params(
        asset="daily", partitions=json.dumps(partitions[:3])
    )

    async def plan() -> str:
        async with engine.connect() as connection:  # rolled back at the end: SET LOCAL ends
            if dialect == "postgresql":
                await connection.execute(text("ANALYZE lakery_manifests"))
                await connection.execute(text("SET LOCAL enable_seqscan = off"))
                prefix = "EXPLAIN "
            else:
                prefix = "EXPLAIN QUERY PLAN "
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            rows = await connection.execute(text(prefix + str(compiled)))
            return "\n".join(str(row[-1]) for row in rows)

    assert f"ix_lakery_manifests_tag_keys_{dialect}" in run_sync(plan())
