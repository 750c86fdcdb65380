"""The UI's skew and drift page of a model version (``/monitor/{model}``): ``skewless.serving.monitor`` over its
prediction log against its registered training set's statistics, as ``skewless monitor`` computes it.

Shown: per feature, the metrics over the period with the breached ones marked; the skew chart (the reference's and
the served values' shares over the same bins: KLL deciles, or top categories + other); drift over time (each
metric per window, one line per feature). The period and the window are chosen from fixed lists (no free-text
durations to parse). The log is read once per view of the page for both (the period's rows, then judged whole and
per window), and its files are cached per (model, version, period) as the server's refresher caches them
(``read_rows(cache=)``: log files are immutable, so a later view reads only the files committed since); a result
is kept ``TTL_S`` seconds, so reloading the page reads nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Callable

from skewless.drift import METRICS
from skewless.timeutil import now

TTL_S = 30.0
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "1d": timedelta(days=1), "7d": timedelta(days=7)}


FILE_CACHES = 4  # (model, version, period) file caches kept, the least recently used dropped


class _Cache:
    def __init__(self):
        self._lock, self._items = threading.Lock(), {}

    def get(self, key, compute: Callable):
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and time.monotonic() - hit[0] < TTL_S:
                return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (time.monotonic(), value)
        return value


def failed_page(page, request, template: str, exc: Exception, ctx: dict):
    """The page for an error of a report's computation (404 unknown, 403 denied, 400 a bad choice); anything else
    is re-raised (a 500 with no detail to the viewer)."""
    from skewless.errors import NotFoundError, PermissionDenied, ValidationError

    for kind, status in ((NotFoundError, 404), (PermissionDenied, 403), (ValidationError, 400)):
        if isinstance(exc, kind):
            return page(request, template, status, error=str(exc), **ctx)
    raise exc


def _charts(whole, windowed) -> dict:
    """The page's chart data: per feature its skew chart; per metric its drift-over-time chart."""
    skew = {}
    first = whole.windows[0] if whole.windows else None
    # the breached features' charts first: what the page is looked at for
    for ref, d in sorted(first.features.items(), key=lambda kv: kv[0] not in first.breaches) if first else ():
        if d.bins:
            skew[ref] = {"x": list(range(len(d.bins))), "labels": d.bins,
                         "series": {"training set": d.reference_shares, "served": d.served_shares}}
    over_time = {}
    ws = [w for w in windowed.windows if w.start is not None]
    if ws:
        x = [w.start.timestamp() for w in ws]
        for m in METRICS:
            series = {ref: [getattr(w.features[ref], m) if ref in w.features else None for w in ws]
                      for ref in ws[0].features}
            if any(v is not None for ys in series.values() for v in ys):
                over_time[m] = {"x": x, "series": series}
    return {"skew": skew, "over_time": over_time}


def monitor_page(page, store, viewer: Callable) -> Callable:
    """The ``/monitor/{model}`` route: ``?version=N`` or ``?stage=S`` (default: the newest version), ``period``
    (one of PERIODS, default 7d) and ``window`` (one of WINDOWS, default 1h). 404 for an unknown model or version,
    400 for a bad choice or a model that cannot be monitored (no registered training set), said on the page. Read as
    the viewer (``viewer(request)``): 403 without ``read_offline`` on the training set's views once permissions
    exist; a PII feature's bin labels masked unless it holds ``read_pii`` (skewless.pii)."""
    from skewless.errors import NotFoundError, PermissionDenied, ValidationError

    from ..model_registry import ModelRegistry
    from ..monitor import Report, _columns, evaluate, mask_report, monitored, read_rows

    cache = _Cache()
    files: OrderedDict = OrderedDict()  # (model, version, period) -> read_rows' file cache
    files_lock = threading.Lock()

    def reports(model, version, stage, period, window, since):
        mv = ModelRegistry(store).get(model, version, stage=stage)
        mon = monitored(store, mv.manifest, mv.version)
        with files_lock:
            fc = files.setdefault((model, mv.version, period), {})
            files.move_to_end((model, mv.version, period))
            while len(files) > FILE_CACHES:
                files.popitem(last=False)
            # no until, and a since (now - period) that only moves forward: read_rows' cache holds
            table = read_rows(store, model, mv.version, _columns(mon), since=since, cache=fc)
        return (Report(model, mv.version, mon.training_set, mon.thresholds, evaluate(mon, table)),
                Report(model, mv.version, mon.training_set, mon.thresholds,
                       evaluate(mon, table, window=WINDOWS[window])))

    async def route(request):
        model = request.path_params["model"]
        q = request.query_params
        period, window = q.get("period", "7d"), q.get("window", "1h")
        ctx = {"title": f"Skew and drift of {model}", "model": model, "period": period, "window": window,
               "period_choices": list(PERIODS), "window_choices": list(WINDOWS), "metrics": METRICS}
        raw_version, stage = q.get("version", "").strip(), q.get("stage", "").strip() or None
        if period not in PERIODS or window not in WINDOWS or (raw_version and not raw_version.isdigit()):
            return page(request, "monitor.html", 400, error=f"period must be one of {', '.join(PERIODS)}, window "
                        f"one of {', '.join(WINDOWS)}, version a number", **ctx)
        version = int(raw_version) if raw_version else None
        since = None if PERIODS[period] is None else now() - PERIODS[period]

        who, masking = viewer(request)

        def compute():
            with store.acting_as(who):
                return reports(model, version, stage, period, window, since)
        try:  # the viewer is part of the key: a result one principal was allowed is never served to another
            whole, windowed = cache.get((who, model, version, stage, period, window), compute)
        except (NotFoundError, PermissionDenied, ValidationError) as exc:
            return failed_page(page, request, "monitor.html", exc, ctx)
        whole, windowed = mask_report(whole, masking), mask_report(windowed, masking)
        features = whole.windows[0].features if whole.windows else {}
        breaches = whole.windows[0].breaches if whole.windows else {}
        return page(request, "monitor.html", report=whole, features=features, breaches=breaches,
                    rows=whole.windows[0].rows if whole.windows else 0, charts=_charts(whole, windowed),
                    n_windows=len(windowed.windows), **ctx)
    return route
