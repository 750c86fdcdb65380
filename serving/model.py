"""The served model: KServe's lifecycle (``load()``, ``ready``, ``predict()``) around one artifact, with the
feature lookup in front and the prediction log behind.

``predict_batch`` is what the micro-batcher calls with every request queued at that moment: one online read per
stage for all their rows (``online_read.read``, the code path of ``FeatureStore.get_online_features``, with the
view definitions frozen in the artifact), one model call, then the answers are split back per request and the
rows handed to the prediction log.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from skewless import dtypes, online_read, pii
from skewless.definitions import EVENT_TS
from skewless.errors import ConfigError, SkewlessError, StoreUnavailable, ValidationError
from skewless.online.base import PRESENT
from skewless.online_read import INT_RANGE
from skewless.online_read import _norm as normalize  # the key normalisation get_online_features applies
from skewless.timeutil import now as utc_now
from skewless.transforms.online import transform_columns
from skewless.transforms.resolve import TransformRequest

from . import prediction_log
from .artifact import ModelArtifact, check_missing_policy
from .errors import MissingFeatures, NotReady, PredictionError, TransformMismatch

log = logging.getLogger("skewless.serving")
MAX_ROWS_PER_REQUEST = 10_000
_FLOAT32_MAX = 3.4028234663852886e38
# The JSON type a valid value of each dtype arrives as, exactly (bool is an int subclass: `true` is no Int64).
_JSON_TYPE = {"Int32": int, "Int64": int, "String": str, "Bool": bool, "Float32": float, "Float64": float}


def _bad(k: str, v: Any, dt: dtypes.DType, i: int, why: str = "", hidden: bool = False) -> ValidationError:
    # a huge value is not echoed whole, a PII one not at all (skewless.pii)
    return ValidationError(f"row {i}: {k}={pii.show(v, hidden, 40)} is not a valid {dt}{why}", column=k, row=i)


def _strict(v: Any, dt: dtypes.DType, k: str, i: int, hidden: bool = False) -> Any:
    """A JSON value of a request key or field, checked against its dtype (the slow path of ``parse``): the value
    it stands for, or a ValidationError naming it. Strict on purpose: a value the log or a store cannot hold (an
    Int64 beyond 64 bits, `true` for an integer key) is refused here, before it reaches a batch."""
    if v is None:
        return None
    name = dt.name
    if isinstance(v, bool) and name != "Bool":
        raise _bad(k, v, dt, i, " (a boolean)", hidden)
    if name in INT_RANGE:
        # A float stands for an integer only where floats are exact: orjson reads an integer below Int64 as a float
        # that rounds to -2**63, a key the caller never sent.
        if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
            v = int(v)
        if type(v) is not int:
            raise _bad(k, v, dt, i, "", hidden)
        lo, hi = INT_RANGE[name]
        if not lo <= v <= hi:
            raise _bad(k, v, dt, i, f" (out of range [{lo}, {hi}])", hidden)
        return v
    if name in ("Float32", "Float64"):
        try:
            f = float(v) if type(v) in (int, float) else None
        except OverflowError:  # an integer beyond any double
            f = None
        if f is None or f != f or abs(f) > (_FLOAT32_MAX if name == "Float32" else sys.float_info.max):
            raise _bad(k, v, dt, i, "", hidden)
        return f
    if name in ("String", "Bool"):
        if type(v) is not _JSON_TYPE[name]:
            raise _bad(k, v, dt, i, "", hidden)
        return v
    return normalize(v, dt, k, i, hidden)  # timestamps and bytes: the SDK's conversions


@dataclass
class Request:
    rows: list[dict]
    request_id: str
    span: Any = None  # the request's tracing span (tracing on): its batch's spans descend from it or link to it


class ServedModel:
    def __init__(self, artifact: ModelArtifact, store, *, version: int = 0, log_writer_options: dict | None = None,
                 on_log_event=None, missing_features: str | None = None):
        self.artifact, self.store, self.version = artifact, store, version
        self.manifest = m = artifact.manifest
        self.name = m.name
        self._model = None
        self._matrix = None  # the model's array predict, when its inputs need no DataFrame (see load)
        self.error: str | None = None  # why load() failed
        self.stages = m.read_stages()
        # serve | flag | reject when a required view is not PRESENT for a row (the server's setting wins)
        self.missing_policy = check_missing_policy(m.missing_features) if missing_features is None else \
            check_missing_policy(missing_features, ConfigError)
        self.required = m.required_views()
        # The metrics' hook, once per batch: (rows, {view: statuses} of the views with a row not PRESENT, rows
        # missing a required view, "served" | "flagged" | "rejected").
        self.on_statuses = None
        # The metrics' hook, once per stage of a batch's online read: (stage index, seconds).
        self.on_read = None
        # tracing.Tracing when tracing is on: the batch's stage spans (one ``is None`` check per stage).
        self.tracing = None
        self._lookups = [(k, ref, ref.split(":")[0]) for k, ref in m.key_lookups.items()]
        self._keys = {k: dtypes.by_name(d) for k, d in m.request_keys.items()}
        self._fields = {k: dtypes.by_name(d) for k, d in m.request_fields().items()}
        # Request fields only transforms read: a row without one is refused (naming the transform), never nulled.
        model_fields = {i["source"][8:] for i in m.inputs if i["source"].startswith("request:")}
        self._transform_fields = [(f["name"], n) for n, spec in m.transforms.items() for f in spec.get("request", [])
                                  if f["name"] not in model_fields]
        self._transforms = None  # TransformRequest of the registry's copies, once check_transforms accepted them
        # (name, dtype, the JSON type a valid value has, its integer range): what parse's fast path checks.
        self._checks = [(k, dt, _JSON_TYPE.get(dt.name), INT_RANGE.get(dt.name, (0, 0)), True)
                        for k, dt in self._keys.items()]
        self._checks += [(k, dt, _JSON_TYPE.get(dt.name), INT_RANGE.get(dt.name, (0, 0)), False)
                         for k, dt in self._fields.items()]
        self._inputs = [(i["name"], i["source"], dtypes.by_name(i["dtype"]).arrow) for i in m.inputs]
        self._input_names = [name for name, _, _ in self._inputs]
        # request keys and fields that are personal data: an error quoting one says *** (skewless.pii)
        self._pii_names = frozenset().union(*(v.pii_names for v in m.views().values()))
        self._log_columns = prediction_log.columns(m)
        # log_pii="hash" needs its key at start (ConfigError), not at the first prediction
        self._pii_key = pii.hash_key() if any(k == "feature_pii" for _, k, _ in self._log_columns.values()) \
            and m.log_pii == "hash" else None
        self._log_join = [f.name for f in prediction_log.log_view(m).schema if f.name in m.request_keys]
        self.log = prediction_log.PredictionLogWriter(store, m, on_event=on_log_event, **(log_writer_options or {}))

    # -- lifecycle --------------------------------------------------------------------------------------------
    def check_transforms(self) -> None:
        """The feature registry's copy of every transform the model takes an output of must have the hash pinned in
        the artifact; those copies are what runs. TransformMismatch (not ready, with the reason) otherwise."""
        m = self.manifest
        if not m.transforms:
            return
        state = self.store.registry.state()
        have = state.objects.get("transform", {})
        wrong = []
        for name, pinned in m.transform_hashes().items():
            entry = have.get(name)
            if entry is None:
                wrong.append(f"{name} (pinned {pinned[:12]}) is not in the registry")
            elif entry["spec"]["hash"] != pinned:
                wrong.append(f"{name}: registry {entry['spec']['hash'][:12]} != pinned {pinned[:12]}")
        if wrong:
            raise TransformMismatch(f"model {self.name!r} was trained with other transform code than the feature "
                                    f"registry (version {state.version}) holds: {'; '.join(wrong)}; serve a model "
                                    "trained on the registry's transforms, or re-apply the pinned ones")
        views = m.views()
        dts = {f"{v}:{f.name}": f.dtype for v, view in views.items() for f in view.features}
        self._transforms = TransformRequest([], [], [state.get("transform", n) for n in m.transforms], dts)

    def load(self) -> None:
        try:
            self.check_transforms()
            model = self.artifact.load()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        # All inputs numeric and a model that takes their array: no DataFrame per batch. Building it (Arrow arrays,
        # a record batch, to_pandas) was ~85 us of a ~460 us one-row prediction (bench/results/
        # serving_i14_profile.md); the array holds what that frame's to_numpy() would (nulls as NaN).
        kinds = {str(t) for _, _, t in self._inputs}
        matrix = getattr(model, "matrix_predict", None)
        self._matrix = matrix(self._input_names, integers=bool(kinds & {"int64", "int32"})) \
            if matrix is not None and self._inputs and kinds <= {"double", "int64", "int32"} else None
        self._model = model
        self.error = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def check_store(self) -> str | None:
        """One round trip to the online store (StoreUnavailable when it does not answer), then why it cannot serve
        this model although it answers: it holds no row of any of the model's views (a Redis restarted empty,
        views never materialized). None: ready; also when the store cannot tell (``holds_rows`` None)."""
        online = self.store.online
        online.get_meta("serving/ping")
        views = [v for stage in self.stages for v, _ in stage]
        if views and all(online.holds_rows(v) is False for v in views):
            return (f"the online store answers but holds no rows of the model's feature views "
                    f"{', '.join(v.name for v in views)} (restarted empty, or never materialized)")
        return None

    def close(self, timeout: float = 30.0) -> bool:
        return self.log.close(timeout)

    # -- requests ---------------------------------------------------------------------------------------------
    def parse(self, body: Any, request_id: str | None = None) -> Request:
        """A request body -> validated rows (ValidationError naming the row and field otherwise).

        Accepted: ``{"instances": [{...}, ...]}`` (KServe v1 / TF Serving), a list of objects, or one object.
        Each object holds the request keys and request-time fields; other members are ignored."""
        if isinstance(body, dict) and "instances" in body:
            request_id = request_id or (body.get("request_id") if isinstance(body.get("request_id"), str) else None)
            body = body["instances"]
        rows = [body] if isinstance(body, dict) else body
        if not isinstance(rows, list) or not rows:
            raise ValidationError("the body must be an object, a non-empty list of objects, or {\"instances\": [...]}")
        if len(rows) > MAX_ROWS_PER_REQUEST:
            raise ValidationError(f"{len(rows)} rows in one request; at most {MAX_ROWS_PER_REQUEST}")
        out = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise ValidationError(f"row {i} is not an object", row=i)
            row = {}
            for k, dt, t, (lo, hi), key in self._checks:
                v = r.get(k)
                if type(v) is not t or t is int and not lo <= v <= hi:  # the fast path: the exact type, in range
                    if v is None and key:
                        raise ValidationError(f"row {i} lacks entity key {k!r} (the model needs "
                                              f"{sorted(self._keys)})", column=k, row=i)
                    v = _strict(v, dt, k, i, k in self._pii_names)
                row[k] = v
            for k, t in self._transform_fields:
                if k not in r:
                    raise ValidationError(f"transform {t!r}, row {i}: request field {k!r} is missing from the "
                                          "request row", column=k, row=i)
            out.append(row)
        return Request(out, request_id or uuid.uuid4().hex)

    def predict_batch(self, requests: list[Request]) -> list[dict | BaseException]:
        """Answers in request order: a response body, or the error of that request."""
        if self._model is None:
            raise NotReady(f"model {self.name!r} is not loaded" + (f": {self.error}" if self.error else ""))
        try:
            return self._predict(requests)
        except (NotReady, StoreUnavailable):
            raise  # nothing in the rows: every request would fail alike (and a down store slowly)
        except Exception:
            if len(requests) == 1:
                raise
        # One request's rows made the batch fail (the model, a value, a bug): answer the others, the culprit gets
        # its own error. Nothing was logged for the failed batch, so no row is logged twice.
        out: list[dict | BaseException] = []
        for r in requests:
            try:
                out += self._predict([r])
            except (NotReady, StoreUnavailable):
                raise
            except Exception as exc:
                out.append(exc)
        return out

    def _predict(self, requests: list[Request]) -> list[dict | SkewlessError]:
        rows = [dict(r) for req in requests for r in req.rows]
        now = utc_now()
        values, evs, statuses = self._read(rows, now)
        if self._transforms is not None:  # the registry's copies, checked against the pinned hashes at load
            values.update(transform_columns(self._transforms, values, rows, now))
        missing = _not_present(statuses)
        rejected = self._rejections(requests, missing) if missing and self.missing_policy == "reject" else {}
        if not rejected:
            return self._answer(requests, rows, now, values, evs, statuses, missing)
        # The rejected requests' rows leave the batch: neither predicted nor logged; counted once, here.
        starts = list(itertools.accumulate([len(r.rows) for r in requests], initial=0))
        gone = [i for j in rejected for i in range(starts[j], starts[j + 1])]
        if self.on_statuses is not None:
            lost = {v: [sts[i] for i in gone] for v, sts in missing.items()}
            self.on_statuses(len(gone), lost, self._count_missing(lost, len(gone)), "rejected")
        keep = [j for j in range(len(requests)) if j not in rejected]
        idx = [i for j in keep for i in range(starts[j], starts[j + 1])]

        def pick(cols: dict[str, list]) -> dict[str, list]:
            return {k: [c[i] for i in idx] for k, c in cols.items()}
        statuses = pick(statuses)
        answers = iter(self._answer([requests[j] for j in keep], [rows[i] for i in idx], now, pick(values),
                                    pick(evs), statuses, _not_present(statuses)) if keep else [])
        return [rejected[j] if j in rejected else next(answers) for j in range(len(requests))]

    def _read(self, rows: list[dict], now) -> tuple[dict, dict, dict]:
        values: dict[str, list] = {}
        evs: dict[str, list] = {}
        statuses: dict[str, list] = {}
        tr, on_read = self.tracing, self.on_read
        for i, stage in enumerate(self.stages):
            t0 = time.perf_counter()
            # Tracing hooks are one `is None` check when off (a no-op context manager cost ~0.3 us each).
            if tr is None:
                resp = online_read.read(self.store.online, stage, rows, now, True)
            else:
                resp = tr.call("skewless.feature_lookup", online_read.read, self.store.online, stage, rows, now, True,
                               attributes={"skewless.stage": i, "skewless.views": [v.name for v, _ in stage],
                                           "skewless.rows": len(rows)})
            if on_read is not None:
                on_read(i, time.perf_counter() - t0)
            for view, feats in stage:
                for f in feats:
                    values[f"{view.name}:{f}"] = resp.values[f"{view.name}__{f}"]
                first = f"{view.name}__{feats[0]}"
                evs[view.name], statuses[view.name] = resp.event_timestamps[first], resp.statuses[first]
            done = {v.name for v, _ in stage}
            for key, ref, view in self._lookups:  # keys the next stage needs, read from this one
                if view in done:
                    for r, v in zip(rows, values[ref]):
                        r[key] = v
        return values, evs, statuses

    def _model_input(self, rows, values) -> tuple:
        """The transform step: the model's input and the call that takes it. A float64 matrix for a model whose
        inputs need no DataFrame (``_matrix``), else the DataFrame in its fitted column order."""
        cols = [values[src] if not src.startswith("request:") else [r[src[8:]] for r in rows]
                for _, src, _ in self._inputs]
        if self._matrix is not None:
            try:  # (columns x rows).T: the layout a DataFrame's to_numpy() has, so the same BLAS call as with it
                return np.array(cols, dtype=np.float64).T, self._matrix
            except (TypeError, ValueError):  # a value that is not a number: the frame path says what is wrong
                pass
        arrays = [pa.array(c, type=t) for c, (_, _, t) in zip(cols, self._inputs)]
        # Through Arrow, as the training set is (RetrievalJob.to_pandas): the model gets the same pandas dtypes. A
        # record batch without threads converts a few rows in 2/3 of the time a table with the thread pool takes.
        return (pa.RecordBatch.from_arrays(arrays, names=self._input_names).to_pandas(use_threads=False),
                self._model.predict)

    def _answer(self, requests, rows, now, values, evs, statuses, missing) -> list[dict]:
        n = len(rows)
        tr = self.tracing
        try:
            if tr is None:
                x, predict = self._model_input(rows, values)
                raw = predict(x)
            else:
                x, predict = tr.call("skewless.transform", self._model_input, rows, values)
                raw = tr.call("skewless.predict", predict, x)
            outputs = {k: list(v.tolist() if hasattr(v, "tolist") else v) for k, v in raw.items()}
        except SkewlessError:
            raise
        except Exception as exc:
            raise PredictionError(f"model {self.name!r} failed to predict: {type(exc).__name__}: {exc}") from exc
        bad = [k for k, v in outputs.items() if len(v) != n]
        if bad:
            raise PredictionError(f"model {self.name!r}: outputs {bad} do not have one value per row ({n})")
        if tr is None:
            self.log.add(self._log_chunk(requests, rows, now, values, evs, statuses, outputs))
        else:  # the span covers the log rows' making too
            tr.call("skewless.prediction_log",
                    lambda: self.log.add(self._log_chunk(requests, rows, now, values, evs, statuses, outputs)))
        answers, start = [], 0
        names = list(outputs)
        for req in requests:
            k = len(req.rows)
            preds = [{name: outputs[name][i] for name in names} for i in range(start, start + k)]
            answers.append({"request_id": req.request_id, "model": self.name, "version": self.version,
                            "predictions": preds,
                            "feature_status": self._status(missing, start, k) if missing else {"missing_rows": 0}})
            start += k
        if self.on_statuses is not None:
            self.on_statuses(n, missing, sum(a["feature_status"]["missing_rows"] for a in answers) if missing else 0,
                             "flagged" if self.missing_policy == "flag" else "served")
        return answers

    # -- feature statuses in answers: only computed for batches where some view was not PRESENT ------------------
    def _status(self, missing: dict[str, list], start: int, k: int) -> dict:
        """A request's ``feature_status``: rows missing a required view, rows per (view, status) not PRESENT, and
        with the ``flag`` policy each such row with its views' statuses."""
        views: dict[str, dict[str, int]] = {}
        rows: dict[int, dict[str, str]] = {}
        for view, sts in missing.items():
            part = sts[start:start + k]
            for i, st in enumerate(part):
                if st != PRESENT:
                    views.setdefault(view, {})
                    views[view][st] = views[view].get(st, 0) + 1
                    if view in self.required:
                        rows.setdefault(i, {})[view] = st
        out: dict[str, Any] = {"missing_rows": len(rows)}
        if views:
            out["views"] = views
        if self.missing_policy == "flag" and rows:
            out["rows"] = [{"row": i, "missing": rows[i]} for i in sorted(rows)]
        return out

    def _count_missing(self, missing: dict[str, list], n: int) -> int:
        """Rows (of ``n``) with a required view not PRESENT."""
        required = [sts for v, sts in missing.items() if v in self.required]
        return sum(1 for i in range(n) if any(sts[i] != PRESENT for sts in required))

    def _rejections(self, requests: list[Request], missing: dict[str, list]) -> dict[int, MissingFeatures]:
        """Index -> error, for the requests with a row missing a required view (``reject``): 422 naming the first
        such row and the features the model would have had to do without."""
        required = [(v, sts) for v, sts in missing.items() if v in self.required]
        out, start = {}, 0
        for j, req in enumerate(requests):
            k = len(req.rows)
            for i in range(start, start + k):
                lost = [(v, sts[i]) for v, sts in required if sts[i] != PRESENT]
                if lost:
                    refs = [ref for v, _ in lost for ref in self.required[v]]
                    many = self._count_missing({v: sts[start:start + k] for v, sts in required}, k)
                    out[j] = MissingFeatures(
                        f"row {i - start}: required features missing: "
                        + ", ".join(f"{ref} ({st})" for v, st in lost for ref in self.required[v])
                        + (f"; {many} of {k} rows miss some" if k > 1 else ""), row=i - start, features=refs)
                    break
            start += k
        return out

    def _log_chunk(self, requests, rows, now, values, evs, statuses, outputs) -> dict[str, list]:
        n = len(rows)
        chunk: dict[str, list] = {k: [r[k] for r in rows] for k in self._log_join}
        chunk[EVENT_TS] = [now] * n
        chunk["request_id"] = [req.request_id for req in requests for _ in req.rows]
        chunk["request_row"] = [i for req in requests for i in range(len(req.rows))]
        chunk["model_name"] = [self.name] * n
        chunk["model_version"] = [self.version] * n
        sources = {"view_ts": evs, "view_status": statuses, "feature": values, "output": outputs}
        for col, (_, kind, what) in self._log_columns.items():
            if kind in sources:
                chunk[col] = sources[kind][what]
            elif kind == "feature_pii":
                policy, key = self.manifest.log_pii, self._pii_key
                chunk[col] = [pii.log_value(v, policy, key) for v in values[what]]
            elif kind in ("request", "key"):
                chunk[col] = [r.get(what) for r in rows]
        return chunk

def _not_present(statuses: dict[str, list]) -> dict[str, list]:
    """The views (with their statuses) where some row is not PRESENT; {} in the usual case, at C speed."""
    return {v: sts for v, sts in statuses.items() if sts.count(PRESENT) != len(sts)}
