"""Training set with windowed aggregations: skewless vs the hand-written DuckDB floor, same data, same run.

    python -m bench.agg_training_bench                 # --scale small: 100k entity rows x 1M events
    python -m bench.agg_training_bench --scale full    # 1M entity rows x 10M events (the issue-15 target)

One aggregated view, 4 functions (count, sum, mean, max of a Float64 column) x 3 windows (1 h, 1 d, 7 d; hop 1 h).
Each measurement runs in its own process (peak RSS is that task's alone):

* skewless: ``get_historical_features(entity.parquet, [12 features]).to_arrow()`` on a local Delta history;
* floor: the fastest plain DuckDB SQL written by hand for the same output, straight on the generated Parquet (one
  range join, every aggregation in one GROUP BY with FILTERs, no event identity, no input order restored), with
  the same connection settings. It is checked to give the same values as skewless.

Targets (issue 15): skewless <= 1.5x the floor's wall time, peak RSS <= 4 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCALES = {"small": (100_000, 1_000_000, 10_000), "full": (1_000_000, 10_000_000, 100_000)}  # entity, events, keys
HOUR_US = 3_600_000_000
WINDOWS = {"1h": HOUR_US, "1d": 24 * HOUR_US, "7d": 7 * 24 * HOUR_US}
FUNCTIONS = ("count", "sum", "mean", "max")
T0_US = 1_704_067_200_000_000  # 2024-01-01
SPAN_US = 60 * 24 * HOUR_US  # events over 60 days


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def generate(data: Path, scale: str, seed: int = 15) -> None:
    n_ent, n_ev, n_keys = SCALES[scale]
    if (data / "events.parquet").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ev = T0_US + rng.integers(0, SPAN_US, n_ev)
    created = ev + rng.integers(0, HOUR_US, n_ev)
    amount = np.round(rng.gamma(2.0, 30.0, n_ev), 2)
    events = pa.table({"card": pa.array(rng.integers(0, n_keys, n_ev)),
                       "event_timestamp": pa.array(ev, pa.timestamp("us", tz="UTC")),
                       "created_timestamp": pa.array(created, pa.timestamp("us", tz="UTC")),
                       "amount": pa.array(amount)})
    pq.write_table(events, data / "events.parquet")
    t = T0_US + 7 * 24 * HOUR_US + rng.integers(0, SPAN_US - 7 * 24 * HOUR_US, n_ent)
    pq.write_table(pa.table({"card": pa.array(rng.integers(0, n_keys, n_ent)),
                             "event_timestamp": pa.array(t, pa.timestamp("us", tz="UTC")),
                             "label": pa.array(rng.integers(0, 2, n_ent))}), data / "entity.parquet")


def view():
    import skewless as sk
    from skewless.aggregation import AggregatedView, Aggregation

    card = sk.Entity("card", join_keys=["card"])
    aggs = [Aggregation("amount", f, timedelta(microseconds=w)) for w in WINDOWS.values() for f in FUNCTIONS]
    return card, AggregatedView("txn", [card], [sk.Field("card", sk.Int64), sk.Field("amount", sk.Float64)], aggs,
                                timedelta(hours=1), online=False)


def prepare(data: Path, repo: Path) -> dict:
    import skewless as sk

    store = sk.init_repo(repo, project="aggbench")
    card, v = view()
    store.apply([card, v])
    t = time.perf_counter()
    store.ingest("txn", pq.read_table(data / "events.parquet"))
    return {"ingest_s": round(time.perf_counter() - t, 2)}


def run_skewless(data: Path, repo: Path, out: Path | None) -> dict:
    import skewless as sk

    store = sk.FeatureStore(repo)
    refs = [f"txn:{a.name}" for a in view()[1].aggregations]
    t = time.perf_counter()
    table = store.get_historical_features(str(data / "entity.parquet"), refs).to_arrow()
    wall = time.perf_counter() - t
    if out:
        pq.write_table(table, out)
    return {"wall_s": round(wall, 3), "rows_out": table.num_rows, "cols_out": table.num_columns}


def floor_sql(data: Path) -> str:
    """By hand: integer-microsecond window starts, one range join to the 7-day start, FILTERs for the shorter ones."""
    starts = ", ".join(f"(t - {w}) - (((t - {w}) % {HOUR_US}) + {HOUR_US}) % {HOUR_US} AS s_{n}"
                       for n, w in WINDOWS.items())
    aggs = []
    for n in WINDOWS:
        cond = "" if n == "7d" else f" FILTER (WHERE h.ev > e.s_{n})"
        aggs += [f"count(h.amount){cond} AS amount_count_{n}", f"sum(h.amount){cond} AS amount_sum_{n}",
                 f"avg(h.amount){cond} AS amount_mean_{n}", f"max(h.amount){cond} AS amount_max_{n}"]
    return (f"SELECT e.rid, {', '.join(aggs)} FROM (SELECT rid, card, t, {starts} FROM (SELECT file_row_number AS "
            f"rid, card, epoch_us(event_timestamp) AS t FROM read_parquet('{data / 'entity.parquet'}', "
            f"file_row_number = true))) AS e LEFT JOIN (SELECT card, epoch_us(event_timestamp) AS ev, amount FROM "
            f"read_parquet('{data / 'events.parquet'}')) AS h ON e.card = h.card AND h.ev <= e.t AND h.ev > e.s_7d "
            f"GROUP BY e.rid")


def run_floor(data: Path, repo: Path, out: Path | None) -> dict:
    from skewless.offline.duckdb_engine import DuckDBEngine

    con = DuckDBEngine().connect()
    t = time.perf_counter()
    table = con.sql(floor_sql(data)).to_arrow_reader(122_880).read_all()
    wall = time.perf_counter() - t
    if out:
        pq.write_table(table, out)
    return {"wall_s": round(wall, 3), "rows_out": table.num_rows, "cols_out": table.num_columns}


def same_values(skewless_out: Path, floor_out: Path) -> bool:
    a = pq.read_table(skewless_out)
    b = pq.read_table(floor_out).sort_by("rid")
    for name in b.column_names[1:]:
        x, y = a.column(name).to_numpy(zero_copy_only=False), b.column(name).to_numpy(zero_copy_only=False)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if not np.allclose(x, y, rtol=1e-9, atol=0, equal_nan=True):
            return False
    return True


def _child(task: str, data: Path, repo: Path, out: Path | None) -> dict:
    cmd = [sys.executable, "-m", "bench.agg_training_bench", "--task", task, "--data", str(data), "--repo", str(repo)]
    if out:
        cmd += ["--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--reps", type=int, default=2, help="runs of each side, alternately; the best is reported")
    p.add_argument("--task", choices=["prepare", "skewless", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.task:
        fn = {"prepare": lambda: prepare(args.data, args.repo), "skewless": lambda: run_skewless(
            args.data, args.repo, args.out), "floor": lambda: run_floor(args.data, args.repo, args.out)}[args.task]
        result = fn()
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    root = Path(".bench") / "agg" / args.scale
    data, repo = root / "data", root / "repo"
    generate(data, args.scale)
    result: dict = {"scale": args.scale, "entity_rows": SCALES[args.scale][0], "events": SCALES[args.scale][1]}
    if not (repo / "feature_store.yaml").exists() and not (repo / "skewless.yaml").exists():
        result["prepare"] = _child("prepare", data, repo, None)
    runs: dict[str, list] = {"skewless": [], "floor": []}
    for i in range(args.reps):
        for side in ("skewless", "floor"):
            runs[side].append(_child(side, data, repo, root / f"{side}.parquet" if i == 0 else None))
    for side, rs in runs.items():
        result[side] = min(rs, key=lambda r: r["wall_s"])
        result[side]["all_wall_s"] = [r["wall_s"] for r in rs]
    result["ratio"] = round(result["skewless"]["wall_s"] / result["floor"]["wall_s"], 2)
    result["same_values"] = same_values(root / "skewless.parquet", root / "floor.parquet")
    result["targets"] = {"ratio<=1.5": result["ratio"] <= 1.5,
                         "peak_rss<=4GB": result["skewless"]["peak_rss_mb"] <= 4096}
    print(json.dumps(result, indent=1))
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"agg_training_{args.scale}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
