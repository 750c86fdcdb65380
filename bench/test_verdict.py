"""Benchmark figures labelled met / missed against their targets (on crafted figures), a miss below full scale
explained, and runs written to the untracked bench/out/ unless published on purpose."""

import subprocess
from pathlib import Path

from bench.verdict import OUT, PUBLISHED, TARGETS, Target, result_dirs, verdict, verdict_lines

ROOT = Path(__file__).resolve().parent.parent


def test_at_most_and_at_least_targets_met_and_missed():
    floor = TARGETS["pit_vs_floor"]  # <= 1.5x the raw DuckDB ASOF floor
    assert verdict(0.66, floor).startswith("met")
    assert verdict(1.5, floor).startswith("met")  # the limit itself meets it
    assert verdict(1.51, floor) == "missed (target <= 1.5x)"
    feast = TARGETS["pit_vs_feast"]  # >= 10x faster than Feast
    assert verdict(15.7, feast) == "met (target >= 10x)"
    assert verdict(2.53, feast).startswith("missed")
    assert verdict(None, feast) == "no figure (target >= 10x)"


def test_a_small_scale_miss_is_explained_only_where_scale_explains_it():
    small = verdict(1.84, TARGETS["pit_vs_floor"], "small")
    assert small.startswith("missed at --scale small (target <= 1.5x): fixed per-query overhead dominates")
    assert small.endswith("the target applies at full scale")
    # the same miss at full scale is a plain miss
    assert verdict(1.84, TARGETS["pit_vs_floor"], "full") == "missed (target <= 1.5x)"
    # online reads cost the same at any scale: no excuse at small scale
    assert verdict(1.4, TARGETS["redis_read_vs_floor"], "small") == "missed (target <= 1.3x)"
    # a figure that meets its target at small scale says met, not a scale note
    assert verdict(374_493, TARGETS["redis_materialize_rows_per_s"], "small") == "met (target >= 300,000 rows/s)"


def test_verdict_lines_label_every_figure():
    lines = verdict_lines([("redis_read_vs_floor", "online read 1 entity p50 / floor", 0.75),
                           ("redis_materialize_rows_per_s", "", 160_200),
                           ("pit_peak_rss", "", None)], "full")
    assert lines == [
        "- online read 1 entity p50 / floor: 0.75x -> met (target <= 1.3x)",
        "- materialize into Redis, rows written/s (best run): 160,200 rows/s -> missed (target >= 300,000 rows/s)",
        "- PIT peak RSS: - -> no figure (target <= 2,048 MB)",
    ]
    assert Target("t", 2.0, False).describe() == ">= 2x"


def test_runs_write_to_the_untracked_folder_unless_published():
    assert result_dirs(publish=False) == [OUT]
    assert result_dirs(publish=True) == [OUT, PUBLISHED]
    assert PUBLISHED == ROOT / "bench" / "results"
    # bench/out/ is ignored by git, bench/results/ is not
    ignored = subprocess.run(["git", "check-ignore", "-q", str(OUT / "small.json")], cwd=ROOT)
    published = subprocess.run(["git", "check-ignore", "-q", str(PUBLISHED / "small.json")], cwd=ROOT)
    assert ignored.returncode == 0 and published.returncode == 1


def test_issue_14_serving_goals_on_the_medians_and_against_the_peer():
    from bench.serving_bench import goal_figures

    assert verdict(0.42, TARGETS["serving_goal_p50_ms"]) == "met (target <= 0.5 ms)"
    assert verdict(4177, TARGETS["serving_goal_rps"]) == "missed (target >= 5,000 req/s)"
    rows = [{"case": "FastAPI peer, logreg1 (redis-py lookup + log)", "online": "redis", "p50_ms": 1.5, "p99_ms": 9.0,
             "rps": 500.0, "p99_ms_c": 80.0},
            {"case": "skewless, logreg1 (lookup + log)", "online": "sqlite", "p50_ms": 9.0, "p99_ms": 9.0,
             "rps": 1.0, "p99_ms_c": 9.0},  # another store: not the goal's case
            {"case": "skewless, logreg1 (lookup + log)", "online": "redis", "p50_ms": 0.5, "p99_ms": 3.5,
             "rps": 5000.0, "p99_ms_c": 2.0}]
    lines = verdict_lines(goal_figures(rows))
    assert [ln.rsplit("-> ", 1)[1].split(" (")[0] for ln in lines] == ["met", "missed", "met", "met", "met", "met"]
    assert "req/s / the FastAPI peer's: 10x" in lines[4] and "p50 / skewless p50: 3x" in lines[5]
    assert goal_figures([r for r in rows if "skewless" not in r["case"]]) == []  # no skewless row: no figures


def test_a_peer_stopped_before_it_finished_gives_only_a_lower_bound():
    feast = TARGETS["agg_vs_feast"]  # >= 10x faster than Feast
    assert verdict(14.2, feast, lower_bound=True) == "met, on a lower bound (target >= 10x)"
    # a bound under the target does not show a miss: the finished run could still have been 10x slower
    assert verdict(6.0, feast, lower_bound=True) == "no verdict: only a lower bound (target >= 10x)"
    assert verdict(6.0, feast) == "missed (target >= 10x)"
    # a lower bound says nothing about an at-most target
    assert verdict(1.0, TARGETS["agg_vs_floor"], lower_bound=True).startswith("no verdict")
    lines = verdict_lines([("agg_vs_feast", "", 14.2, True), ("agg_vs_feast", "", 52.5),
                           ("agg_vs_feast", "", None, True)])
    assert lines[0].endswith(": >= 14.2x -> met, on a lower bound (target >= 10x)")
    assert lines[1].endswith(": 52.5x -> met (target >= 10x)")
    assert lines[2].endswith(": - -> no figure (target >= 10x)")


def test_issue_17_spark_figures_cold_warm_and_scaling():
    from bench.spark_bench import figures

    res = {"spark": {"wall_s": 20.0, "warm_s": 4.0},
           "feast": {"status": "ok", "wall_s": 50.0, "warm_s": 16.0},
           "scaling": [{"entity_rows": 1_000_000, "wall_s": 30.0}, {"entity_rows": 10_000_000, "wall_s": 330.0}]}
    lines = verdict_lines(figures(res))
    assert lines[0].endswith("first call (JVM start included): 2.5x -> missed (target >= 3x)")
    assert lines[1].endswith("warm (best later call, same process): 4x -> met (target >= 3x)")
    assert lines[2] == ("- time for 10,000,000 / 1,000,000 entity rows (10x the rows): 11x -> missed (target <= "
                        "10.5x)")
    # Feast failed or was skipped: no figure rather than a ratio against nothing; one size: no scaling figure
    res["feast"], res["scaling"] = {"status": "timeout", "wall_s": None}, res["scaling"][:1]
    assert [f[2] for f in figures(res)] == [None, None]
    assert verdict(10.5, TARGETS["spark_scaling"]) == "met (target <= 10.5x)"
