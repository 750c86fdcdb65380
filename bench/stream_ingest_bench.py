"""Sustained stream ingest: events/s through the exactly-once consumer (validation, offline append with positions,
online newest-wins push) from an in-memory source, so the consumer, not a stream service, is measured.

    python -m bench.stream_ingest_bench                          # 200k events, SQLite online
    python -m bench.stream_ingest_bench --online redis://127.0.0.1:6392/0 --reps 5 \\
        --compare main=../wt-main/.venv/bin/python --publish    # against another checkout, alternately

Each run is a fresh process on a fresh repo (and an emptied Redis db), timed from the first read to the last
commit; with ``--compare LABEL=PYTHON`` another checkout's python runs the same bench code (its own skewless) in
turn, run by run, so load from other programs falls on both alike. Result: ``bench/out/stream_ingest.json`` (with
``--publish`` also ``bench/results/stream_ingest.md``).

Target (issue 16): >= 100k events/s into Redis + offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

T = datetime(2024, 1, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent
TARGET = 100_000


def one(a) -> dict:
    """One run in this process."""
    import skewless as sk
    from skewless.streams.memory import MemorySource

    path = Path(a.dir)
    shutil.rmtree(path, ignore_errors=True)
    store = sk.init_repo(path)
    if a.online:
        cfg = yaml.safe_load((path / "skewless.yaml").read_text())
        cfg["online"] = {"url": a.online} if isinstance(cfg.get("online"), dict) else a.online
        (path / "skewless.yaml").write_text(yaml.safe_dump(cfg))
        if a.online.startswith("redis://"):
            import redis

            redis.Redis.from_url(a.online).flushdb()  # newest-wins would skip rows an earlier run wrote
        store = sk.FeatureStore(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])])
    shards: dict[str, list] = {f"s{i}": [] for i in range(4)}
    for n in range(a.events):
        shards[f"s{n % 4}"].append({"k": n % 50_000, "event_timestamp": (T + timedelta(seconds=n)).isoformat(),
                                    "x": n * 1.0})
    store.online  # noqa: B018 - the adapter imported before the clock starts, as in a running consumer
    t, c = time.perf_counter(), time.process_time()
    st = store.stream("v", MemorySource(shards), consumer="bench", max_records=a.max_records, until_caught_up=True,
                      compact_every=None)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    return {"events": a.events, "seconds": round(dt, 3), "events_per_s": round(a.events / dt),
            "cpu_s": round(cpu, 3), "micro_batches": st.batches, "online": a.online or "sqlite"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--max-records", type=int, default=50_000)
    ap.add_argument("--online", default=None, help="an online store URL (default: the repo's SQLite)")
    ap.add_argument("--dir", default=".bench/stream_ingest")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PYTHON")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a)))
        return
    pythons = {"this checkout": sys.executable, **dict(c.split("=", 1) for c in a.compare)}
    args = ["-m", "bench.stream_ingest_bench", "--one", "--events", str(a.events), "--max-records",
            str(a.max_records), "--dir", a.dir] + (["--online", a.online] if a.online else [])
    runs: dict[str, list[dict]] = {label: [] for label in pythons}
    for _rep in range(a.reps):
        for label, python in pythons.items():
            out = subprocess.run([python, *args], cwd=ROOT, capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(label, runs[label][-1], flush=True)
    summary = {label: {"median_events_per_s": round(statistics.median(r["events_per_s"] for r in rs)),
                       "best_events_per_s": max(r["events_per_s"] for r in rs),
                       "median_cpu_s": statistics.median(r["cpu_s"] for r in rs), "runs": rs}
               for label, rs in runs.items()}
    result = {"events": a.events, "max_records": a.max_records, "online": a.online or "sqlite", "reps": a.reps,
              "load_1min": os.getloadavg()[0], "target_events_per_s": TARGET, "results": summary}
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "stream_ingest.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in summary.items()}, indent=1))
    if a.publish:
        lines = ["# Sustained stream ingest\n",
                 f"`python -m bench.stream_ingest_bench --online {a.online or '(SQLite)'} --reps {a.reps}"
                 + "".join(f" --compare {c.split('=', 1)[0]}=..." for c in a.compare)
                 + " --publish` (see `bench/stream_ingest_bench.py`): "
                 f"{a.events:,} events from an in-memory source through the exactly-once consumer "
                 f"(micro-batches of up to {a.max_records:,}), offline Delta append with positions + online push; "
                 "each run a fresh process and repo, the checkouts alternating run by run on the shared 2-core "
                 f"machine (1-minute load {os.getloadavg()[0]:.1f} at the end).\n",
                 "| code | median events/s | best events/s | runs (events/s) | consumer CPU s (median) | "
                 "goal >= 100k/s |", "|---|---:|---:|---|---:|---|"]
        for label, s in summary.items():
            lines.append(f"| {label} | {s['median_events_per_s']:,} | {s['best_events_per_s']:,} | "
                         f"{', '.join(format(r['events_per_s'], ',') for r in s['runs'])} | {s['median_cpu_s']:.2f} | "
                         f"{'met' if s['median_events_per_s'] >= TARGET else 'missed'} |")
        lines.append("\nThe consumer's CPU seconds (all its threads; Redis's own CPU is not counted) are disturbed less "
                     "by other programs than wall time.")
        (ROOT / "bench" / "results" / "stream_ingest.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
