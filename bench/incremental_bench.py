"""Incremental batch ingest from a source (issue 16's goal: ingesting 1% new rows costs <= 3% of a full ingest).

    .venv/bin/python -m bench.incremental_bench [--rows 10000000] [--files 100] [--reps 3] [--out bench/out/incremental.json]
                                                [--publish]   # also bench/results/incremental_ingest.md

A view (one entity key, three features) over a ``ParquetSource`` folder with ``watermark="event_timestamp"``; the
source holds ``--rows`` rows in ``--files`` files written in event order (as exports by day/hour are). Both runs go
through ``store.ingest(view)`` with the embedded defaults (local Delta history, SQLite online store), online push
included:
  full         the first ingest of the whole source into a fresh repo
  incremental  after the full ingest, one new file with 1% more rows (newer events); ingest reads every file's footer,
               skips the row groups below the watermark by their statistics, validates and commits the new rows only
Both are measured for an online view (the push of the new rows' entities to SQLite included) and an offline-only one
(``online=False``). Each figure is the median of ``--reps`` runs, each in a fresh copy of the repo.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import skewless as sk

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent
ENTITIES = 100_000


def chunk(start: int, n: int) -> pa.Table:
    i = np.arange(start, start + n, dtype=np.int64)
    us = int(T0.timestamp() * 1e6) + i * 1_000_000  # one event a second, in order
    return pa.table({"user_id": i % ENTITIES, "event_timestamp": pa.array(us, pa.timestamp("us", "UTC")),
                     "amount": i * 0.5, "count": i % 97, "score": (i % 1000) / 1000.0})


def make_repo(path: Path, online: bool = True) -> sk.FeatureStore:
    store = sk.init_repo(path)
    (path / "data" / "src").mkdir(parents=True)
    user = sk.Entity("user", ["user_id"], dtype=sk.Int64)
    store.apply([user, sk.FeatureView("activity", [user], [
        sk.Field("amount", sk.Float64), sk.Field("count", sk.Int64), sk.Field("score", sk.Float64)],
        source=sk.ParquetSource("data/src", watermark="event_timestamp"), online=online)])
    return store


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "incremental.json")
    ap.add_argument("--publish", action="store_true")
    args = ap.parse_args()
    new_rows = args.rows // 100
    results = {}
    with tempfile.TemporaryDirectory(prefix="skewless-incr-bench-") as tmp:
        per = args.rows // args.files
        for online in (True, False):
            full, incr = [], []
            base = make_repo(Path(tmp) / f"base-{online}", online)
            for f in range(args.files):
                pq.write_table(chunk(f * per, per), base.repo_path / "data" / "src" / f"part-{f:04d}.parquet")
            for rep in range(args.reps):
                path = Path(tmp) / f"run{rep}"
                shutil.copytree(base.repo_path, path)
                store = sk.FeatureStore(path)
                full.append(timed(lambda s=store: s.ingest("activity")))
                pq.write_table(chunk(args.files * per, new_rows), path / "data" / "src" / "part-new.parquet")
                store = sk.FeatureStore(path)
                got = []
                incr.append(timed(lambda s=store, g=got: g.append(s.ingest("activity"))))
                assert got[0].rows == new_rows, got
                shutil.rmtree(path)
            shutil.rmtree(base.repo_path)
            r = {"full_s": statistics.median(full), "incremental_s": statistics.median(incr), "full_runs_s": full,
                 "incremental_runs_s": incr}
            r["ratio"] = r["incremental_s"] / r["full_s"]
            r["goal_met"] = r["ratio"] <= 0.03
            results["online" if online else "offline_only"] = r
    result = {"rows": args.rows, "files": args.files, "new_rows": new_rows, "reps": args.reps, **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    if args.publish:
        lines = ["# Incremental source ingest\n",
                 "`.venv/bin/python -m bench.incremental_bench --publish` (see `bench/incremental_bench.py`), on the "
                 "2-core development machine (shared with other work while it ran), embedded defaults (local Delta "
                 "history, SQLite online store).\n",
                 "| view | source rows | files | new rows | full ingest (s) | incremental ingest (s) | ratio | goal <= 3% |",
                 "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, r in results.items():
            lines.append(f"| {name.replace('_', ' ')} | {args.rows:,} | {args.files} | {new_rows:,} | {r['full_s']:.2f} | "
                         f"{r['incremental_s']:.3f} | {r['ratio']:.1%} | {'met' if r['goal_met'] else 'missed'} |")
        lines.append("")
        for name, r in results.items():
            lines.append(f"- {name.replace('_', ' ')}: medians of {args.reps} runs (full: "
                         f"{', '.join(f'{v:.2f}' for v in r['full_runs_s'])} s; incremental: "
                         f"{', '.join(f'{v:.3f}' for v in r['incremental_runs_s'])} s).")
        (ROOT / "bench" / "results" / "incremental_ingest.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
