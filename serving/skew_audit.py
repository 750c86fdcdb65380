"""The skew audit of a model (``skewless audit MODEL``): its logged predictions replayed through the training path.

For each logged row (a sample of them when asked): the inputs the server used, rebuilt through
``get_historical_features`` at the logged read time with the logged request fields (``skewless.skew_audit``: the
comparison and the causes), then the prediction recomputed from the logged inputs with the registered artifact of
the logged model version and compared with the logged output. A model check on the logged inputs keeps the two
verdicts apart: a feature mismatch never shows up as a model mismatch too.

The log is read with ``monitor.read_rows`` (the same pushed-down scan as ``skewless monitor``). See
docs/skew-audit.md.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from skewless import dtypes
from skewless.definitions import EVENT_TS
from skewless.errors import DefinitionError, ValidationError
from skewless.skew_audit import CAUSES, AuditSpec, Mismatch, audit_features, equal

from . import prediction_log
from .artifact import ModelManifest
from .flavors import LoadedModel
from .model_registry import ModelRegistry, ModelVersion
from .monitor import Periodic, read_rows

EXAMPLES = 20


@dataclass
class AuditReport:
    model: str
    version: int
    since: datetime | None
    until: datetime | None
    logged: int  # rows in the range
    rows: int  # rows audited (the sample)
    exact: int  # rows whose every value and output equal
    features: dict[str, dict[str, int]]  # ref -> cause -> mismatched values
    causes: dict[str, int]  # cause -> mismatched values
    lags: dict[str, dict[str, float]]  # cause -> {"max_seconds", "median_seconds"}
    late_events: dict[str, int]  # ref -> values that differ in event mode only
    prediction: dict  # {"rows", "matched", "mismatched", "cause"}
    modes: list[dict]
    threshold: float
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # where the time went: read, retrievals, model...
    snapshot: dict[str, int | None] = field(default_factory=dict)  # the history versions audited against
    examples: list[dict] = field(default_factory=list)

    @property
    def mismatched(self) -> int:
        return self.rows - self.exact

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched / self.rows if self.rows else 0.0

    @property
    def breached(self) -> bool:
        return self.rows > 0 and self.mismatch_rate > self.threshold

    def masked(self, masking) -> "AuditReport":
        """This report for display to a caller (``skewless.pii.Masking``): the served and training-path values of
        a PII feature in the examples become ``***`` (counts, causes and lags are no one's value and stay). A copy
        where something is masked: a report cached for several viewers is never changed."""
        from skewless.pii import mask

        if not any(masking.hides(e["feature"]) for e in self.examples):
            return self
        examples = [dict(e, served=mask(e["served"]), offline=mask(e["offline"])) if masking.hides(e["feature"])
                    else e for e in self.examples]
        return dataclasses.replace(self, examples=examples)

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "since": self.since, "until": self.until,
                "logged_rows": self.logged, "rows": self.rows, "exact_rows": self.exact,
                "mismatched_rows": self.mismatched, "mismatch_rate": self.mismatch_rate,
                "threshold": self.threshold, "breached": self.breached, "causes": self.causes,
                "features": self.features, "lags": self.lags, "late_events": self.late_events,
                "prediction": self.prediction, "modes": self.modes, "seconds": self.seconds,
                "stages": self.stages, "snapshot": self.snapshot, "examples": self.examples}


def spec_of(m: ModelManifest) -> AuditSpec:
    """Where the manifest's log keeps each thing (``prediction_log.columns``)."""
    cols = prediction_log.columns(m)
    view = prediction_log.log_view(m)
    entity = list(view.join_keys) + [c for c, (_, kind, _) in cols.items() if kind == "key"]
    return AuditSpec(
        features={c: what for c, (_, kind, what) in cols.items() if kind == "feature"},
        entity=entity,
        request={what: c for c, (_, kind, what) in cols.items() if kind == "request"},
        view_ts={what: c for c, (_, kind, what) in cols.items() if kind == "view_ts"},
        view_status={what: c for c, (_, kind, what) in cols.items() if kind == "view_status"},
        transforms={n: (s["hash"], list(s["inputs"].values())) for n, s in m.transforms.items()})


def sample(table: pa.Table, n: int | None = None, rate: float | None = None) -> pa.Table:
    """A deterministic sample: rows ranked by a hash of (request_id, request_row), so the same log gives the same
    sample on every run (and a larger sample holds a smaller one)."""
    if n is None and rate is None:
        return table
    h = pd.util.hash_pandas_object(pd.DataFrame({"r": table.column("request_id").to_pandas(),
                                                 "i": table.column("request_row").to_pandas()}), index=False)
    h = h.to_numpy()
    if rate is not None:
        keep = np.flatnonzero(h < np.uint64(rate * float(2 ** 64 - 1)))
    else:
        keep = np.sort(np.argsort(h, kind="stable")[:n])
    return table.take(pa.array(keep))


@contextmanager
def loaded_version(store, model: str, version: int | None = None, *, stage: str | None = None
                   ) -> Iterator[tuple[ModelVersion, LoadedModel]]:
    """(the model version, its registered artifact loaded), by number, stage or the newest: what the audit and
    batch scoring (``batch_score``) run. The artifact is checked against its registered digest (a DefinitionError
    naming the digest otherwise) and unpacked into a folder removed on exit."""
    reg = ModelRegistry(store)
    mv = reg.get(model, version, stage=stage)
    with tempfile.TemporaryDirectory(prefix=f"skewless-{model}-v{mv.version}-") as tmp:
        yield mv, reg.download(model, mv.version, dest=tmp).load()


def model_outputs(manifest: ModelManifest, loaded: LoadedModel, table: pa.Table) -> dict[str, pa.Array]:
    """Per output, the model's values on the inputs held in ``table``'s prediction-log columns (``view__feature``,
    ``request__field``), built as the server builds them, cast to the output's dtype."""
    x = _inputs(manifest, table)
    # Each distinct input row is predicted once (a model's output is a function of its row), its outputs
    # then given to every row that has it: logs re-scoring the same entities hold many equal rows.
    first, back = _distinct(x)
    out = loaded.predict(x.iloc[first].reset_index(drop=True))
    arrays = {}
    for o in manifest.outputs:
        values, t = np.asarray(out[o["name"]])[back], dtypes.by_name(o["dtype"]).arrow
        try:  # numbers straight from numpy; anything Arrow will not take as is goes through Python values
            arrays[o["name"]] = pa.array(values, type=t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays[o["name"]] = pa.array(values.tolist(), type=t)
    return arrays


def predictions(store, model: str, version: int, manifest: ModelManifest, table: pa.Table) -> tuple[np.ndarray, str]:
    """Per row: the logged outputs equal the registered artifact's outputs on the logged inputs. And the cause
    given to the rows that differ (``model_hash``: the registry's copy of the artifact is not what was registered;
    ``model_artifact``: the served model was not that artifact, e.g. swapped on disk)."""
    redacted = prediction_log.pii_refs(manifest)
    if any(i["source"] in redacted for i in manifest.inputs):
        # The log holds a stand-in (<redacted> / an HMAC) for a PII input, not its value: the model cannot be re-run
        # on it. The check is skipped and said so, never counted as a mismatch (features are still audited).
        return np.ones(table.num_rows, dtype=bool), "skipped_redacted_inputs"
    try:
        with loaded_version(store, model, version) as (_, loaded):
            out = model_outputs(manifest, loaded, table)
    except DefinitionError as exc:
        if "digest" not in str(exc):
            raise
        return np.zeros(table.num_rows, dtype=bool), "model_hash"
    ok = np.ones(table.num_rows, dtype=bool)
    for o in manifest.outputs:
        # The model's own float arithmetic may differ with the batch it runs in (BLAS blocking): 1e-9 relative.
        ok &= equal(table.column(f"output__{o['name']}"), out[o["name"]], tolerant=True)
    return ok, "model_artifact"


def _distinct(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(the first row of each distinct input row, each row's distinct row) by a 64-bit hash of the row; inputs it
    cannot hash (lists) are all distinct."""
    try:
        h = pd.util.hash_pandas_object(x, index=False).to_numpy()
    except TypeError:
        n = np.arange(len(x))
        return n, n
    _, first, back = np.unique(h, return_index=True, return_inverse=True)
    return first, back.reshape(-1)


def _inputs(m: ModelManifest, table: pa.Table) -> pd.DataFrame:
    """The model's input as the server built it (``ServedModel._model_input``'s frame path) from the logged values."""
    arrays, names = [], []
    for i in m.inputs:
        src = i["source"]
        col = f"request__{src[8:]}" if src.startswith("request:") else src.replace(":", "__")
        arrays.append(table.column(col).combine_chunks().cast(dtypes.by_name(i["dtype"]).arrow))
        names.append(i["name"])
    return pa.RecordBatch.from_arrays(arrays, names=names).to_pandas(use_threads=False)


def audit(store, model: str, *, version: int | None = None, stage: str | None = None,
          since: datetime | None = None, until: datetime | None = None, sample_rows: int | None = None,
          sample_rate: float | None = None, threshold: float = 0.0) -> AuditReport:
    """Audit ``model``'s version (by number, stage, or the newest) over its prediction log in [since, until)."""
    if sample_rows is not None and sample_rows < 1:
        raise ValidationError(f"sample must be a positive number of rows, not {sample_rows}")
    if sample_rate is not None and not 0 < sample_rate <= 1:
        raise ValidationError(f"sample rate must be in (0, 1], not {sample_rate}")
    if not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be a share of rows in [0, 1], not {threshold}")
    t0 = time.perf_counter()
    mv = ModelRegistry(store).get(model, version, stage=stage)
    m = mv.manifest
    cols = prediction_log.columns(m)
    spec = spec_of(m)
    wanted = list(dict.fromkeys(spec.entity + list(cols)))
    table = read_rows(store, model, mv.version, wanted, since=since, until=until)
    logged = table.num_rows
    t_read = time.perf_counter() - t0
    table = sample(table, sample_rows, sample_rate)
    report = AuditReport(model, mv.version, since, until, logged, table.num_rows, table.num_rows, {}, {}, {}, {},
                         {"rows": table.num_rows, "matched": table.num_rows, "mismatched": 0, "cause": None},
                         [], threshold)
    if not table.num_rows:
        report.seconds = time.perf_counter() - t0
        return report
    table = table.combine_chunks()
    # The model check reads only the log, so it runs beside the retrievals (both release the GIL: DuckDB, and the
    # model's native code for the usual flavours); its wall time is reported apart.
    with ThreadPoolExecutor(max_workers=1) as pool:
        check = pool.submit(_timed, predictions, store, model, mv.version, m, table)
        feats = audit_features(store, table, spec)
        (model_ok, model_cause), t_model = check.result()
    report.stages = {"read": t_read, **feats.seconds, "model": t_model}
    report.snapshot = feats.snapshot
    row_ok = feats.row_ok & model_ok
    report.exact = int(row_ok.sum())
    skipped = model_cause == "skipped_redacted_inputs"
    report.modes = feats.modes + [{"comparison": "prediction", "point_in_time": None,
                                   "why": "skipped: the log redacts a PII model input (log_pii), so the logged "
                                          "inputs cannot be re-run" if skipped else
                                          "the logged inputs through the registered artifact of the logged version: "
                                          "a model check independent of the feature values"}]
    report.features, report.causes = _by_feature(feats.mismatches)
    bad_pred = int((~model_ok).sum())
    report.prediction = {"rows": 0 if skipped else table.num_rows, "matched": 0 if skipped else table.num_rows - bad_pred,
                         "mismatched": bad_pred, "cause": model_cause if bad_pred or skipped else None}
    if bad_pred:
        report.causes[model_cause] = report.causes.get(model_cause, 0) + bad_pred
    report.lags = _lags(feats.mismatches + feats.late)
    report.late_events = dict(Counter(x.ref for x in feats.late))
    report.examples = _examples(table, feats.mismatches, feats.late)
    report.seconds = time.perf_counter() - t0
    return report


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def _by_feature(mismatches: list[Mismatch]) -> tuple[dict, dict]:
    features: dict[str, dict[str, int]] = {}
    causes: Counter = Counter()
    for x in mismatches:
        features.setdefault(x.ref, Counter())[x.cause] += 1
        causes[x.cause] += 1
    order = {c: i for i, c in enumerate(CAUSES)}
    return ({ref: dict(c) for ref, c in features.items()},
            dict(sorted(causes.items(), key=lambda kv: order.get(kv[0], len(order)))))


def _lags(items: list[Mismatch]) -> dict[str, dict[str, float]]:
    by: dict[str, list[float]] = {}
    for x in items:
        if x.lag_seconds is not None:
            by.setdefault(x.cause, []).append(x.lag_seconds)
    return {c: {"max_seconds": max(v), "median_seconds": float(np.median(v))} for c, v in by.items()}


def _examples(table: pa.Table, mismatches: list[Mismatch], late: list[Mismatch]) -> list[dict]:
    out = []
    for x in (mismatches + late)[:EXAMPLES]:
        d = x.to_dict()
        d.update(request_id=table.column("request_id")[x.row].as_py(),
                 request_row=table.column("request_row")[x.row].as_py(),
                 read_at=table.column(EVENT_TS)[x.row].as_py().isoformat())
        out.append(d)
    return out


class AuditGauges:
    """The audit's Prometheus gauges in ``registry``: the job's textfile (``metrics_text``) and the model server's
    ``/metrics`` (``Refresher``) publish the same series."""

    def __init__(self, registry):
        from prometheus_client import Gauge

        ids = ["model", "version"]

        def gauge(name: str, text: str, labels=()):
            return Gauge(name, text, ids + list(labels), registry=registry)
        self.rows = gauge("skewless_audit_rows", "Logged prediction rows audited")
        self.exact = gauge("skewless_audit_exact_rows", "Audited rows whose inputs and outputs equal the training "
                           "path's")
        self.rate = gauge("skewless_audit_mismatch_rate", "Share of audited rows with a mismatch")
        self.breach = gauge("skewless_audit_breach", "1 when the mismatch rate is over the threshold")
        self.causes = gauge("skewless_audit_mismatches", "Mismatched values by cause", ["cause"])
        self.features = gauge("skewless_audit_feature_mismatches", "Mismatched values by feature and cause",
                              ["feature", "cause"])
        self.late = gauge("skewless_audit_late_event_values", "Values equal in available mode that differ in event "
                          "mode", ["feature"])
        self.seconds = gauge("skewless_audit_seconds", "How long the audit took")
        self.when = gauge("skewless_audit_timestamp_seconds", "When the audit ran (Unix time)")

    def publish(self, report: AuditReport) -> None:
        lv = (report.model, str(report.version))
        self.rows.labels(*lv).set(report.rows)
        self.exact.labels(*lv).set(report.exact)
        self.rate.labels(*lv).set(report.mismatch_rate)
        self.breach.labels(*lv).set(1 if report.breached else 0)
        for g in (self.causes, self.features, self.late):  # a cause gone since the last audit is no stale series
            g.clear()
        for c, n in report.causes.items():
            self.causes.labels(*lv, c).set(n)
        for ref, causes in report.features.items():
            for c, n in causes.items():
                self.features.labels(*lv, ref, c).set(n)
        for ref, n in report.late_events.items():
            self.late.labels(*lv, ref).set(n)
        self.seconds.labels(*lv).set(report.seconds)
        self.when.labels(*lv).set(time.time())


def metrics_text(report: AuditReport) -> str:
    """The report as Prometheus text (a node_exporter textfile, or what a Pushgateway takes)."""
    from prometheus_client import CollectorRegistry, generate_latest

    r = CollectorRegistry()
    AuditGauges(r).publish(report)
    return generate_latest(r).decode()


class Refresher(Periodic):
    """The model server's audit: every ``interval`` seconds, a sample of at most ``sample`` rows of the last
    ``lookback`` of its own prediction log, audited (``audit``) and handed to ``publish``. A background thread, off
    by default (two retrievals per run); failures are logged and retried at the next tick. A model not served as a
    registered version (``version`` 0) has nothing to audit against: the thread logs that once and ends."""

    def __init__(self, store, model: str, version: int, publish, *, interval: float, lookback: float = 3600.0,
                 sample: int = 10_000):
        self.store, self.model, self.version, self.publish = store, model, version, publish
        self.interval, self.lookback, self.sample = interval, lookback, sample
        self.last: AuditReport | None = None
        super().__init__("skewless-audit")

    def refresh(self) -> AuditReport:
        from datetime import timedelta

        from skewless.timeutil import now

        report = audit(self.store, self.model, version=self.version, since=now() - timedelta(seconds=self.lookback),
                       sample_rows=self.sample)
        self.last = report
        self.publish(report)
        return report

    def _run(self) -> None:
        import logging

        log = logging.getLogger("skewless.serving")
        if not self.version:
            log.info("skew audit off: the model is not served as a registered version", extra={"model": self.model})
            return
        while not self._stop.wait(self.interval):  # the first audit after one interval: the log has rows by then
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # e.g. the offline store is down for a while: next tick
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("skew audit failed", extra={"model": self.model, "error": self.last_error})
