"""Training-serving skew and drift of a model: the values in its prediction log against the write-time statistics
of the training set its version was packaged with, per feature (``skewless.drift``: PSI, KS, Jensen-Shannon, the
NOT_FOUND/EXPIRED shares), judged against the thresholds its feature service and the model declare.

Two readers: ``skewless monitor MODEL`` (``monitor``: one result, or one per time window = drift over time) and the
model server (``Refresher``: a background thread that recomputes the last ``lookback`` of its own log every
``interval`` seconds and hands the result to the Prometheus gauges; never on the request path).

The log is read file by file with the model version and time range pushed into the Parquet scan (row groups outside
them are skipped); only the feature and status columns are read. See docs/monitoring.md.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from skewless import drift
from skewless.definitions import EVENT_TS
from skewless.errors import NotFoundError, ValidationError
from skewless.offline.scan import plain_types
from skewless.pii import MASK

from . import prediction_log
from .artifact import ModelManifest

log = logging.getLogger("skewless.serving")


@dataclass
class Monitored:
    """What a model version is compared with: its training set's statistics and each feature's thresholds."""

    model: str
    version: int
    training_set: tuple[str, int | None]
    # log column -> (ref "view:feature", the view's status column; None for a transform's output: never missing)
    features: dict[str, tuple[str, str | None]]
    reference: dict[str, object]  # ref -> FeatureStatistics (None: no statistics for it; missing shares only)
    thresholds: dict[str, drift.Thresholds]


@dataclass
class Window:
    start: datetime | None
    end: datetime | None
    rows: int
    features: dict[str, drift.FeatureDrift]
    breaches: dict[str, list[str]]  # ref -> metrics over their threshold (only refs with some)

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "rows": self.rows, "breaches": self.breaches,
                "features": {ref: d.to_dict() for ref, d in self.features.items()}}


@dataclass
class Report:
    model: str
    version: int
    training_set: tuple[str, int | None]
    thresholds: dict[str, drift.Thresholds]
    windows: list[Window] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return any(w.breaches for w in self.windows)

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version,
                "training_set": {"name": self.training_set[0], "version": self.training_set[1]},
                "breached": self.breached,
                "thresholds": {ref: vars(t) for ref, t in self.thresholds.items()},
                "windows": [w.to_dict() for w in self.windows]}


def monitored(store, manifest: ModelManifest, version: int) -> Monitored:
    """The reference of ``manifest``'s model: the statistics of the registered training set it was packaged with
    (a ValidationError when there is none: nothing to compare with) and the thresholds of each logged feature."""
    ts = (manifest.training or {}).get("training_set") or {}
    if not ts.get("name"):
        raise ValidationError(f"model {manifest.name!r} version {version} was not packaged with a registered "
                              "training set (package_model(training_set=...) with job.register(name)): there are "
                              "no training statistics to compare its predictions with")
    stats = store.get_training_set_statistics(ts["name"], ts.get("version"))
    service = None
    try:
        service = store._registry_state(fresh=True).get("feature_service", manifest.feature_service)
    except NotFoundError:  # the service was deleted since: the model's own thresholds still hold
        pass
    cols = prediction_log.columns(manifest)
    statuses = {what: col for col, (_, kind, what) in cols.items() if kind == "view_status"}
    features = {col: (what, statuses.get(what.split(":")[0]))
                for col, (_, kind, what) in cols.items() if kind == "feature"}
    refs = [ref for ref, _ in features.values()]
    layers = (getattr(service, "monitoring", None), manifest.monitoring)
    return Monitored(manifest.name, version, (ts["name"], ts.get("version")), features,
                     {ref: stats.get(ref) for ref in refs}, {ref: drift.thresholds(ref, *layers) for ref in refs})


def read_rows(store, model: str, version: int, columns: list[str], *, since: datetime | None = None,
              until: datetime | None = None, cache: dict | None = None) -> pa.Table:
    """The model version's prediction-log rows in [since, until): ``columns`` and the event time, sorted by it.
    Columns a file lacks (the log view gained them later) read as null.

    ``cache`` (the server's refresher: no ``until``, a ``since`` that only moves forward): uri -> (the file's rows
    at or after ``since``, the earliest one's time). Log files are immutable, so a refresh reads only the files
    committed since the last one (the log commits a file per flush, thousands an hour); a file whose rows all left
    the range stays as an empty table (never read again), one no longer in the log is forgotten."""
    name = prediction_log.view_name(model)
    offline = store.offline
    latest = offline.version(name)
    wanted = list(dict.fromkeys([EVENT_TS, *columns]))
    if latest is None:
        return pa.table({c: pa.array([], pa.null()) for c in wanted})
    files = offline.files(name, latest)
    cond = pc.field("model_version") == version
    if since is not None:
        cond &= pc.field(EVENT_TS) >= pa.scalar(since, pa.timestamp("us", "UTC"))
    if until is not None:
        cond &= pc.field(EVENT_TS) < pa.scalar(until, pa.timestamp("us", "UTC"))
    tables = []
    if cache is not None:
        for gone in set(cache) - set(files.uris):  # compacted away, or a vacuum: no longer part of the log
            del cache[gone]
    start = None if since is None else pa.scalar(since, pa.timestamp("us", "UTC"))
    for uri in files.uris:
        if cache is not None and uri in cache:
            t, first = cache[uri]
            if start is not None and first is not None and first < start.value:  # some rows left the range
                t = t.filter(pc.field(EVENT_TS) >= start)
                cache[uri] = t, _first(t)
            tables.append(t)
            continue
        path = uri.removeprefix("file://") if files.filesystem is None else uri.split("://", 1)[-1]
        has = set(pq.read_schema(path, filesystem=files.filesystem).names)
        t = plain_types(pq.read_table(path, filesystem=files.filesystem, columns=[c for c in wanted if c in has],
                                      filters=cond if "model_version" in has else None))
        if cache is not None:
            cache[uri] = t, _first(t)
        tables.append(t)
    if not tables:
        return pa.table({c: pa.array([], pa.null()) for c in wanted})
    table = pa.concat_tables(tables, promote_options="default")
    for c in wanted:
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(len(table)))
    return table.select(wanted).sort_by(EVENT_TS)


def _columns(mon: Monitored) -> list[str]:
    return list(mon.features) + sorted({s for _, s in mon.features.values() if s})


def _first(t: pa.Table) -> int | None:
    """The earliest event time of a log file's cached rows (us), so a refresh filters only files at the range's
    edge: None when it has none."""
    if not len(t):
        return None
    return pc.min(t.column(EVENT_TS)).cast(pa.timestamp("us", "UTC")).value


def evaluate(mon: Monitored, table: pa.Table, *, window: timedelta | None = None) -> list[Window]:
    """Per window of ``window`` (aligned to the epoch; only windows with rows) or, without one, for all of
    ``table``: each feature's drift and breaches."""
    if not len(table):
        return []
    if window is None:
        ts = table.column(EVENT_TS)
        return [_window(mon, table, pc.min(ts).as_py(), pc.max(ts).as_py())]
    us = int(window / timedelta(microseconds=1))
    t = table.column(EVENT_TS).cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
    keys = t // us
    out = []
    for k in np.unique(keys):
        idx = np.flatnonzero(keys == k)
        start = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(k) * us)
        out.append(_window(mon, table.take(pa.array(idx)), start, start + window))
    return out


def _window(mon: Monitored, table: pa.Table, start, end) -> Window:
    features, breaches = {}, {}
    for col, (ref, status) in mon.features.items():
        d = drift.compare(ref, mon.reference.get(ref), table.column(col),
                          table.column(status) if status else None)
        features[ref] = d
        if over := mon.thresholds[ref].breaches(d):
            breaches[ref] = over
    return Window(start, end, len(table), features, breaches)


def mask_report(report: Report, masking) -> Report:
    """``report`` for display to a caller (``skewless.pii.Masking``): the bin labels of a PII feature (its top
    categories, or the KLL edges: values) become ``***``; the metrics and shares stay (they are no one's value).
    A copy where something is masked: a report cached for several viewers is never changed."""
    hidden = {ref for w in report.windows for ref, d in w.features.items() if d.bins and masking.hides(ref)}
    if not hidden:
        return report
    windows = [dataclasses.replace(w, features={ref: dataclasses.replace(d, bins=[MASK] * len(d.bins))
                                                if ref in hidden else d for ref, d in w.features.items()})
               for w in report.windows]
    return dataclasses.replace(report, windows=windows)


def monitor(store, model: str, *, version: int | None = None, stage: str | None = None,
            since: datetime | None = None, until: datetime | None = None,
            window: timedelta | None = None) -> Report:
    """The skew of ``model``'s version (by number, stage, or the newest) over its prediction log in [since, until),
    in windows of ``window`` when given."""
    from .model_registry import ModelRegistry

    if window is not None and window <= timedelta(0):
        raise ValidationError(f"window must be a positive duration, not {window}")
    mv = ModelRegistry(store).get(model, version, stage=stage)
    mon = monitored(store, mv.manifest, mv.version)
    cols = _columns(mon)
    table = read_rows(store, model, mv.version, cols, since=since, until=until)
    return mask_report(Report(model, mv.version, mon.training_set, mon.thresholds,
                              evaluate(mon, table, window=window)), store.masking())


class Periodic:
    """A daemon thread running ``_run`` (the subclass's loop, waiting on ``_stop`` between ticks)."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


class Refresher(Periodic):
    """The model server's monitor: every ``interval`` seconds, the last ``lookback`` of its own prediction log
    against its training set, handed to ``publish(report)``. A background thread; failures are logged and retried
    at the next tick. A model packaged without a registered training set has nothing to compare with: the thread
    logs that once and ends (so does a missing training set or statistics: NotFoundError)."""

    def __init__(self, store, manifest: ModelManifest, version: int, publish: Callable[[Report], None], *,
                 interval: float = 60.0, lookback: float = 3600.0):
        self.store, self.manifest, self.version, self.publish = store, manifest, version, publish
        self.interval, self.lookback = interval, lookback
        self._mon: Monitored | None = None
        self._files: dict = {}  # read_rows' cache: the log's files read so far
        self.last: Report | None = None
        super().__init__("skewless-monitor")

    def refresh(self) -> Report:
        if self._mon is None:  # loaded once: a version's training set and thresholds do not change while it serves
            self._mon = monitored(self.store, self.manifest, self.version)
        cols = _columns(self._mon)
        since = datetime.now(timezone.utc) - timedelta(seconds=self.lookback)
        table = read_rows(self.store, self.manifest.name, self.version, cols, since=since, cache=self._files)
        report = Report(self.manifest.name, self.version, self._mon.training_set, self._mon.thresholds,
                        evaluate(self._mon, table))
        self.last = report
        self.publish(report)
        return report

    def _run(self) -> None:
        while True:  # a first refresh at once: the gauges exist (NaN: no rows yet) from the start
            try:
                self.refresh()
                self.last_error = None
            except (ValidationError, NotFoundError) as exc:  # no training set or statistics: nothing to compare
                # A model packaged without a registered training set is a choice (info); one whose training set
                # or statistics are gone is worth a warning.
                (log.info if isinstance(exc, ValidationError) else log.warning)(
                    "skew monitor off", extra={"model": self.manifest.name, "reason": str(exc)})
                self.last_error = f"{type(exc).__name__}: {exc}"
                return
            except Exception as exc:  # e.g. the offline store is down for a while: next tick
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("skew monitor refresh failed", extra={"model": self.manifest.name,
                                                                 "error": self.last_error})
            if self._stop.wait(self.interval):
                return
