"""Prometheus metrics of one server (its own Prometheus collector registry, so several apps in one process never
collide): the server's own, the process's (CPU, memory, open files) and the Python runtime's (version, GC).

No ``_created`` series: prometheus_client adds one per counter and histogram child (the time it was created), which
doubles the series a scrape stores and which Prometheus itself does not use (``disable_created_metrics``: a switch
of the whole process, which is the server's; ``PROMETHEUS_DISABLE_CREATED_SERIES=true`` is the same switch).
"""

from __future__ import annotations

import math
import time

from prometheus_client import (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Counter,
                               Gauge, Histogram, disable_created_metrics)

from skewless.drift import METRICS
from skewless.online.base import EXPIRED, NOT_FOUND, PRESENT

_SKEW_HELP = {"psi": "Population stability index of the feature's served values against its training set",
             "ks": "Kolmogorov-Smirnov statistic of the feature's served values against its training set (numbers)",
             "js": "Jensen-Shannon distance (base 2) of the feature's served values against its training set",
             "missing_share": "Share of served rows whose feature view read NOT_FOUND or EXPIRED"}
# Sub-millisecond buckets: the latency target is p50 <= 1 ms.
_LATENCY = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def new_registry() -> CollectorRegistry:
    """A server's own collector registry, with the standard process_* and python_* families as the default registry
    has them (the same collector objects: they hold no per-registry state), and no ``_created`` series."""
    disable_created_metrics()
    r = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        r.register(collector)
    return r


class Metrics:
    def __init__(self, model: str, version: int, stages: list[list[str]] = ()):
        """``stages``: the model's feature views, stage by stage (one online read per stage and batch)."""
        self.prometheus_registry = r = new_registry()
        self.requests = Counter("skewless_requests", "Prediction requests by route and HTTP status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("skewless_request_seconds", "Prediction request latency (server side)", ["route"],
                                 buckets=_LATENCY, registry=r)
        self.batch_requests = Histogram("skewless_batch_requests", "Requests per micro-batch",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.batch_rows = Histogram("skewless_batch_rows", "Rows per micro-batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), registry=r)
        self.queue_depth = Gauge("skewless_queue_depth", "Requests waiting for a batch", registry=r)
        self.overrunning = Gauge("skewless_predictions_overrunning", "Predictions past their timeout (answered "
                                 "504) whose model call is still running", registry=r)
        self.ready = Gauge("skewless_ready", "1 when the model is loaded and the online store answers", registry=r)
        self.store_errors = Counter("skewless_online_store_errors", "Online store failures seen by the server (a "
                                    "prediction's read or a probe's round trip; not the open breaker's answers)",
                                    registry=r)
        self.breaker_open = Gauge("skewless_online_store_breaker_open", "1 while predictions fail fast because the "
                                  "online store is known down", registry=r)
        self.store_probes = Counter("skewless_online_store_probes", "Round trips to the online store made to check it "
                                    "(readiness, the breaker's half-open probe, a slow batch)", registry=r)
        self.log_rows = Counter("skewless_prediction_log_rows", "Prediction log rows by outcome "
                                "(written, failed attempts, dropped)", ["outcome"], registry=r)
        self.log_pending = Gauge("skewless_prediction_log_pending", "Prediction log rows not yet committed",
                                 registry=r)
        self.feature_rows = Counter("skewless_feature_rows", "Rows read per feature view and status (PRESENT, "
                                    "NOT_FOUND, EXPIRED)", ["view", "status"], registry=r)
        self.missing_rows = Counter("skewless_rows_missing_features", "Rows missing a required feature view, by what "
                                    "the model's policy did with them (served, flagged, rejected)", ["outcome"],
                                    registry=r)
        self.online_read_seconds = Histogram("skewless_online_read_seconds", "Online store read latency, per batch "
                                             "and stage (one read serves every row of the batch for the stage's "
                                             "views)", ["stage", "views"], buckets=_LATENCY, registry=r)
        # Children made once (labels() costs a lock and a key per call): a batch then costs one inc per view. Every
        # (view, status) series exists from the start at 0, so rate() of NOT_FOUND/EXPIRED works before the first miss.
        views = [v for stage in stages for v in stage]
        self._view_rows = {v: {s: self.feature_rows.labels(v, s) for s in (PRESENT, NOT_FOUND, EXPIRED)}
                           for v in views}
        self._reads = [self.online_read_seconds.labels(str(i), ",".join(stage)) for i, stage in enumerate(stages)]
        self._missing = {o: self.missing_rows.labels(o) for o in ("served", "flagged", "rejected")}
        info = Gauge("skewless_model_info", "The served model", ["model", "version"], registry=r)
        info.labels(model, str(version)).set(1)
        # Training-serving skew over the last lookback of the prediction log (serving/monitor.py's Refresher): one
        # series per feature once the reference is loaded; NaN where a metric does not apply or there are no rows.
        self._id = (model, str(version))
        labels = ["model", "version", "feature"]
        self.skew_gauges = {m: Gauge(f"skewless_feature_{m}", _SKEW_HELP[m], labels, registry=r) for m in METRICS}
        self.skew_breach = Gauge("skewless_feature_drift_breach", "1 when the feature's skew is over one of its "
                                 "thresholds (judged from min_rows rows on)", labels, registry=r)
        self.skew_rows = Gauge("skewless_monitor_rows", "Prediction log rows the skew gauges were computed on",
                               ["model", "version"], registry=r)
        self.skew_refreshed = Gauge("skewless_monitor_refresh_timestamp_seconds", "When the skew gauges were last "
                                    "computed (Unix time)", ["model", "version"], registry=r)

    def skew(self, report) -> None:
        """Publish a ``monitor.Report`` of one window (the Refresher's): each feature's metrics and breach flag."""
        window = report.windows[0] if report.windows else None
        for ref in report.thresholds:
            d = window.features.get(ref) if window else None
            for m, gauge in self.skew_gauges.items():
                v = getattr(d, m) if d is not None else None
                gauge.labels(*self._id, ref).set(math.nan if v is None else v)
            self.skew_breach.labels(*self._id, ref).set(1 if window and ref in window.breaches else 0)
        self.skew_rows.labels(*self._id).set(window.rows if window else 0)
        self.skew_refreshed.labels(*self._id).set(time.time())

    def online_read(self, stage: int, seconds: float) -> None:
        self._reads[stage].observe(seconds)

    def log_event(self, outcome: str, rows: int) -> None:
        self.log_rows.labels(outcome).inc(rows)

    def batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def statuses(self, rows: int, missing: dict[str, list], missing_rows: int, outcome: str) -> None:
        """One batch's reads: every view ``rows`` times, minus what ``missing`` (the views with a row not PRESENT)
        says was NOT_FOUND or EXPIRED."""
        for view, by in self._view_rows.items():
            sts = missing.get(view)
            if sts is None:
                by[PRESENT].inc(rows)
                continue
            nf, ex = sts.count(NOT_FOUND), sts.count(EXPIRED)
            by[PRESENT].inc(rows - nf - ex)
            if nf:
                by[NOT_FOUND].inc(nf)
            if ex:
                by[EXPIRED].inc(ex)
        if missing_rows:
            self._missing[outcome].inc(missing_rows)
