"""`skewless stats`: a view's (or a training set's) write-time feature statistics (skewless.statistics)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table
from .model import RepoOpt

console = Console()


def _num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _rows(features: dict) -> list[list[str]]:
    out = []
    for name, f in features.items():
        top = ", ".join(f"{v} ({c})" for v, c in f.top(3))
        out.append([name, f.dtype, str(f.count), "" if f.null_rate is None else f"{f.null_rate:.2%}", _num(f.min),
                    _num(f.quantile(0.5)), _num(f.quantile(0.99)), _num(f.max), _num(f.mean), _num(f.stddev),
                    "" if f.distinct is None else f"{f.distinct:,.0f}", top])
    return out


def _plot(feats: dict, title: str, path: Path) -> None:
    from ..plots import statistics_png

    written = statistics_png(feats, title, path)
    console.print(f"wrote {written}", style="dim", highlight=False) if not console.is_terminal else \
        console.print(f"wrote [bold]{written}[/bold]")


@friendly
def stats(view: Optional[str] = typer.Argument(None, help="A feature view"),
          version: Optional[int] = typer.Option(None, "--version", "-v",
                                                help="History version of VIEW (default: the newest); with "
                                                     "--training-set, the training set's registry version"),
          training_set: Optional[str] = typer.Option(None, "--training-set", "-t",
                                                     help="A registered training set: its features' statistics at "
                                                          "the versions it was built from (VIEW narrows to one view)"),
          plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw each feature's distribution "
                                              "(histogram, or top values) into this PNG file"),
          repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Per-feature statistics recorded when the rows were written: count, null rate, min, p50, p99, max, mean,
    stddev, distinct values (≈, HLL) and the most frequent values. They describe every row appended up to the
    version (re-sent rows count again), not the newest value per entity."""
    from ..errors import ValidationError
    from ..store import FeatureStore

    if view is None and training_set is None:
        raise ValidationError("name a feature view, or a training set with --training-set")
    from ..pii import mask_view_statistics

    store = FeatureStore(repo)
    masking = store.masking()
    if training_set is not None:
        feats = store.get_training_set_statistics(training_set, version)
        if view is not None:
            feats = {r: f for r, f in feats.items() if r.partition(":")[0] == view}
        feats = {r: mask_view_statistics({r: f}, masking.hidden(r.partition(":")[0]))[r] for r, f in feats.items()}
        title = f"training set {training_set}" + (f" (version {version})" if version is not None else "")
        if plot is not None:
            _plot(feats, title, plot)
        if as_json:
            print_json({"training_set": training_set, "version": version,
                        "features": {r: f.to_dict() for r, f in feats.items()}})
            return
    else:
        vs = store.get_statistics(view, version)
        vs.features = feats = mask_view_statistics(vs.features, masking.hidden(vs.view))
        title = f"{vs.view} at version {vs.version}: {vs.rows:,} rows written"
        if plot is not None:
            _plot(feats, title, plot)
        if as_json:
            print_json(vs.to_dict())
            return
    table = Table("feature", "dtype", "count", "null rate", "min", "p50", "p99", "max", "mean", "stddev", "distinct≈",
                  "top items", title=title)
    for row in _rows(feats):
        table.add_row(*row)
    print_table(console, table)
