"""Each benchmark figure against its target: met or missed, and why a miss at a reduced scale is expected.

Pure functions over the figures (no I/O), so the labelling is tested on crafted figures (bench/test_verdict.py).
Where a run writes: ``bench/out/`` (untracked); ``--publish`` also writes ``bench/results/`` (``result_dirs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # every run's results (gitignored)
PUBLISHED = ROOT / "bench" / "results"  # the results the docs cite: written only with --publish
FULL_SCALE = "full"

# The fixed per-query cost (registry read, snapshot resolution, plan, restoring the input order) is the same at any
# scale; at --scale small the query itself is a fraction of a second, so that cost dominates the ratio.
_FIXED_COST = "fixed per-query overhead dominates at this size"


@dataclass(frozen=True)
class Target:
    what: str
    limit: float
    at_most: bool  # True: a figure <= limit meets it; False: a figure >= limit does
    unit: str = "x"
    small_scale_why: str = ""  # why a miss below full scale does not count against the target ("" = it does)

    def describe(self) -> str:
        limit = f"{self.limit:,.0f}" if self.limit >= 1000 else f"{self.limit:g}"
        return f"{'<=' if self.at_most else '>='} {limit}{self.unit}"


TARGETS = {
    "pit_vs_floor": Target("PIT training set / raw DuckDB ASOF floor", 1.5, True,
                           small_scale_why=_FIXED_COST + " (the floor has none of it)"),
    "pit_vs_feast": Target("fastest Feast PIT / skewless PIT", 10.0, False,
                           small_scale_why="both run in about a second and start-up costs dominate; Feast's cost "
                                           "grows faster with rows"),
    "pit_peak_rss": Target("PIT peak RSS", 2048, True, unit=" MB"),
    "redis_read_vs_floor": Target("online read p50 / raw Redis MGET floor", 1.3, True),
    "redis_read_vs_feast": Target("Feast online read p50 / skewless", 5.0, False),
    "redis_materialize_rows_per_s": Target("materialize into Redis, rows written/s (best run)", 300_000, False,
                                           unit=" rows/s",
                                           small_scale_why="fixed per-run cost (process, registry, connections) "
                                                           "over few rows"),
    "redis_materialize_vs_feast": Target("Feast materialize wall / skewless (best vs best)", 10.0, False,
                                         small_scale_why="fixed per-run cost over few rows"),
    "serving_p50_ms": Target("HTTP p50 at 1 connection, a model that costs little per call (logreg1)", 1.0, True,
                             unit=" ms"),
    # Issue 14's goals for the server with a Redis lookup and the prediction log (bench/serving_bench.py)
    "serving_goal_p50_ms": Target("HTTP p50 at 1 connection, logreg1 with Redis lookup and log", 0.5, True,
                                  unit=" ms"),
    "serving_goal_p99_ms": Target("HTTP p99, logreg1 with Redis lookup and log", 3.0, True, unit=" ms"),
    "serving_goal_rps": Target("req/s at 16 connections, logreg1 with Redis lookup and log", 5000, False,
                               unit=" req/s"),
    "serving_vs_peer": Target("skewless / a plain FastAPI + redis-py app doing the same job", 3.0, False),
    # Issue 15, a training set with windowed aggregations (bench/agg_training_bench.py)
    "agg_vs_floor": Target("training set with aggregations / hand-written DuckDB floor", 1.5, True,
                           small_scale_why=_FIXED_COST + " (the floor has none of it)"),
    "agg_peak_rss": Target("training set with aggregations, peak RSS", 4096, True, unit=" MB"),
    # Issue 18, the web UI (bench/ui_bench.py): the slowest page's median with 1,000 views and 100 models
    "ui_page_ms": Target("web UI, slowest page's server time (median)", 200, True, unit=" ms"),
    "agg_vs_feast": Target("Feast 0.67 (precompute + its PIT join) / skewless, training set with aggregations", 10.0,
                           False),
    # Issue 17, the Spark engine (bench/spark_bench.py)
    "spark_vs_feast": Target("Feast 0.67's Spark offline store / skewless's Spark engine, PIT training set", 3.0, False),
    "spark_scaling": Target("Spark engine: time for 10x the entity rows / time for 1x (near-linear)", 10.5, True),
}


def verdict(figure: float | None, target: Target, scale: str = FULL_SCALE, lower_bound: bool = False) -> str:
    """``met``/``missed`` against ``target``; a miss below full scale says why, when the target is a full-scale one.

    ``lower_bound``: the figure is only a bound (the peer was stopped before it finished, so its ratio is at least
    this): it can meet an at-least target, never miss one, and says nothing about an at-most one."""
    if figure is None:
        return f"no figure (target {target.describe()})"
    if lower_bound:
        if not target.at_most and figure >= target.limit:
            return f"met, on a lower bound (target {target.describe()})"
        return f"no verdict: only a lower bound (target {target.describe()})"
    if (figure <= target.limit) if target.at_most else (figure >= target.limit):
        return f"met (target {target.describe()})"
    if scale != FULL_SCALE and target.small_scale_why:
        return (f"missed at --scale {scale} (target {target.describe()}): {target.small_scale_why}; "
                f"the target applies at full scale")
    return f"missed (target {target.describe()})"


def verdict_lines(figures: list[tuple], scale: str = FULL_SCALE) -> list[str]:
    """One line per (target key, what was measured, figure[, lower_bound]): ``- what: figure -> met / missed ...``;
    a lower bound is shown as ``>= figure``."""
    lines = []
    for key, label, figure, *bound in figures:
        t, lower = TARGETS[key], bool(bound and bound[0])
        shown = "-" if figure is None else (f"{figure:,.0f}{t.unit}" if figure >= 1000 else f"{figure:g}{t.unit}")
        lines.append(f"- {label or t.what}: {'>= ' if lower and figure is not None else ''}{shown} -> "
                     f"{verdict(figure, t, scale, lower)}")
    return lines


def result_dirs(publish: bool) -> list[Path]:
    """Where a run writes its results: bench/out/ (untracked) always; with --publish also bench/results/, the
    results the docs cite (so they change only when someone means them to)."""
    return [OUT, PUBLISHED] if publish else [OUT]
