"""Charts as PNG files for reports (``--plot FILE`` of ``skewless stats`` and ``skewless monitor``): the charts the
web UI draws with uPlot, from the same data (``histogram`` is the UI's too), drawn with matplotlib (the ``plot``
extra; imported only when a plot is asked for, on the file-only Agg backend).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .errors import ConfigError, ValidationError

BINS = 30


def histogram(f) -> dict | None:
    """A number feature's distribution from its statistics' KLL sketch: ``{"x": bin centres, "series": {"rows":
    estimated rows per bin}, "xlabel": name}`` — the sketch's mass in ``BINS`` equal-width bins between min and max
    (``get_pmf``) times the non-null values counted, within the sketch's rank error. None: no sketch, no values, or
    a single value."""
    if f.kll is None or f.kll.is_empty() or f.min is None or f.max is None or not f.max > f.min:
        return None
    edges = np.linspace(float(f.min), float(f.max), BINS + 1)
    mass = np.asarray(f.kll.get_pmf(edges[1:-1].tolist()), dtype=float)  # BINS masses: below e1, [e1, e2), ...
    centres = (edges[:-1] + edges[1:]) / 2
    return {"x": [float(c) for c in centres],
            "series": {"rows": [round(float(m) * (f.count - f.nulls), 1) for m in mass]}, "xlabel": f.name}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError('--plot needs matplotlib; install it with: pip install "skewless[plot]"') from None
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValidationError(f"--plot writes a PNG file: give a name ending in .png, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")  # never a half-written file under the name
    plt.close(fig)
    tmp.replace(path)
    return path


def statistics_png(features: dict, title: str, path: str | Path) -> Path:
    """One panel per feature: a number feature's histogram (``histogram``), a string or bool feature's most
    frequent values; features with neither are left out. ValidationError when none has a chart."""
    panels = []
    for name, f in features.items():
        h = histogram(f)
        if h is not None:
            panels.append((name, "hist", h))
        elif f.top(10):
            panels.append((name, "top", f.top(10)))
    if not panels:
        raise ValidationError("nothing to plot: no feature has a distribution (no values, or a single value)")
    plt = _pyplot()
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3 * rows), squeeze=False)
    for ax, (name, kind, data) in zip(axes.flat, panels):
        if kind == "hist":
            width = (data["x"][1] - data["x"][0]) * 0.9
            ax.bar(data["x"], data["series"]["rows"], width=width, color="#0969da")
            ax.set_ylabel("rows (estimated)")
        else:
            ax.barh([str(v) for v, _ in reversed(data)], [c for _, c in reversed(data)], color="#1a7f37")
            ax.set_xlabel("rows (estimated)")
        ax.set_title(name)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def lines_png(x: list, series: dict[str, list], title: str, ylabel: str, path: str | Path,
              limit: float | None = None) -> Path:
    """One line per series over ``x`` (times or numbers), with a dashed line at ``limit`` (a threshold)."""
    if not x or not series:
        raise ValidationError("nothing to plot: no windows")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for label, ys in series.items():
        ax.plot(x, [np.nan if y is None else y for y in ys], marker="o", label=label)
    if limit is not None:
        ax.axhline(limit, linestyle="--", color="#cf222e", label=f"threshold {limit:g}")
    if isinstance(x[0], datetime):
        if len(x) == 1:  # one window: a day around it, not matplotlib's default of years
            ax.set_xlim(x[0] - timedelta(hours=12), x[0] + timedelta(hours=12))
        fig.autofmt_xdate()
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, plt, path)
