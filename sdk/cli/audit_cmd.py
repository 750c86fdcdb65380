"""`skewless audit MODEL`: the model's logged predictions replayed row by row through the training path.

Not `audit-log` (the governance audit log). Exit codes as `skewless monitor`: 0 the mismatch rate is at or under
the threshold, 1 over it, 2 the audit could not run (a one-line typed error)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, friendly, print_json, print_table
from .model import RepoOpt, _serving
from .monitor_cmd import ModelArg, SinceOpt, StageOpt, UntilOpt, VersionOpt, period

console = Console()


def audit(model: str = ModelArg, version: Optional[int] = VersionOpt, stage: Optional[str] = StageOpt,
          since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
          sample: Optional[str] = typer.Option(None, "--sample", help="Audit a deterministic sample: a number of "
                                               "rows (10000) or a share of them (0.05)"),
          threshold: float = typer.Option(0.0, "--threshold", help="Exit 1 when the share of mismatched rows is "
                                          "over this (default 0: any mismatch)"),
          metrics_file: Optional[Path] = typer.Option(None, "--metrics-file", help="Also write the result as "
                                                      "Prometheus text here (a node_exporter textfile)"),
          repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Replay MODEL's logged predictions through get_historical_features at their read time (point_in_time=
    "available") and its registered artifact: value by value, with each mismatch's cause. Exit 1 over the
    threshold, 2 when the audit cannot run."""
    try:
        breached = _run(model, version, stage, since, until, sample, threshold, metrics_file, repo, as_json)
    except typer.Exit as exc:  # friendly's error exit: 2 here, so 1 means a breach and nothing else
        raise typer.Exit(2 if exc.exit_code else 0) from None
    if breached:
        raise typer.Exit(1)


def parse_sample(text: str) -> tuple[int | None, float | None]:
    """``10000`` -> (rows, None); ``0.05`` -> (None, share)."""
    from ..errors import ValidationError

    try:
        if text.strip().isdigit():
            n = int(text)
            if n >= 1:
                return n, None
        else:
            r = float(text)
            if 0 < r <= 1:
                return None, r
    except ValueError:
        pass
    raise ValidationError(f"--sample {text!r}: expected a number of rows (10000) or a share in (0, 1] (0.05)")


@friendly
def _run(model, version, stage, since, until, sample, threshold, metrics_file, repo, as_json) -> bool:
    from ..store import FeatureStore

    serving = _serving()
    start, end = period(version, stage, since, until)
    rows, rate = parse_sample(sample) if sample else (None, None)
    store = FeatureStore(repo)
    report = serving.audit(store, model, version=version, stage=stage, since=start, until=end,
                           sample_rows=rows, sample_rate=rate, threshold=threshold).masked(store.masking())
    if metrics_file is not None:
        from skewless.serving.skew_audit import metrics_text

        tmp = metrics_file.with_name(metrics_file.name + ".tmp")
        tmp.write_text(metrics_text(report))
        tmp.replace(metrics_file)  # whole or not at all: a textfile collector never reads half a file
    if as_json:
        print_json(report.to_dict())
        return report.breached
    console.print(f"model {report.model} version {report.version}: {report.rows:,} of {report.logged:,} logged "
                  f"predictions audited in {report.seconds:.2f} s", highlight=False)
    if not report.rows:
        console.print("no predictions logged in that range: nothing to audit", highlight=False)
        return False
    console.print(f"exact: {report.exact:,} rows ({report.exact / report.rows:.2%}); mismatched: "
                  f"{report.mismatched:,} (threshold {report.threshold:.2%})", highlight=False)
    for mode in report.modes:
        if mode["point_in_time"]:
            console.print(f"  point_in_time={mode['point_in_time']} ({mode['comparison']}): {mode['why']}",
                          highlight=False)
    if report.features or report.prediction["mismatched"]:
        table = Table("feature", "cause", "values", "max lag (s)")
        for ref, causes in report.features.items():
            for cause, n in causes.items():
                lag = report.lags.get(cause, {}).get("max_seconds")
                table.add_row(ref, cause, str(n), "" if lag is None else f"{lag:.1f}")
        if report.prediction["mismatched"]:
            table.add_row("prediction", report.prediction["cause"], str(report.prediction["mismatched"]), "")
        print_table(console, table)
    if report.late_events:
        console.print("late events (equal in available mode, different in event mode): " + ", ".join(
            f"{ref} {n}" for ref, n in report.late_events.items()), highlight=False)
    console.print("BREACH: mismatch rate over the threshold" if report.breached else "within the threshold",
                  highlight=False)
    return report.breached
