"""The UI's statistics page: a view's write-time statistics (``skewless.statistics``) at a history version, one
row per feature, and each number feature's distribution drawn from its KLL sketch.

The distribution is the sketch's mass in ``BINS`` equal-width bins between the feature's min and max
(``kll.get_pmf``), times the non-null count: approximate rows per bin, with the sketch's rank error (about 1.3% at
k=200, docs/statistics.md), read from the stored sketch, never from the data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

BINS = 30


def histogram(f) -> dict | None:
    """``{"x": bin centres, "series": {"rows": estimated rows per bin}}`` of a number feature (None: no values,
    one value, or no sketch)."""
    if f.kll is None or f.kll.is_empty() or f.min is None or f.max is None or not f.max > f.min:
        return None
    edges = np.linspace(float(f.min), float(f.max), BINS + 1)
    mass = np.asarray(f.kll.get_pmf(edges[1:-1].tolist()), dtype=float)  # BINS masses: below e1, [e1, e2), …
    values = f.count - f.nulls
    centres = (edges[:-1] + edges[1:]) / 2
    return {"x": [float(c) for c in centres], "series": {"rows": [round(float(m) * values, 1) for m in mass]},
            "xlabel": f.name}


def rows(stats) -> list[dict]:
    """The table's rows: the plain statistics of every feature, with its histogram when it has one."""
    out = []
    for f in stats.features.values():
        d = f.to_dict()
        d["chart"] = histogram(f)
        out.append(d)
    return out


def statistics_page(page, get_statistics: Callable) -> Callable:
    """The ``/statistics/{view}`` route (``?version=N``; none: the newest): 404 for an unknown view or version,
    and for a version written without statistics (the page says so)."""
    from skewless.errors import NotFoundError

    async def statistics(request):
        view = request.path_params["view"]
        raw = request.query_params.get("version", "").strip()
        if raw and not raw.isdigit():
            return page(request, "statistics.html", 400, title=f"Statistics of {view}", view=view,
                        error="version must be a history version number")
        try:
            stats = get_statistics(view, int(raw) if raw else None)
        except NotFoundError as exc:
            return page(request, "statistics.html", 404, title=f"Statistics of {view}", view=view, error=str(exc))
        return page(request, "statistics.html", title=f"Statistics of {view}", view=view, stats=stats,
                    features=rows(stats))
    return statistics
