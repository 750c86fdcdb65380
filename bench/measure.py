"""One measurement per process (so peak RSS is that task's alone). Prints one JSON object.

    python -m bench.measure prepare|pit|floor|materialize|online|online-floor DATA_DIR REPO_DIR [options]
    python -m bench.measure materialize-redis|online-redis DATA_DIR REDIS_REPO_DIR   (bench/redis_bench.py)
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

import skewless as sk
from bench import redis_bench
from bench.workload import entity_sets, feature_refs, materialize, views_of


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def prepare(data: Path, repo: Path, meta: dict, args) -> dict:
    store = sk.init_repo(repo, project="bench")
    driver = sk.Entity("driver", join_keys=["driver_id"])
    objs = [driver] + [sk.FeatureView(v, entities=[driver], schema=[sk.Field("driver_id", sk.Int64)]
                                      + [sk.Field(f, sk.Float64) for f in fs]) for v, fs in views_of(meta)]
    store.apply(objs)
    out = {}
    for v, _ in views_of(meta):
        t = time.perf_counter()
        store.ingest(v, pq.read_table(data / f"{v}.parquet"))
        out[f"ingest_{v}_s"] = round(time.perf_counter() - t, 2)
    return out


def pit(data: Path, repo: Path, meta: dict, args) -> dict:
    store = sk.FeatureStore(repo)
    t = time.perf_counter()
    job = store.get_historical_features(str(data / "entity.parquet"), feature_refs(meta))
    table = job.to_arrow()
    wall = time.perf_counter() - t
    if args.save_output:
        pq.write_table(table, args.save_output)
    return {"wall_s": round(wall, 3), "rows_out": table.num_rows, "cols_out": table.num_columns,
            "snapshot": job.snapshot}


def floor(data: Path, repo: Path, meta: dict, args) -> dict:
    """The raw floor: DuckDB ASOF LEFT JOINs straight on the generated Parquet (no tie-breaking, no TTL, no
    input-order guarantee), with the same connection settings skewless uses."""
    store = sk.FeatureStore(repo)
    con = store.engine.connect()
    sel = ", ".join(f"v{i}.{f}" for i, (_, fs) in enumerate(views_of(meta)) for f in fs)
    joins = " ".join(f"ASOF LEFT JOIN read_parquet('{data / v}.parquet') v{i} ON e.driver_id = v{i}.driver_id "
                     f"AND e.event_timestamp >= v{i}.event_timestamp" for i, (v, _) in enumerate(views_of(meta)))
    t = time.perf_counter()
    table = con.sql(f"SELECT e.*, {sel} FROM read_parquet('{data}/entity.parquet') e {joins}").to_arrow_table()
    return {"wall_s": round(time.perf_counter() - t, 3), "rows_out": table.num_rows}


def _latencies(fn, reps: int, warmup: int = 50) -> dict:
    for _ in range(warmup):
        fn()
    xs = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        fn()
        xs.append((time.perf_counter_ns() - t) / 1e6)
    xs.sort()
    return {"p50_ms": round(statistics.median(xs), 4), "p99_ms": round(xs[int(len(xs) * 0.99) - 1], 4),
            "reps": reps}


def online(data: Path, repo: Path, meta: dict, args) -> dict:
    store = sk.FeatureStore(repo)
    refs = feature_refs(meta)
    ones, hundreds = entity_sets(meta)
    rows1 = [[{"driver_id": k} for k in s] for s in ones]
    rows100 = [[{"driver_id": k} for k in s] for s in hundreds]
    i = iter(range(10**9))
    r = store.get_online_features(refs, rows100[0])
    present = sum(st == "PRESENT" for st in r.statuses[refs[0].split(":")[1]])
    return {"one": _latencies(lambda: store.get_online_features(refs, rows1[next(i) % len(rows1)]), args.reps_1),
            "hundred": _latencies(lambda: store.get_online_features(refs, rows100[next(i) % len(rows100)]),
                                  args.reps_100),
            "present_of_100": present}


def online_floor(data: Path, repo: Path, meta: dict, args) -> dict:
    """The raw floor for the embedded store: the same SQLite SELECTs, no skewless code around them."""
    con = sqlite3.connect(str(repo / "data" / "online.db"))
    ones, hundreds = entity_sets(meta)
    stmts = [(f'SELECT driver_id, __ev, {", ".join(fs)} FROM "fv_{v}" WHERE driver_id IN ', fs)
             for v, fs in views_of(meta)]

    def read(keys):
        ph = "(" + ",".join("?" * len(keys)) + ")"
        return [con.execute(s + ph, keys).fetchall() for s, _ in stmts]
    i = iter(range(10**9))
    return {"one": _latencies(lambda: read(ones[next(i) % len(ones)]), args.reps_1),
            "hundred": _latencies(lambda: read(hundreds[next(i) % len(hundreds)]), args.reps_100)}


TASKS = {"prepare": prepare, "pit": pit, "floor": floor, "materialize": materialize, "online": online,
         "online-floor": online_floor, **redis_bench.TASKS}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("data", type=Path)
    p.add_argument("repo", type=Path)
    p.add_argument("--save-output", default=None)
    p.add_argument("--reps-1", type=int, default=2000)
    p.add_argument("--reps-100", type=int, default=500)
    args = p.parse_args()
    meta = json.loads((args.data / "meta.json").read_text())
    out = TASKS[args.task](args.data, args.repo, meta, args)
    out["peak_rss_mb"] = peak_rss_mb()
    out["at"] = datetime.now(timezone.utc).isoformat()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
