"""Row-by-row skew audit of served values: each logged row's inputs rebuilt through training-set retrieval at the
logged read time, compared value by value, and each mismatch explained by its cause where the history can tell.

The core half of ``skewless audit`` (serving/skew_audit.py reads the prediction log, recomputes the predictions
and makes the report). It knows nothing of models: it takes a table of served rows and an ``AuditSpec`` saying
which column holds which ``view:feature`` (or ``transform:output``), which columns are the entity keys and request
fields, and where each view's served event time and status are.

Modes (docs/skew-audit.md): the verdict uses ``point_in_time="available"``, what could have been known at the read
time (a row created after it cannot have been served, so it is no skew). A second pass in ``"event"`` mode finds
the rows whose training value differs only because of late events (created after serving): not a serving fault,
but what a training set built in event mode would see differently.

Equality is the spec's: exact for everything (nulls equal nulls, NaN equals NaN, floats bit for bit), except the
float results of aggregations (sum, mean, var, stddev), which engines may sum in another order: relative error
1e-9 (transformations.md, "Functions"); a transform output computed from such a value inherits that tolerance (the
online and offline sums differ in their last bits, and so does a ratio taken of them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .aggregation.definition import AggregatedView
from .definitions import CREATED_TS, EVENT_TS, WRITE_BATCH
from .errors import ValidationError
from .online.base import PRESENT

REL_TOL = 1e-9
AVAILABLE_WHY = ("available: a value is compared with what could have been known at the read time (rows created "
                 "after it are left out), which is what a correct online store served")
EVENT_WHY = ("event: rows created after the read time count too; a row that differs only here has a late event "
             "(no serving fault, but a training set built in event mode sees another value)")

# Causes, most specific first (docs/skew-audit.md explains each).
CAUSES = ("online_value", "online_only", "clock_skew", "ttl_boundary", "materialization_lag", "ingest_after_serving",
          "transform_hash", "upstream_input", "aggregation", "unexplained")


@dataclass(frozen=True)
class AuditSpec:
    """Where things are in the served rows. ``features``: column -> ``view:feature`` or ``transform:output``;
    ``entity``: columns passed to retrieval as they are (join keys, keys read by lookups); ``request``: retrieval's
    request field name -> column; ``view_ts``/``view_status``: view -> column of the served event time / status;
    ``transforms``: name -> (the hash the server ran, its input refs)."""

    features: dict[str, str]
    entity: list[str]
    request: dict[str, str] = field(default_factory=dict)
    view_ts: dict[str, str] = field(default_factory=dict)
    view_status: dict[str, str] = field(default_factory=dict)
    transforms: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


@dataclass
class Mismatch:
    row: int  # position in the audited table
    ref: str
    served: object
    offline: object
    cause: str
    lag_seconds: float | None = None

    def to_dict(self) -> dict:
        return {"row": self.row, "feature": self.ref, "served": _plain(self.served), "offline": _plain(self.offline),
                "cause": self.cause, "lag_seconds": self.lag_seconds}


@dataclass
class FeatureAudit:
    rows: int
    row_ok: np.ndarray  # bool per row: every value equal
    mismatches: list[Mismatch]
    late: list[Mismatch]  # equal in "available" mode, different in "event" mode: late events
    modes: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time (retrievals, compare, explain)
    snapshot: dict[str, int | None] = field(default_factory=dict)  # the history versions audited against


def _plain(v):
    return v.isoformat() if isinstance(v, datetime) else v


def equal(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array, tolerant: bool = False) -> np.ndarray:
    """Per row: the two values are the same under the spec (see the module doc). Vectorised."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if isinstance(b, pa.ChunkedArray):
        b = b.combine_chunks()
    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], dtype=bool)
    an, bn = a.is_null().to_numpy(zero_copy_only=False), b.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(a.type):
        x = a.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
        y = b.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            same = (x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y)) | (x == y)
            if tolerant:
                same |= np.abs(x - y) <= REL_TOL * np.maximum(np.abs(x), np.abs(y))
    elif pa.types.is_list(a.type) or pa.types.is_large_list(a.type) or pa.types.is_binary(a.type):
        same = np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], dtype=bool)
    else:
        same = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    return np.where(an | bn, an & bn, same)


def _tolerant(view, feature: str) -> bool:
    """Float aggregation results other than min/max/last may be summed in another order (the spec's 1e-9)."""
    if not isinstance(view, AggregatedView):
        return False
    for a in view.aggregations:
        if a.name == feature:
            return a.function in ("sum", "mean", "var", "stddev")
    return False


def _tolerant_ref(ref: str, views: dict, spec: AuditSpec) -> bool:
    """A float aggregation result, or a transform output computed from one: its last bits may differ (the spec
    lets engines sum in another order, and a transform carries that difference through its arithmetic)."""
    v, f = ref.split(":")
    if v in spec.transforms:
        return any(_tolerant_ref(r, views, spec) for r in spec.transforms[v][1] if r.split(":")[0] != v)
    return v in views and _tolerant(views[v], f)


def audit_features(store, served: pa.Table, spec: AuditSpec) -> FeatureAudit:
    """Every row of ``served`` (with ``event_timestamp``, the read time) through ``get_historical_features`` in
    "available" mode and then "event" mode, compared column by column; mismatches explained."""
    n = served.num_rows
    refs = list(dict.fromkeys(spec.features.values()))
    if not refs:
        raise ValidationError("nothing to audit: the spec names no feature")
    entity = served.select([*spec.entity, EVENT_TS])
    for name, col in spec.request.items():
        entity = entity.append_column(name, served.column(col))
    state = store._registry_state()
    views = {name: state.get("feature_view", name) for name in _views_of(refs, state)}
    t0 = time.perf_counter()
    job = store.get_historical_features(entity, refs, full_feature_names=True, point_in_time="available",
                                        include_event_timestamps=True)
    snapshot = dict(job.snapshot)  # both passes and the causes read the histories at these versions
    available = job.to_arrow()
    t1 = time.perf_counter()
    event = store.get_historical_features(entity, refs, full_feature_names=True, point_in_time="event",
                                          snapshot=snapshot).to_arrow()
    t2 = time.perf_counter()
    row_ok = np.ones(n, dtype=bool)
    wrong: dict[str, np.ndarray] = {}
    late_idx: dict[str, np.ndarray] = {}
    for col, ref in spec.features.items():
        out = ref.replace(":", "__")
        tol = _tolerant_ref(ref, views, spec)
        ok = equal(served.column(col), available.column(out), tol)
        row_ok &= ok
        if not ok.all():
            wrong[col] = np.flatnonzero(~ok)
        ok_event = equal(served.column(col), event.column(out), tol)
        if not (ok_event | ~ok).all():
            late_idx[col] = np.flatnonzero(ok & ~ok_event)
    t3 = time.perf_counter()
    mismatches = _explain(store, snapshot, served, spec, views, available, wrong) if wrong else []
    late = _explain_late(store, snapshot, served, spec, views, event, late_idx) if late_idx else []
    modes = [{"comparison": "verdict", "point_in_time": "available", "why": AVAILABLE_WHY},
             {"comparison": "late events", "point_in_time": "event", "why": EVENT_WHY}]
    seconds = {"available": t1 - t0, "event": t2 - t1, "compare": t3 - t2, "explain": time.perf_counter() - t3}
    return FeatureAudit(n, row_ok, mismatches, late, modes, seconds, snapshot)


def _views_of(refs: list[str], state) -> list[str]:
    transforms = state.objects.get("transform", {})
    out: list[str] = []
    for ref in refs:
        name = ref.split(":")[0]
        if name in transforms:
            for r in state.get("transform", name).inputs.values():
                out.append(r.split(":")[0])
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def _explain(store, snapshot: dict, served: pa.Table, spec: AuditSpec, views: dict, available: pa.Table,
             wrong: dict[str, np.ndarray]) -> list[Mismatch]:
    """The cause of each mismatched value. Reads the history only for the mismatched rows' entities."""
    state = store._registry_state()
    transforms = state.objects.get("transform", {})
    by_view_rows: dict[str, set[int]] = {}
    for col, idx in wrong.items():
        name = spec.features[col].split(":")[0]
        if name not in transforms:
            by_view_rows.setdefault(name, set()).update(idx.tolist())
    history = {v: _history(store, snapshot, views[v], served, sorted(rows)) for v, rows in by_view_rows.items()}
    out = []
    cause_at: dict[tuple[str, int], tuple[str, float | None]] = {}
    for col, idx in wrong.items():  # views first: a transform's mismatch may come from its inputs
        ref = spec.features[col]
        name = ref.split(":")[0]
        if name in transforms:
            continue
        for i in idx.tolist():
            cause, lag = cause_at.setdefault((name, i), _view_cause(views[name], history[name], served, spec,
                                                                    available, i))
            out.append(Mismatch(i, ref, served.column(col)[i].as_py(),
                                available.column(ref.replace(":", "__"))[i].as_py(), cause, lag))
    bad_refs: dict[int, set[str]] = {}
    for m in out:
        bad_refs.setdefault(m.row, set()).add(m.ref)
    for col, idx in wrong.items():
        ref = spec.features[col]
        name = ref.split(":")[0]
        if name not in transforms:
            continue
        pinned, inputs = spec.transforms.get(name, (None, []))
        now_hash = transforms[name]["spec"].get("hash")
        for i in idx.tolist():
            upstream = bad_refs.get(i, set()) & set(inputs)
            cause = "upstream_input" if upstream else "transform_hash" if pinned and now_hash != pinned else \
                "unexplained"
            out.append(Mismatch(i, ref, served.column(col)[i].as_py(),
                                available.column(ref.replace(":", "__"))[i].as_py(), cause))
    return out


class _History:
    """A view's history rows for some entities, as order arrays (event and created time in us, write time in us
    from the write batch's ns) indexed by entity key, so each mismatched row finds its candidates in O(1)."""

    def __init__(self, view, table: pa.Table):
        self.keys = list(view.join_keys)
        self._index: dict = {}
        if not table.num_rows:
            self.ev = self.cr = self.wr = np.empty(0, dtype=np.int64)
            return
        us = pa.timestamp("us", "UTC")
        self.ev = table.column(EVENT_TS).cast(us).cast(pa.int64()).to_numpy()
        self.cr = table.column(CREATED_TS).cast(us).cast(pa.int64()).to_numpy()
        self.wr = table.column(WRITE_BATCH).to_numpy() // 1000  # the write batch is the write time in ns
        frame = table.select(self.keys).to_pandas()
        self._index = frame.groupby(self.keys, sort=False, dropna=False).indices

    def rows(self, served: pa.Table, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(event, created, written) of the entity of served row ``i``'s history rows."""
        key = tuple(served.column(k)[i].as_py() for k in self.keys)
        idx = self._index.get(key[0] if len(key) == 1 else key)
        if idx is None:
            idx = np.empty(0, dtype=np.int64)
        return self.ev[idx], self.cr[idx], self.wr[idx]


def _history(store, snapshot: dict, view, served: pa.Table, rows: list[int]) -> _History:
    """The view's history rows (at its ``snapshot`` version) for the entities of ``rows``."""
    files = store.offline.files(view.name, snapshot.get(view.name))
    if files.version is None or not files.uris:
        return _History(view, pa.table({}))
    paths = [u.removeprefix("file://") if files.filesystem is None else u.split("://", 1)[-1] for u in files.uris]
    dataset = ds.dataset(paths, format="parquet", filesystem=files.filesystem)
    cond = None
    take = pa.array(rows)
    for k in view.join_keys:
        values = pc.unique(served.column(k).take(take))
        c = pc.field(k).isin(values.cast(dataset.schema.field(k).type))
        cond = c if cond is None else cond & c
    return _History(view, dataset.to_table(columns=[*view.join_keys, EVENT_TS, CREATED_TS, WRITE_BATCH],
                                           filter=cond))


def _us(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))


def _view_cause(view, hist: _History, served: pa.Table, spec: AuditSpec, available: pa.Table,
                i: int) -> tuple[str, float | None]:
    """Why the served values of ``view`` differ from the history at the read time ``t`` (see CAUSES)."""
    t = served.column(EVENT_TS)[i].as_py()
    tus = _us(t)
    ev, cr, wr = hist.rows(served, i)
    if isinstance(view, AggregatedView):
        # The window's events: one written to the history after the read although known before it explains it
        longest = max(a.window for a in view.aggregations) + view.hop
        if len(ev):
            inside = (ev <= tus) & (ev > tus - longest // timedelta(microseconds=1)) & (cr <= tus)
            after = inside & (wr > tus)
            if after.any():
                return "ingest_after_serving", float((wr[after].max() - tus) / 1e6)
        return "aggregation", None
    st_col, ts_col = spec.view_status.get(view.name), spec.view_ts.get(view.name)
    status = served.column(st_col)[i].as_py() if st_col else None
    served_ts = served.column(ts_col)[i].as_py() if ts_col else None
    off_ts_name = f"{view.name}__{EVENT_TS}"
    off_ts = available.column(off_ts_name)[i].as_py() if off_ts_name in available.column_names else None
    if not len(ev):
        return ("online_only", None) if status == PRESENT else ("unexplained", None)
    ttl_us = view.ttl // timedelta(microseconds=1) if view.ttl else None
    if status == PRESENT and served_ts is not None:
        s_us = _us(served_ts)
        same = ev == s_us
        if off_ts is not None and _us(off_ts) == s_us:
            return "online_value", None  # the history's row at that event time holds another value
        if off_ts is None and ttl_us is not None and same.any() and s_us < tus - ttl_us + 1:
            return "ttl_boundary", None  # served although the history says expired at t
        if same.any() and not (same & (cr <= tus)).any():
            # the history says that row became known after the read, yet it was served: a clock is off
            return "clock_skew", float((cr[same].min() - tus) / 1e6)
        if off_ts is None or _us(off_ts) < s_us:
            return "online_only", None  # online held a value the history does not have (at that key and time)
    if status not in (PRESENT, None) and off_ts is not None and served_ts is not None and _us(off_ts) == _us(
            served_ts):
        return "ttl_boundary", None
    if off_ts is not None and (served_ts is None or status != PRESENT or _us(off_ts) > _us(served_ts)):
        # the history had a newer row than was served: when was it written?
        o_us = _us(off_ts)
        win = (ev == o_us) & (cr <= tus)
        written = int(wr[win].min()) if win.any() else None
        if written is not None and written > tus:
            return "ingest_after_serving", float((written - tus) / 1e6)
        if written is not None:
            return "materialization_lag", float((tus - max(written, int(cr[win].min()))) / 1e6)
    return "unexplained", None


def _explain_late(store, snapshot: dict, served: pa.Table, spec: AuditSpec, views: dict, event: pa.Table,
                  late_idx: dict[str, np.ndarray]) -> list[Mismatch]:
    """Values equal in "available" mode but not in "event" mode: a late event (created after the read) decides the
    event-mode value; its lag is how long after the read it was created."""
    out = []
    hist_cache: dict[str, _History] = {}
    transforms = store._registry_state().objects.get("transform", {})
    for col, idx in late_idx.items():
        ref = spec.features[col]
        name = ref.split(":")[0]
        for i in idx.tolist():
            lag = None
            if name not in transforms and name in views:
                if name not in hist_cache:
                    hist_cache[name] = _history(store, snapshot, views[name], served, sorted(
                        {j for c, ix in late_idx.items() if spec.features[c].startswith(name + ":") for j in ix}))
                ev, cr, _ = hist_cache[name].rows(served, i)
                tus = _us(served.column(EVENT_TS)[i].as_py())
                later = (ev <= tus) & (cr > tus)
                lag = float((cr[later].min() - tus) / 1e6) if later.any() else None
            out.append(Mismatch(i, ref, served.column(col)[i].as_py(),
                                event.column(ref.replace(":", "__"))[i].as_py(), "late_event", lag))
    return out
