"""The UI's statistics page: a view's write-time statistics (``skewless.statistics``) at a history version, one
row per feature, and each number feature's distribution drawn from its KLL sketch.

The distribution is ``skewless.plots.histogram`` (the one ``skewless stats --plot`` draws too): the sketch's mass in
equal-width bins between the feature's min and max, times the non-null count: approximate rows per bin, within the
sketch's rank error, read from the stored sketch, never from the data.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from skewless.plots import histogram


def rows(stats) -> list[dict]:
    """The table's rows: the plain statistics of every feature, with its histogram when it has one."""
    out = []
    for f in stats.features.values():
        d = f.to_dict()
        d["chart"] = histogram(f)
        out.append(d)
    return out


def statistics_page(page, get_statistics: Callable, viewer: Callable, store=None) -> Callable:
    """The ``/statistics/{view}`` route (``?version=N``; none: the newest): 404 for an unknown view or version,
    and for a version written without statistics (the page says so). Read as the viewer (``viewer(request)``: its
    principal and ``Masking``): 403 without ``read_offline`` on the view once permissions exist, and a PII
    feature's values masked unless it holds ``read_pii`` (skewless.pii)."""
    import contextlib

    from skewless.errors import NotFoundError, PermissionDenied
    from skewless.pii import mask_view_statistics

    async def statistics(request):
        view = request.path_params["view"]
        raw = request.query_params.get("version", "").strip()
        if raw and not raw.isdigit():
            return page(request, "statistics.html", 400, title=f"Statistics of {view}", view=view,
                        error="version must be a history version number")
        who, masking = viewer(request)
        try:
            with store.acting_as(who) if store is not None else contextlib.nullcontext():
                stats = get_statistics(view, int(raw) if raw else None)
        except NotFoundError as exc:
            return page(request, "statistics.html", 404, title=f"Statistics of {view}", view=view, error=str(exc))
        except PermissionDenied as exc:
            return page(request, "statistics.html", 403, title=f"Statistics of {view}", view=view, error=str(exc))
        stats = dataclasses.replace(stats, features=mask_view_statistics(stats.features, masking.hidden(view)))
        return page(request, "statistics.html", title=f"Statistics of {view}", view=view, stats=stats,
                    features=rows(stats))
    return statistics
