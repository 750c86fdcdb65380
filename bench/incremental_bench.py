"""Incremental batch ingest from a source (issue 16's goal: ingesting 1% new rows costs <= 3% of a full ingest).

    .venv/bin/python -m bench.incremental_bench [--rows 10000000] [--files 100] [--reps 3] [--out bench/out/incremental.json]
                                                [--compare LABEL=PYTHON] [--publish]   # bench/results/incremental_ingest.md

A view (one entity key, three features) over a ``ParquetSource`` folder with ``watermark="event_timestamp"``; the
source holds ``--rows`` rows in ``--files`` files written in event order (as exports by day/hour are). Both runs go
through ``store.ingest(view)`` with the embedded defaults (local Delta history, SQLite online store), online push
included:
  full         the first ingest of the whole source into a fresh repo
  incremental  after the full ingest, one new file with 1% more rows (newer events); ingest reads every file's footer,
               skips the row groups below the watermark by their statistics, validates and commits the new rows only
  fresh process  the same incremental ingest on a copy of the repo as the full ingest left it, in a process that did
               nothing before (per-process set-up included, Python's start and `import skewless` not)
Both are measured for an online view (the push of the new rows' entities to SQLite included) and an offline-only one
(``online=False``). Each figure is the median of ``--reps`` runs, each a fresh process on a fresh copy of the repo;
``--compare LABEL=PYTHON`` runs another checkout's skewless (its venv's python, this bench's code) in turn, run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
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


def timed(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (every thread: DuckDB's too) spent in ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def one(base: Path, run: Path, files: int, per: int, new_rows: int) -> dict:
    """One full ingest then one incremental ingest, in a fresh copy of ``base`` (this process's skewless); and the
    same incremental ingest on a copy of the repo as the full ingest left it, in a process of its own that did
    nothing before (``cold``: what the first ingest of a scheduled job's process costs, its per-process set-up
    included — a DuckDB database, the stores' first use — but not Python's start and ``import skewless``)."""
    shutil.copytree(base, run)
    store = sk.FeatureStore(run)
    full, full_cpu = timed(lambda: store.ingest("activity"))
    pq.write_table(chunk(files * per, new_rows), run / "data" / "src" / "part-new.parquet")
    cold_run = run.with_name(run.name + "-cold")
    shutil.copytree(run, cold_run)
    store = sk.FeatureStore(run)
    got = []
    incr, incr_cpu = timed(lambda: got.append(store.ingest("activity")))
    assert got[0].rows == new_rows, got
    shutil.rmtree(run)
    out = subprocess.run([sys.executable, "-m", "bench.incremental_bench", "--cold", str(cold_run), "--rows", "0"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    cold = json.loads(out.stdout.strip().splitlines()[-1])
    assert cold["rows"] == new_rows, cold
    shutil.rmtree(cold_run)
    return {"full_s": full, "incremental_s": incr, "full_cpu_s": full_cpu, "incremental_cpu_s": incr_cpu,
            "cold_incremental_s": cold["s"], "cold_incremental_cpu_s": cold["cpu_s"]}


def cold(run: Path) -> dict:
    store = sk.FeatureStore(run)
    got = []
    s, cpu = timed(lambda: got.append(store.ingest("activity")))
    return {"s": s, "cpu_s": cpu, "rows": got[0].rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "incremental.json")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PYTHON",
                    help="another checkout's python: its own skewless runs the same runs, alternating with this one")
    ap.add_argument("--one", nargs=2, metavar=("BASE", "RUN"), help=argparse.SUPPRESS)
    ap.add_argument("--cold", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--publish", action="store_true")
    args = ap.parse_args()
    if args.cold:
        print(json.dumps(cold(args.cold)))
        return
    new_rows = args.rows // 100
    per = args.rows // args.files
    if args.one:
        print(json.dumps(one(Path(args.one[0]), Path(args.one[1]), args.files, per, new_rows)))
        return
    pythons = {"this checkout": sys.executable, **dict(c.split("=", 1) for c in args.compare)}
    results: dict = {label: {} for label in pythons}
    with tempfile.TemporaryDirectory(prefix="skewless-incr-bench-") as tmp:
        for online in (True, False):
            mode = "online" if online else "offline_only"
            base = make_repo(Path(tmp) / f"base-{online}", online)
            for f in range(args.files):
                pq.write_table(chunk(f * per, per), base.repo_path / "data" / "src" / f"part-{f:04d}.parquet")
            runs: dict[str, list[dict]] = {label: [] for label in pythons}
            for rep in range(args.reps):
                for label, python in pythons.items():
                    cmd = [python, "-m", "bench.incremental_bench", "--rows", str(args.rows), "--files",
                           str(args.files), "--one", str(base.repo_path), str(Path(tmp) / f"run{rep}")]
                    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})
                    runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(mode, label, runs[label][-1], flush=True)
            shutil.rmtree(base.repo_path)
            for label, rs in runs.items():
                full, incr = [r["full_s"] for r in rs], [r["incremental_s"] for r in rs]
                r = {"full_s": statistics.median(full), "incremental_s": statistics.median(incr),
                     "full_runs_s": full, "incremental_runs_s": incr,
                     "full_cpu_s": statistics.median(x["full_cpu_s"] for x in rs),
                     "incremental_cpu_s": statistics.median(x["incremental_cpu_s"] for x in rs)}
                r["cold_incremental_s"] = statistics.median(x["cold_incremental_s"] for x in rs)
                r["cold_incremental_runs_s"] = [x["cold_incremental_s"] for x in rs]
                r["cold_incremental_cpu_s"] = statistics.median(x["cold_incremental_cpu_s"] for x in rs)
                r["cold_ratio"] = r["cold_incremental_s"] / r["full_s"]
                r["ratio"] = r["incremental_s"] / r["full_s"]
                r["cpu_ratio"] = r["incremental_cpu_s"] / r["full_cpu_s"]
                r["goal_met"] = r["ratio"] <= 0.03
                results[label][mode] = r
    result = {"rows": args.rows, "files": args.files, "new_rows": new_rows, "reps": args.reps,
              "load_1min": os.getloadavg()[0], **results["this checkout"], "by_code": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    if args.publish:
        cmd = " ".join(["--compare " + c.split("=", 1)[0] + "=..." for c in args.compare])
        lines = ["# Incremental source ingest\n",
                 f"`.venv/bin/python -m bench.incremental_bench --reps {args.reps} {cmd} --publish` (see "
                 "`bench/incremental_bench.py`), on the 2-core development machine (shared with other work while it "
                 f"ran: 1-minute load {os.getloadavg()[0]:.1f} at the end), embedded defaults (local Delta history, "
                 "SQLite online store). Each run is a fresh process on a fresh copy of the repo; with `--compare` the "
                 "checkouts alternate run by run on the same source files.\n",
                 "Wall time is what the goal names; the CPU seconds of the process (all its threads), which load from "
                 "other programs disturbs much less, are given beside it. The incremental ingest runs in the process "
                 "that did the full ingest (the goal's figure); *fresh process* is the same ingest on a copy of the "
                 "repo in a process that did nothing before (a scheduled job's first ingest: its per-process set-up, "
                 "such as the DuckDB database, the stores' first use and the modules they import then, included; "
                 "Python's start and `import skewless` not).\n",
                 "| code | view | source rows | new rows | full ingest (s) | incremental ingest (s) | ratio | goal <= 3% "
                 "| CPU full / incremental (s) | CPU ratio | fresh process (s) | its ratio |",
                 "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for label, modes in results.items():
            for name, r in modes.items():
                lines.append(f"| {label} | {name.replace('_', ' ')} | {args.rows:,} | {new_rows:,} | "
                             f"{r['full_s']:.2f} | {r['incremental_s']:.3f} | {r['ratio']:.1%} | "
                             f"{'met' if r['goal_met'] else 'missed'} | {r['full_cpu_s']:.2f} / "
                             f"{r['incremental_cpu_s']:.3f} | {r['cpu_ratio']:.1%} | "
                             f"{r['cold_incremental_s']:.3f} | {r['cold_ratio']:.1%} |")
        lines.append("")
        for label, modes in results.items():
            for name, r in modes.items():
                lines.append(f"- {label}, {name.replace('_', ' ')}: medians of {args.reps} runs (full: "
                             f"{', '.join(f'{v:.2f}' for v in r['full_runs_s'])} s; incremental: "
                             f"{', '.join(f'{v:.3f}' for v in r['incremental_runs_s'])} s; fresh process: "
                             f"{', '.join(f'{v:.3f}' for v in r['cold_incremental_runs_s'])} s).")
        (ROOT / "bench" / "results" / "incremental_ingest.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
