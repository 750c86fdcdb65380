"""The UI's skew audit page of a model version (``/audit/{model}``): ``skewless.serving.audit`` over a period of its
prediction log (a deterministic sample of at most ``SAMPLE`` rows, so a view stays a few seconds at most), as
``skewless audit`` computes it: rows audited, exact matches, mismatches by cause and by feature, the lags, the late
events, the prediction check and example mismatches. A result is kept ``TTL_S`` seconds (monitor_page's cache).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from starlette.concurrency import run_in_threadpool

from skewless.timeutil import now

from .monitor_page import _Cache, failed_page

PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}
SAMPLE = 100_000


def audit_page(page, store, viewer: Callable) -> Callable:
    """The ``/audit/{model}`` route: ``?version=N`` or ``?stage=S`` (default: the newest), ``period`` (one of
    PERIODS, default 24h). 404 for an unknown model or version, 400 for a bad choice, said on the page. Run as the
    viewer (``viewer(request)``): 403 without ``read_offline`` on the views the audit rebuilds once permissions
    exist; a PII feature's example values masked unless it holds ``read_pii`` (skewless.pii)."""
    from skewless.errors import NotFoundError, PermissionDenied, ValidationError

    from ..skew_audit import audit

    cache = _Cache()

    async def route(request):
        model = request.path_params["model"]
        q = request.query_params
        period = q.get("period", "24h")
        ctx = {"title": f"Skew audit of {model}", "model": model, "period": period, "period_choices": list(PERIODS)}
        raw_version, stage = q.get("version", "").strip(), q.get("stage", "").strip() or None
        if period not in PERIODS or (raw_version and not raw_version.isdigit()):
            return page(request, "audit.html", 400, error=f"period must be one of {', '.join(PERIODS)}, version a "
                        "number", **ctx)
        version = int(raw_version) if raw_version else None
        since = None if PERIODS[period] is None else now() - PERIODS[period]
        who, masking = viewer(request)

        def compute():
            with store.acting_as(who):
                return audit(store, model, version=version, stage=stage, since=since, sample_rows=SAMPLE)
        try:  # off the event loop: an audit is retrievals of up to SAMPLE rows (seconds), other pages go on; the
            # viewer is part of the key: a result one principal was allowed is never served to another
            report = await run_in_threadpool(cache.get, (who, model, version, stage, period), compute)
        except (NotFoundError, PermissionDenied, ValidationError) as exc:
            return failed_page(page, request, "audit.html", exc, ctx)
        return page(request, "audit.html", report=report.masked(masking), **ctx)
    return route
