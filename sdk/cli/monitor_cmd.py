"""`skewless monitor MODEL`: training-serving skew and drift of a model version from its prediction log.

Exit codes, for CI and cron: 0 no feature over a threshold, 1 a breach, 2 the check could not run (a one-line
typed error: unknown model, no registered training set, bad --since...)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table
from .model import RepoOpt, _serving

console = Console()
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str, what: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` (positive)."""
    from ..errors import ValidationError

    m = _DURATION.fullmatch(text)
    if not m or float(m.group(1)) <= 0:
        raise ValidationError(f"{what} {text!r}: expected a positive duration such as 90s, 30m, 1h, 7d or 2w")
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def instant(text: str, what: str) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration before now (``2h``: two hours ago)."""
    from ..errors import ValidationError
    from ..timeutil import now, utc

    if _DURATION.fullmatch(text):
        return now() - duration(text, what)
    try:
        return utc(text, what)
    except (ValidationError, ValueError):
        raise ValidationError(f"{what} {text!r}: expected an ISO 8601 time (2026-12-01T00:00:00Z) or a duration "
                              "ago (2h, 7d)") from None


# The options `monitor` and `audit` share: which model version, which predictions.
ModelArg = typer.Argument(..., help="A registered model")
VersionOpt = typer.Option(None, "--version", help="The model version (default: the newest)")
StageOpt = typer.Option(None, "--stage", help="The version in this stage, e.g. production")
SinceOpt = typer.Option(None, "--since", help="Predictions from this time on: ISO 8601, or a duration ago (24h, 7d)")
UntilOpt = typer.Option(None, "--until", help="Predictions before this time (same forms)")


def period(version, stage, since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """--since/--until as instants (checked: since before until), and --version and --stage not both."""
    from ..errors import ValidationError

    if version is not None and stage is not None:
        raise ValidationError("give --version or --stage, not both")
    start = instant(since, "--since") if since else None
    end = instant(until, "--until") if until else None
    if start and end and start >= end:
        raise ValidationError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return start, end


def monitor(model: str = ModelArg, version: Optional[int] = VersionOpt, stage: Optional[str] = StageOpt,
            since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
            window: Optional[str] = typer.Option(None, "--window", help="One result per window of this length "
                                                 "(1h, 1d): drift over time"),
            plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw drift over time (PSI per feature "
                                                "per window, needs --window) into this PNG file"),
            repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Training-serving skew of MODEL: per feature, PSI, Kolmogorov-Smirnov, Jensen-Shannon and the share of
    NOT_FOUND/EXPIRED reads in its prediction log against its training set's statistics. Exit 1 when a feature is
    over a threshold (declared on the feature service or the model), 2 when the check cannot run."""
    try:
        breached = _run(model, version, stage, since, until, window, repo, as_json, plot)
    except typer.Exit as exc:  # friendly's error exit: 2 here, so 1 means a breach and nothing else
        raise typer.Exit(2 if exc.exit_code else 0) from None
    if breached:
        raise typer.Exit(1)


@friendly
def _run(model, version, stage, since, until, window, repo, as_json, plot=None) -> bool:
    from ..errors import ValidationError
    from ..store import FeatureStore

    serving = _serving()
    start, end = period(version, stage, since, until)
    if plot is not None and not window:
        raise ValidationError("--plot draws drift over time: give --window too (e.g. --window 1h)")
    report = serving.monitor(FeatureStore(repo), model, version=version, stage=stage, since=start, until=end,
                             window=duration(window, "--window") if window else None)
    if plot is not None:
        _plot(report, plot)
    if as_json:
        print_json(report.to_dict())
        return report.breached
    ts = report.training_set
    console.print(f"model {report.model} version {report.version} vs training set {ts[0]} (version {ts[1]}): "
                  f"{sum(w.rows for w in report.windows):,} logged predictions", highlight=False)
    if not report.windows:
        console.print("no predictions logged in that range: nothing to judge", highlight=False)
        return False
    table = Table("window", "feature", "rows", "values", "psi", "ks", "js", "missing", "breach")
    for w in report.windows:
        label = f"{w.start:%Y-%m-%d %H:%M:%S}" if window else "all"
        for ref, d in w.features.items():
            over = w.breaches.get(ref, [])
            table.add_row(label, ref, str(d.rows), str(d.values), *(_num(getattr(d, m)) for m in
                                                                    ("psi", "ks", "js", "missing_share")),
                          ", ".join(over) if over else "" if d.rows >= report.thresholds[ref].min_rows else
                          "(too few rows)")
    print_table(console, table)
    over = sorted({ref for w in report.windows for ref in w.breaches})
    console.print(f"BREACH: {', '.join(over)}" if over else "no feature over its thresholds", highlight=False)
    return report.breached


def _plot(report, path: Path) -> None:
    """PSI per feature over the windows, with the most common PSI threshold as a dashed line."""
    from collections import Counter

    from ..plots import lines_png

    ws = [w for w in report.windows if w.start is not None]
    refs = list(ws[0].features) if ws else []
    series = {ref: [w.features[ref].psi if ref in w.features else None for w in ws] for ref in refs}
    limits = Counter(t.psi for t in report.thresholds.values() if t.psi is not None)
    written = lines_png([w.start for w in ws], series, f"{report.model} v{report.version}: PSI per window", "PSI",
                        path, limit=limits.most_common(1)[0][0] if limits else None)
    console.print(f"wrote {written}", highlight=False)


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
