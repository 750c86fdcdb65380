"""``run(store, stage)``: the stage and every stale stage upstream of it, in DAG order; resumable and idempotent.

Each stage's run is keyed by what it reads (``records.run_key``): its definition, each input's definition and
history versions, its output view's definition, its model version, its entity rows. A stage whose newest run
record has the key a run would have now is fresh and is skipped; otherwise it runs: its output is ingested under a
batch id made of its run number and key, then its record is written. Killed anywhere, a rerun has the same number
and key: before the output commit it runs again, after it the ingest finds the batch committed (``already_ingested``:
no row twice) and only the record is written. An upstream stage that ran changes its output view's history version,
which changes the key of every stage reading it: that is what "stale" is.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from .. import plugins, sources
from ..definitions import WRITE_BATCH, WRITE_ROW
from ..errors import DefinitionError, ValidationError
from ..faults import kill_point
from ..offline.scan import read_rows
from ..retrieval import entity_columns, entity_tables
from ..timeutil import now
from ..training_sets import fingerprint
from . import fits as fits_mod
from . import records
from .dag import Dag, input_views
from .definition import ModelStage, Stage, StageBase


@dataclass(frozen=True)
class StageRun:
    stage: str
    status: str  # "ran" | "fresh" (a run of the same inputs is recorded: nothing done)
    key: str
    output: str
    output_version: int | None
    rows: int | None  # rows written by this run (None when fresh)
    model_version: int | None = None


def run(store, name: str, *, entities: Any = None, objects: list | None = None,
        progress: Callable[[StageRun], None] | None = None) -> list[StageRun]:
    """Run stage ``name`` and whatever upstream of it is stale. ``entities``: the rows the stage scores or reads
    its feature services at (default: its declared ``entities``). ``objects``: the declared definitions holding the
    featurization stages' functions (default: the repo's, ``store.repo_objects()``). Returns one ``StageRun`` per
    stage of the DAG up to ``name``, in the order they were considered."""
    state = store._registry_state(fresh=True)
    dag = Dag(state.specs())
    ctx = _Context(store, state, dag, objects)
    out = []
    for stage in dag.order(name):
        result = ctx.run_one(stage, entities if stage == name else None)
        if progress is not None:
            progress(result)
        out.append(result)
    return out


class _Context:
    def __init__(self, store, state, dag: Dag, objects: list | None):
        self.store, self.state, self.dag, self._objects = store, state, dag, objects
        self._models: list[dict] | None = None

    def models(self) -> list[dict]:
        if self._models is None:
            self._models = fits_mod.model_records(self.store)
        return self._models

    def _inputs(self, spec: dict) -> dict:
        """Each input's definition version and the history version(s) a run reads now."""
        out: dict = {}
        offline = self.store.offline
        for ref in spec["inputs"]:
            kind, _, obj = ref.partition("/")
            entry: dict = {"definition": self.state.object_version(kind, obj)}
            if kind == "feature_view":
                entry["history"] = offline.version(obj)
            elif kind == "feature_service":
                views = input_views({"inputs": [ref]}, self.dag.specs)
                entry["history"] = {v: offline.version(v) for v in views}
                entry["views"] = {v: self.state.object_version("feature_view", v) for v in views}
            out[ref] = entry
        # a redefined output view (a field added) is filled by the next run
        out["output"] = {"definition": self.state.object_version("feature_view", spec["output"])}
        return out

    def run_one(self, name: str, entities: Any) -> StageRun:
        spec = self.dag.stage(name)
        stage = StageBase.from_dict(spec)
        model = fits_mod.model_version(self.models(), spec) if isinstance(stage, ModelStage) else None
        inputs = self._inputs(spec)
        entities = entities if entities is not None else stage.entities
        key = records.run_key({"stage": spec, "inputs": inputs, "entities": _entities_key(entities),
                               "model": [model["name"], model["version"]] if model else None})
        rstore = self.store.registry.store
        last = records.latest(rstore, name)
        mversion = model["version"] if model else None
        if last is not None and last["key"] == key:
            return StageRun(name, "fresh", key, stage.output, last["output"]["version"], None, mversion)
        started = now().isoformat()
        n = last["n"] + 1 if last is not None else 1
        # this attempt's identity: the same for a rerun after a kill (nothing recorded since), new for any later run
        run_id = f"{name}-{n}-{key[:24]}"
        if isinstance(stage, ModelStage):
            rows, version = self._score(stage, mversion, entities, run_id)
        else:
            rows, version = self._featurize(stage, inputs, entities, run_id)
        kill_point("stages.before_record")
        fits = [f.to_dict() for f in fits_mod.current(self.state, spec, model)]
        records.put(rstore, name, {"n": n, "stage": name, "key": key, "definition": spec,
                                   "inputs": inputs, "model": {"name": stage.model, "version": mversion} if model else None,
                                   "fit": fits, "output": {"view": stage.output, "version": version, "rows": rows},
                                   "started_at": started, "completed_at": now().isoformat()})
        return StageRun(name, "ran", key, stage.output, version, rows, mversion)

    def _score(self, stage: ModelStage, version: int, entities: Any, run_id: str) -> tuple[int, int | None]:
        if entities is None:
            raise ValidationError(f"stage {stage.name!r} scores entity rows: declare entities= on the stage or pass "
                                  "them to run")
        stage.version = version  # the version this run scores with: its predictions' lineage
        stage.batch_id = f"stage-{run_id}"  # the scorer ingests under it: a resumed run writes no row twice
        rows = plugins.load("stage", "model")(self.store, stage, _entity_table(self.store, entities))
        return rows, self.store.offline.version(stage.output)

    def _function(self, stage: Stage) -> Callable:
        if self._objects is None:  # the repo's files, imported once per run
            self._objects = self.store.repo_objects()
        mine = [o for o in self._objects if isinstance(o, Stage) and o.name == stage.name]
        if not mine:
            raise DefinitionError(f"stage {stage.name!r}: its function {stage.function!r} is not among the declared "
                                  "definitions (run it from its repo, or pass objects=[...])")
        if mine[0].hash != stage.hash:
            raise DefinitionError(f"stage {stage.name!r}: the declared function {mine[0].function!r} differs from "
                                  f"the registry's (hash {mine[0].hash[:12]} vs {stage.hash[:12]}): apply first")
        return mine[0].transform

    def _featurize(self, stage: Stage, inputs: dict, entities: Any, run_id: str) -> tuple[int, int | None]:
        fn = self._function(stage)
        store = self.store
        views = stage.input_names("feature_view")
        if views:
            store.authorize("read_offline", [("view", v) for v in views])
        data: dict[str, Any] = {}
        for ref in stage.inputs:
            kind, _, obj = ref.partition("/")
            if kind == "feature_view":
                if inputs[ref]["history"] is None:
                    raise ValidationError(f"stage {stage.name!r}: its input view {obj!r} has no rows yet (ingest it, or "
                                          "run the stage writing it)")
                rows = read_rows(store.offline.files(obj, inputs[ref]["history"]))
                # the view's columns and its times; the write order columns are the store's, not data
                data[obj] = rows.drop_columns([c for c in (WRITE_BATCH, WRITE_ROW) if c in rows.column_names])
            elif kind == "training_set":
                data[obj] = self.state.get("training_set", obj)
            else:
                if entities is None:
                    raise ValidationError(f"stage {stage.name!r} reads feature service {obj!r} at entity rows: "
                                          "declare entities= on the stage or pass them to run")
                data[obj] = store.get_historical_features(entities, obj, snapshot=inputs[ref]["history"]).to_arrow()
        table = fn(data)
        if table is None:
            raise ValidationError(f"stage {stage.name!r}: its function returned nothing (return the output rows)")
        kill_point("stages.before_output")
        if not len(table):  # nothing to write is a result too (e.g. no input rows yet)
            return 0, store.offline.version(stage.output)
        result = store.ingest(stage.output, table, batch_id=f"stage-{run_id}")
        return result.rows, result.version



def _entities_key(entities: Any) -> str | None:
    """What identifies the entity rows of a run: their content's hash (a table, Parquet files), else the query."""
    if entities is None:
        return None
    digest, _ = fingerprint(entities)
    return digest or str(entities)


def _entity_table(store, entities: Any) -> Any:
    """Entity rows given as text (a Parquet path or glob, an object-store URL, a SQL query) as one Arrow table, as
    the scorer takes them; tables (and a scorer's ``(start, end)`` window) as given."""
    if not isinstance(entities, str):
        return entities
    with tempfile.TemporaryDirectory(prefix="skewless-stage-") as tmp:
        if sources.is_query(entities) or sources.on_object_store(entities):
            entities = sources.entity_files(store.config, entities, Path(tmp))
        columns = entity_columns(entities)
        if columns is None:
            raise ValidationError(f"entity rows {entities!r}: not a readable Parquet file, folder or glob")
        return pa.concat_tables(entity_tables(entities, columns))
