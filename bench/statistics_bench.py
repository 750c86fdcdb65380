"""What write-time statistics cost an ingest (issue 18's target: at most 5% more than with ``statistics: false``).

    .venv/bin/python -m bench.statistics_bench [--rows 1000000] [--reps 5] [--views numeric,mixed,highcard]
                                               [--online] [--out bench/out/statistics.json]

Three views, 1M rows each (``--rows``): ``numeric`` (six Float64 features), ``mixed`` (Float64, Int64, a 50-value
String, Bool) and ``highcard`` (one String feature whose every value is distinct). Per rep, each side gets a fresh
repo (local Delta history; ``--online``: the SQLite online store too, else ``online=False``), one untimed ingest so
the timed one appends to an existing history (the tie check against it included), then the timed ingest of the
rows; the sides alternate, statistics on then off. Figures: the median wall and CPU seconds (this process, every
thread) of each side and the overhead of on over off; the host's load average is recorded with them (a shared
host's neighbours move wall times by more than the overhead measured: compare the CPU column too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

import skewless as sk

T0 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1e6)


def table(kind: str, n: int, seed: int) -> tuple[pa.Table, list]:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    base = {"user_id": i % 200_000, "event_timestamp": pa.array(T0 + seed * n * 1000 + i * 1000,
                                                                pa.timestamp("us", "UTC"))}
    if kind == "numeric":
        cols = {f"f{j}": rng.normal(size=n) for j in range(6)}
        fields = [sk.Field(f"f{j}", sk.Float64) for j in range(6)]
    elif kind == "highcard":
        cols = {"s": pa.array(np.char.add(f"user-{seed}-", rng.permutation(n).astype(str)))}
        fields = [sk.Field("s", sk.String)]
    else:
        cats = np.array([f"cat{k}" for k in range(50)])
        cols = {"a": rng.normal(size=n), "b": rng.integers(0, 1000, n), "c": pa.array(cats[rng.integers(0, 50, n)]),
                "d": rng.random(n) < 0.3}
        fields = [sk.Field("a", sk.Float64), sk.Field("b", sk.Int64), sk.Field("c", sk.String),
                  sk.Field("d", sk.Bool)]
    return pa.table({**base, **cols}), fields


def one(kind: str, rows: int, on: bool, online: bool, work: Path, rep: int) -> tuple[float, float]:
    repo = work / f"{kind}-{'on' if on else 'off'}-{rep}"
    store = sk.init_repo(repo)
    store.config.statistics = on
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    warm, fields = table(kind, rows // 10, 1000 + rep)
    store.apply([user, sk.FeatureView("v", [user], fields, online=online)])
    store.ingest("v", warm, online=online)
    data, _ = table(kind, rows, rep)
    t, c = time.perf_counter(), time.process_time()
    store.ingest("v", data, online=online)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    shutil.rmtree(repo, ignore_errors=True)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--views", default="numeric,mixed,highcard")
    ap.add_argument("--online", action="store_true")
    ap.add_argument("--out", default="bench/out/statistics.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skewless-stats-bench-"))
    results = {"rows": args.rows, "reps": args.reps, "online": args.online, "cpus": os.cpu_count(),
               "load_before": os.getloadavg(), "views": {}}
    try:
        for kind in args.views.split(","):
            runs: dict[str, list] = {"on": [], "off": []}
            for rep in range(args.reps):
                for side in ("on", "off"):
                    runs[side].append(one(kind, args.rows, side == "on", args.online, work, rep))
            med = {side: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
                   for side, r in runs.items()}
            res = {"on_wall_s": round(med["on"][0], 3), "off_wall_s": round(med["off"][0], 3),
                   "on_cpu_s": round(med["on"][1], 3), "off_cpu_s": round(med["off"][1], 3),
                   "overhead_wall_pct": round(100 * (med["on"][0] / med["off"][0] - 1), 1),
                   "overhead_cpu_pct": round(100 * (med["on"][1] / med["off"][1] - 1), 1),
                   "runs": runs, "load": os.getloadavg()}
            results["views"][kind] = res
            print(f"{kind}: on {res['on_wall_s']} s / off {res['off_wall_s']} s wall "
                  f"({res['overhead_wall_pct']:+.1f}%), cpu {res['on_cpu_s']} / {res['off_cpu_s']} s "
                  f"({res['overhead_cpu_pct']:+.1f}%), load {res['load'][0]:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
