"""`LakeryIOManager`: Dagster outputs saved as lakery manifests, inputs loaded from them."""

from __future__ import annotations

import threading
from typing import Any

from dagster import ConfigurableIOManager
from dagster import InitResourceContext
from dagster import InputContext
from dagster import OutputContext
from pydantic import Field
from pydantic import PrivateAttr

from lakery_dagster.context import context_attribute
from lakery_dagster.context import step_of
from lakery_dagster.outputs import save_output
from lakery_dagster.resource import LakeryResource
from lakery_dagster.run_outputs import forget_runs
from lakery_dagster.selection import load_input

__all__ = ["LakeryIOManager", "LakeryIOWorker"]

_STEP_INPUTS: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
"""``{(run_id, step_key): {input_name: {label: manifest_id}}}`` for every worker in the process."""
_STEP_INPUTS_LOCK = threading.Lock()


class LakeryIOWorker:
    """What `LakeryIOManager` does, outside the pydantic shell.

    Remembers which manifests each step loaded so that the step's outputs record them
    (tags ``dagster/input/...`` and metadata ``lakery/inputs``). What was loaded is kept
    per process, not per worker: an input is loaded by the IO manager of its upstream
    output, and the step's own outputs may go to another `LakeryIOManager`. What each run
    saved is kept too (`lakery_dagster.run_outputs`), for the inputs of the same run.
    """

    def __init__(self, resource: LakeryResource) -> None:
        self.resource = resource
        self._steps: set[tuple[str, str]] = set()
        self._runs: set[str] = set()

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        run_id = context_attribute(context, "run_id")
        inputs = self._inputs_of(run_id, context_attribute(context, "step_key"))
        save_output(context, obj, self.resource, inputs)
        if run_id:
            self._runs.add(str(run_id))

    def load_input(self, context: InputContext) -> Any:
        value, loaded = load_input(context, self.resource)
        step = step_of(context)
        if step is not None and context.has_input_name:
            with _STEP_INPUTS_LOCK:
                _STEP_INPUTS.setdefault(step, {})[context.name] = loaded
                self._steps.add(step)
        return value

    def forget(self) -> None:
        """Drop what the steps of this worker loaded and saved (at the end of the run)."""
        with _STEP_INPUTS_LOCK:
            for step in self._steps:
                _STEP_INPUTS.pop(step, None)
            self._steps.clear()
        forget_runs(list(self._runs))
        self._runs.clear()

    def _inputs_of(self, run_id: str | None, step_key: str | None) -> dict[str, dict[str, str]]:
        if run_id is None or step_key is None:
            return {}
        with _STEP_INPUTS_LOCK:
            return dict(_STEP_INPUTS.get((run_id, step_key), {}))


class LakeryIOManager(ConfigurableIOManager):
    """Stores asset and op outputs with lakery and loads them back as inputs.

    Storage layout contract: every output becomes one manifest per storable in the
    `lakery` resource's database, its content in the resource's storage, all saved in one
    transaction. Plain values with a registered serializer (dicts, lists, numbers, strings,
    numpy arrays with ``lakery.extra.numpy``) are wrapped in `StorableValue` and unwrapped
    on load; a non-empty dict or list of storables is saved one manifest per item and loads
    back in the same shape. A tuple is saved as a list and loads back as a tuple. Nothing
    is pickled. A run over several partitions
    (``BackfillPolicy.single_run()``) returns ``{partition_key: value}``: one bulk save,
    one manifest (and one materialization with its own metadata) per partition.

    Tables (pyarrow, pandas, polars, with the table extras) are plain values too, saved as
    Parquet; their materializations show ``dagster/column_schema`` and
    ``dagster/row_count``. Inputs may ask for ``"columns"`` (only those are read) and
    ``"lakery/concat"`` (a partition fan-in as one table); a table annotation converts
    what was loaded to that library (see `lakery_dagster.tables`).

    Manifests are tagged with the asset key, partition (and each dimension), run id, job,
    step, output name, code version, the manifests the step loaded, and the user tags in
    the ``lakery/tags`` metadata entry of the asset or output. Inputs load what the
    upstream's latest materialization of each partition recorded; ``AssetIn(metadata=...)``
    can pin ``lakery/manifest_id``, ``lakery/run_id`` or ``lakery/match_tags``, and
    ``lakery/allow_missing`` lets partitions that were never saved be left out. Several
    upstream partitions load as ``{partition_key: value}``, one as its value and none as
    None (as Dagster's ``UPathIOManager``; ``dict`` annotations and ``lakery/as_mapping``
    can ask for a mapping, see `lakery_dagster.selection`).

    Example:
        ```python
        import dagster as dg
        from lakery_dagster import LakeryIOManager, LakeryResource


        @dg.asset(metadata={"lakery/tags": {"team": "analytics"}})
        def numbers() -> list[int]:
            return [1, 2, 3]


        @dg.asset
        def total(numbers: list[int]) -> int:
            return sum(numbers)


        lakery = LakeryResource(database_url="sqlite:///lakery-example.db")
        defs = dg.Definitions(
            assets=[numbers, total],
            resources={"io_manager": LakeryIOManager(lakery=lakery)},
        )
        ```
    """

    lakery: LakeryResource = Field(description="Where and how lakery stores the outputs.")

    _worker: LakeryIOWorker | None = PrivateAttr(default=None)
    _worker_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.lakery.open()  # fail at setup on a bad database or storage, before any step runs
        self._worker = LakeryIOWorker(self.lakery)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.forget()

    @property
    def worker(self) -> LakeryIOWorker:
        with self._worker_lock:
            if self._worker is None:
                self._worker = LakeryIOWorker(self.lakery)
            return self._worker

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.worker.handle_output(context, obj)

    def load_input(self, context: InputContext) -> Any:
        return self.worker.load_input(context)
