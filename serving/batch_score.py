"""Batch scoring: a registered model version run over an entity table (or a schedule window's entities) through
the training-set path, its predictions written in the prediction log's format to a feature view.

Per entity row (join keys, event time, request fields), the model's features are read by
``get_historical_features`` at the row's time with ``point_in_time="available"`` (what an online store could have
served then: the skew audit's verdict mode), on the configured engine (DuckDB, MaxCompute...); key lookups are
followed stage by stage as the server follows them (``ModelManifest.read_stages``); the registered artifact
predicts (``skew_audit.model_outputs``: the server's input frame, the same code the audit re-runs). The rows have
the prediction log's columns (``prediction_log.columns``): event time = the row's time, the features used, each
view's event time and status, request fields, outputs, ``model_name`` / ``model_version`` as lineage; so a batch
row and an online row of the same entity and time compare column by column.

Written to a view (``prediction_view``) through ingest, with a batch id derived from the model version, the view
and the entity rows: a rerun of the same job appends nothing. Predictions then read as features of later models.
See docs/batch-scoring.md.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from skewless import dtypes, pii
from skewless.aggregation.definition import AggregatedView
from skewless.definitions import EVENT_TS, FeatureView, check_name
from skewless.errors import ConflictError, DefinitionError, ValidationError
from skewless.online.base import EXPIRED, NOT_FOUND, PRESENT
from skewless.retrieval import entity_input, polars_to_arrow
from skewless.timeutil import utc
from skewless.training_sets import fingerprint

from . import prediction_log
from .artifact import ModelManifest
from .model_registry import ModelRegistry
from .skew_audit import loaded_version, model_outputs

KIND = "batch_predictions"  # the skewless.kind tag of a view prediction_view declares
UTC_US = pa.timestamp("us", "UTC")


@dataclass
class ScoreResult:
    model: str
    version: int
    table: pa.Table  # the scored rows, in the prediction log's columns (PII features as the log stores them)
    view: str | None = None  # where they were written (None: not written)
    written: int = 0  # rows appended to the view; 0 on a rerun of a committed job
    already_written: bool = False
    batch_id: str = ""
    snapshot: dict[str, int | None] = field(default_factory=dict)  # the history versions the features were read at
    seconds: dict[str, float] = field(default_factory=dict)  # retrieval, model, write

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "rows": self.rows, "view": self.view,
                "written": self.written, "already_written": self.already_written, "batch_id": self.batch_id,
                "snapshot": self.snapshot, "seconds": self.seconds}


def prediction_view(store, model: str | ModelManifest, name: str | None = None, *, version: int | None = None,
                    stage: str | None = None, online: bool | None = None) -> FeatureView:
    """Declare (apply) the view batch predictions of ``model``'s version are written to: the prediction log's
    schema (``prediction_log.log_view``) under ``name`` (default ``scores_<model>``), tagged with the model.
    ``online``: also pushed online by each write (predictions served as features); None keeps what the view was
    declared with (a new one: offline only). A no-op when the registry holds it already; a DefinitionError when ``name`` is another view, or holds
    predictions of another signature (a version with other inputs or outputs needs a view of its own)."""
    m = model if isinstance(model, ModelManifest) else ModelRegistry(store).get(model, version, stage=stage).manifest
    name = name or f"scores_{m.name}"
    check_name("feature view", name)
    if name == prediction_log.view_name(m.name):
        raise DefinitionError(f"view {name!r} is the model's prediction log (online predictions): batch "
                              "predictions go to a view of their own")
    spec = prediction_log.log_view(m).to_dict()
    spec.update(name=name, online=bool(online), tags={"skewless.kind": KIND, "skewless.model": m.name},
                description=f"Batch predictions of model {m.name!r} (batch scoring), in its prediction log's columns")
    view = FeatureView.from_dict(spec)
    for _ in range(10):
        state = store._registry_state(fresh=True)
        if name in state.objects.get("feature_view", {}):
            have = state.get("feature_view", name)
            if have.tags.get("skewless.kind") != KIND:
                raise DefinitionError(f"view {name!r} exists and is not a batch prediction view: choose another "
                                      "output view")
            old, new = have.to_dict(), view.to_dict()
            if (old["join_keys"], old["schema"]) != (new["join_keys"], new["schema"]):
                raise DefinitionError(f"view {name!r} holds predictions with other columns (model "
                                      f"{have.tags.get('skewless.model')!r}); write model {m.name!r} to another "
                                      "output view")
            if online is None or have.online == online:
                return have
        try:
            store.apply([view])
            return view
        except ConflictError:  # another apply won (e.g. a concurrent job declaring the same view): re-read
            continue
    raise ConflictError(f"view {name!r}: concurrent applies kept winning first")


def _as_table(entities: Any) -> pa.Table:
    entities = polars_to_arrow(entities)
    if isinstance(entities, pa.Table):
        return entities
    if isinstance(entities, pa.RecordBatch):
        return pa.Table.from_batches([entities])
    if isinstance(entities, pd.DataFrame):
        return pa.Table.from_pandas(entities, preserve_index=False)
    raise ValidationError(f"entities must be a pandas, pyarrow or polars table, not {type(entities).__name__}")


def _entity(m: ModelManifest, entities: Any, timestamp_column: str) -> pa.Table:
    """The entity rows the retrievals take: request keys, ``event_timestamp`` (UTC), request fields; checked."""
    table = _as_table(entities)
    fields = m.request_fields()
    missing = [c for c in [*m.request_keys, timestamp_column, *fields] if c not in table.column_names]
    if missing:
        raise ValidationError(f"entity rows for model {m.name!r} lack columns {missing} (it needs the keys "
                              f"{list(m.request_keys)}, {timestamp_column!r} and the request fields {list(fields)})",
                              column=missing[0])
    if not table.num_rows:
        raise ValidationError(f"entity rows for model {m.name!r}: no rows")
    table = entity_input(table, timestamp_column, None)
    ts = table.column(timestamp_column)
    if ts.null_count:
        raise ValidationError(f"entity rows: {timestamp_column!r} is null at row "
                              f"{pc.index(ts.is_null(), True).as_py()}", column=timestamp_column)
    if not pa.types.is_timestamp(ts.type):
        raise ValidationError(f"entity rows: {timestamp_column!r} holds {ts.type}, not timestamps",
                              column=timestamp_column)
    cols = {k: _typed(table, k, d) for k, d in m.request_keys.items()}
    for k, col in cols.items():
        if col.null_count:  # the server refuses a row without its key too
            raise ValidationError(f"entity rows: key {k!r} is null at row {pc.index(col.is_null(), True).as_py()}",
                                  column=k)
    cols[EVENT_TS] = ts.cast(UTC_US)  # a naive time is UTC, as everywhere in skewless
    cols.update({f: _typed(table, f, d) for f, d in fields.items()})
    return pa.table(cols)


def _typed(table: pa.Table, name: str, dtype: str) -> pa.ChunkedArray:
    """Column ``name`` as the model's dtype for it (a ValidationError naming it when its values are not)."""
    col = table.column(name)
    try:
        return col.cast(dtypes.by_name(dtype).arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise ValidationError(f"entity rows: column {name!r} holds {col.type} values that are not {dtype}",
                              column=name) from None


READS = ("join_keys", "ttl_seconds", "aggregations", "hop_us", "event_id")  # what changes a view's values


def check_definitions(store, m: ModelManifest) -> None:
    """The feature registry's views and transforms read the model's features as its server does: the same keys,
    TTL, aggregations and dtypes of what it reads as frozen in the artifact, the same transform code as pinned (the
    server refuses other code too). A DefinitionError naming each difference otherwise: retrieval reads through
    the registry's definitions, and the batch rows would not be comparable with the server's."""
    state = store._registry_state()
    wrong = []
    reads: dict[str, set[str]] = {}
    for ref in m.online_refs():
        reads.setdefault(ref.split(":")[0], set()).add(ref.split(":")[1])
    for name, frozen in m.feature_views.items():
        have = state.get("feature_view", name).to_dict()
        wrong += [f"{name}.{k}: {frozen.get(k)!r} -> {have.get(k)!r}" for k in READS if have.get(k) != frozen.get(k)]
        was, now = ({f["name"]: f["dtype"] for f in d["schema"]} for d in (frozen, have))
        wrong += [f"{name}:{f} dtype {was[f]} -> {now.get(f)}" for f in sorted(reads.get(name, ()))
                  if f in was and now.get(f) != was[f]]
    for name, pinned in m.transform_hashes().items():
        have = state.objects.get("transform", {}).get(name)
        if have is None or have["spec"]["hash"] != pinned:
            wrong.append(f"transform {name}: pinned {pinned[:12]}, registry "
                         f"{have['spec']['hash'][:12] if have else 'none'}")
    if wrong:
        raise DefinitionError(f"model {m.name!r} was packaged with other definitions than the feature registry "
                              f"(version {state.version}) holds: {'; '.join(wrong)}; its batch scores would not be "
                              "its server's: package the model on the registry's definitions")


def _features(store, m: ModelManifest, entity: pa.Table, point_in_time: str) -> tuple[pa.Table, dict, dict]:
    """(the final entity rows, keys read by lookups added; {column: values} of every feature, view event time and
    status the log holds; the snapshot read). One retrieval per read stage of the server (usually one)."""
    stages = m.read_stages()
    transform_refs = [i["source"] for i in m.inputs if m.is_transform(i["source"])]
    values: dict[str, pa.ChunkedArray] = {}
    snapshot: dict[str, int | None] = {}
    for n, stage in enumerate(stages):
        refs = [f"{v.name}:{f}" for v, fs in stage for f in fs]
        if n == len(stages) - 1:  # every key is known by the last stage: the transforms run there
            refs += [r for r in transform_refs if r not in refs]
        job = store.get_historical_features(entity, refs, full_feature_names=True, point_in_time=point_in_time,
                                            include_event_timestamps=True)
        snapshot.update(job.snapshot)
        got = job.to_arrow()
        for ref in refs:
            col = ref.replace(":", "__")
            values[col] = got.column(col)
        for v, _ in stage:
            ts_col = f"{v.name}__{EVENT_TS}"
            ts = got.column(ts_col).cast(UTC_US) if ts_col in got.column_names else \
                pa.nulls(got.num_rows, UTC_US)
            if isinstance(v, AggregatedView):
                # online, every output of an entity is PRESENT (a value at `now`, zero events included); only a
                # key with a null part reads NOT_FOUND (aggregation/online_values.py)
                known = functools.reduce(pc.and_kleene, [pc.is_valid(entity.column(k)) for k in v.join_keys])
            else:
                known = pc.is_valid(ts)
            status = np.where(pc.fill_null(known, False).to_numpy(zero_copy_only=False), PRESENT, NOT_FOUND)
            if v.ttl is not None and not isinstance(v, AggregatedView) and ts.null_count:
                status[_expired(store, v, entity, ts, job.snapshot[v.name], point_in_time)] = EXPIRED
            values[f"{v.name}__{EVENT_TS}"] = ts
            values[f"{v.name}__status"] = pa.array(status, pa.string())
        for key, ref in m.key_lookups.items():  # keys the next stage needs, read from this one
            if ref.split(":")[0] in {v.name for v, _ in stage}:
                col = values[ref.replace(":", "__")]
                entity = entity.set_column(entity.column_names.index(key), key, col) if key in \
                    entity.column_names else entity.append_column(key, col)
    return entity, values, snapshot


def _expired(store, view: FeatureView, entity: pa.Table, ts: pa.ChunkedArray, version: int | None,
             point_in_time: str) -> np.ndarray:
    """The rows without a value of ``view`` (which has a TTL) that had one older than the TTL: EXPIRED, as the
    online store says (the training path returns no value either way). One retrieval on the engine, of just those
    rows, against the view without its TTL at the same history version."""
    rows = np.flatnonzero(ts.is_null().to_numpy(zero_copy_only=False))
    probe = FeatureView.from_dict({**view.to_dict(), "ttl_seconds": None})
    feature = view.features[0].name
    job = store.engine.historical(entity.take(pa.array(rows)).select([*view.join_keys, EVENT_TS]),
                                  [(probe, [feature])], {view.name: store.offline.files(view.name, version)},
                                  snapshot={view.name: version}, features=[f"{view.name}:{feature}"],
                                  timestamp_column=EVENT_TS, full_feature_names=True, point_in_time=point_in_time,
                                  event_timestamps=True)
    had = job.to_arrow().column(f"{view.name}__{EVENT_TS}").is_valid().to_numpy(zero_copy_only=False)
    return rows[had]


def _rows(m: ModelManifest, version: int, entity: pa.Table, values: dict, request_id: str) -> pa.Table:
    """The prediction log's columns (``prediction_log.columns``) of the scored rows, outputs not yet filled: PII
    features hold their values here (the model takes them); ``_logged`` stores them as the log does."""
    view = prediction_log.log_view(m)
    n = entity.num_rows
    types = {f.name: f.dtype.arrow for f in view.schema}
    cols: dict[str, Any] = {k: entity.column(k).cast(types[k]) for k in view.join_keys}
    cols[EVENT_TS] = entity.column(EVENT_TS)
    meta = {"request_id": pa.array([request_id] * n, pa.string()), "request_row": pa.array(range(n), pa.int64()),
            "model_name": pa.array([m.name] * n, pa.string()), "model_version": pa.array([version] * n, pa.int64())}
    for col, (_, kind, what) in prediction_log.columns(m).items():
        if kind == "meta":
            cols[col] = meta[col]
        elif kind in ("key", "request"):
            cols[col] = entity.column(what).cast(types[col])
        elif kind == "output":
            cols[col] = pa.nulls(n, types[col])
        elif kind == "feature_pii":
            cols[col] = values[col]  # the value, for the model; stored as the log stores it by _logged
        else:  # feature, view_ts, view_status
            cols[col] = values[col].cast(types[col])
    return pa.table(cols)


def _empty(m: ModelManifest) -> pa.Table:
    view = prediction_log.log_view(m)
    fields = [(k, view.join_key_dtypes[k].arrow) for k in view.join_keys] + [(EVENT_TS, UTC_US)]
    fields += [(f.name, f.dtype.arrow) for f in view.schema if f.name not in view.join_keys]
    return pa.schema(fields).empty_table()


def _logged(m: ModelManifest, table: pa.Table) -> pa.Table:
    """PII features as the prediction log stores them (``log_pii``: redacted, hashed or kept)."""
    pii_cols = [c for c, (_, kind, _) in prediction_log.columns(m).items() if kind == "feature_pii"]
    if not pii_cols:
        return table
    key = pii.hash_key() if m.log_pii == "hash" else None
    for c in pii_cols:
        logged = [pii.log_value(v, m.log_pii, key) for v in table.column(c).to_pylist()]
        table = table.set_column(table.column_names.index(c), c, pa.array(logged, pa.string()))
    return table


def _batch_id(mv, view: str | None, entity: pa.Table, point_in_time: str) -> str:
    digest, _ = fingerprint(entity)
    h = hashlib.sha256(f"{mv.name}\0{mv.version}\0{mv.artifact_sha256}\0{view}\0{point_in_time}\0{digest}".encode())
    return f"score:{h.hexdigest()[:40]}"


def score(store, model: str, entities: Any = None, *, version: int | None = None, stage: str | None = None,
          output_view: str | None = None, start: datetime | str | None = None, end: datetime | str | None = None,
          timestamp_column: str = EVENT_TS, point_in_time: str = "available",
          batch_id: str | None = None) -> ScoreResult:
    """Score ``model``'s version (by number, stage, or the newest) over ``entities`` (pandas/Arrow/polars: the
    request keys, ``timestamp_column``, the request fields) or, given ``start``/``end`` instead, over the entities
    with rows in that window (``window_entities``, scored as of ``end``). With ``output_view``, the rows are
    written there (``prediction_view`` declares it) once: a rerun of the same job appends nothing. ``batch_id``: the
    write's identity instead of the job's (a pipeline stage's run, ``run_model_stage``)."""
    t0 = time.perf_counter()
    mv = ModelRegistry(store).get(model, version, stage=stage)
    m = mv.manifest
    if entities is None:
        if start is None or end is None:
            raise ValidationError("give the entity rows to score, or a window (start and end)")
        if m.request_fields():
            raise ValidationError(f"model {m.name!r} takes request fields {list(m.request_fields())}, which only "
                                  "entity rows carry (a window gives keys and a time): score entity rows")
        entities, timestamp_column = model_window(store, m, start, end), EVENT_TS
        if not entities.num_rows:  # a scheduled window with nothing in it: nothing to score (not an error)
            return ScoreResult(m.name, mv.version, _empty(m))
    elif start is not None or end is not None:
        raise ValidationError("give the entity rows or a window (start and end), not both")
    entity = _entity(m, entities, timestamp_column)
    check_definitions(store, m)
    job = _batch_id(mv, output_view, entity, point_in_time)
    batch_id = batch_id or job
    view = prediction_view(store, m, output_view) if output_view else None
    entity, values, snapshot = _features(store, m, entity, point_in_time)
    t1 = time.perf_counter()
    table = _rows(m, mv.version, entity, values, "batch-" + job.split(":")[1][:16])
    with loaded_version(store, model, mv.version) as (_, loaded):
        outputs = model_outputs(m, loaded, table)
    for name, arr in outputs.items():
        table = table.set_column(table.column_names.index(f"output__{name}"), f"output__{name}", arr)
    table = _logged(m, table)
    t2 = time.perf_counter()
    result = ScoreResult(m.name, mv.version, table, batch_id=batch_id, snapshot=snapshot,
                         seconds={"retrieval": t1 - t0, "model": t2 - t1})
    if view is not None:
        res = store.ingest(view.name, table, batch_id=batch_id, online=view.online)
        result.view, result.already_written = view.name, res.already_ingested
        result.written = 0 if res.already_ingested else res.rows
        result.seconds["write"] = time.perf_counter() - t2
    return result


def window_entities(store, source: str | Sequence[str], start: datetime | str, end: datetime | str, *,
                    keys: Sequence[str] | None = None) -> pa.Table:
    """The entities with rows whose event time is in [start, end] in ``source`` (a view, a feature service, or
    view names), as entity rows scored as of ``end``: their join keys, ``event_timestamp`` = end. Of a service's
    views, those keyed by ``keys`` (default: the first view's keys). Found by the engine's materialize scan
    (``Engine.latest_rows``), so on MaxCompute the scan runs there."""
    start, end = utc(start, "start"), utc(end, "end")
    if start > end:
        raise ValidationError(f"window start {start.isoformat()} is after its end {end.isoformat()}")
    state = store._registry_state()
    if isinstance(source, str):
        if source in state.objects.get("feature_view", {}):
            names = [source]
        else:
            from skewless.features import resolve

            names = [v.name for v, _ in resolve(state, state.get("feature_service", source))]
    else:
        names = list(source)
    views = [state.get("feature_view", n) for n in names]
    keys = list(keys) if keys is not None else list(views[0].join_keys)
    views = [v for v in views if set(v.join_keys) == set(keys)]
    if not views:
        raise ValidationError(f"no view of {source!r} is keyed by {keys}")
    found = []
    for v in views:
        files = store.offline.files(v.name, store.offline.version(v.name))
        if isinstance(v, AggregatedView):  # its history holds the events: scanned as the plain view of its columns
            v = FeatureView.from_dict({"name": v.name, "entities": v.entities, "schema": [f.to_dict() for f in v.schema],
                                       "join_keys": {k: d.name for k, d in v.join_key_dtypes.items()}})
        con = store.engine.connect()
        try:
            found.append(store.engine.latest_rows(con, v, files, start, end).read_all().select(keys))
        finally:
            con.close()
    rows = pa.concat_tables([t.cast(found[0].schema) for t in found]).group_by(keys).aggregate([])
    rows = rows.sort_by([(k, "ascending") for k in keys])
    return rows.append_column(EVENT_TS, pa.array([end] * rows.num_rows, UTC_US))


def model_window(store, m: ModelManifest, start, end) -> pa.Table:
    """A window's entity rows for model ``m``: entities of the views it reads by its request keys alone."""
    join = list(prediction_log.log_view(m).join_keys)
    names = [n for n, spec in m.feature_views.items() if set(spec["join_keys"]) == set(join)]
    return window_entities(store, names, start, end, keys=join)


def run_model_stage(store, stage, entities) -> int:
    """A pipeline's model stage: ``stage.model``'s version ``stage.version`` (None: the newest) scored over
    ``entities`` (a table, or a ``(start, end)`` window) into the view ``stage.output``. Returns the rows written
    (0 when the same job was written before). ``stage.batch_id`` (set by ``skewless.stages.run``: the stage run's
    identity) replaces the job's own: a stale stage run again after new feature data writes new predictions, while
    the same run resumed after a kill writes none twice."""
    version = getattr(stage, "version", None)
    batch_id = getattr(stage, "batch_id", None)
    if isinstance(entities, tuple) and len(entities) == 2:
        result = score(store, stage.model, version=version, output_view=stage.output, start=entities[0],
                       end=entities[1], batch_id=batch_id)
    else:
        result = score(store, stage.model, entities, version=version, output_view=stage.output, batch_id=batch_id)
    return result.written
