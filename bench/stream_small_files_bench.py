"""Small files from stream appends: PIT speed on a history built from many small appends, before and after
compaction, against the same rows ingested at once.

    python -m bench.stream_small_files_bench                       # 10,000 appends x 100 rows = 1M rows
    python -m bench.stream_small_files_bench --appends 1000        # quicker

Each small append is the stream consumer's offline commit (``OfflineStore.append(..., progress=)``: one Delta
commit carrying the consumer's positions), without its online push (which does not touch the history). Then
``get_historical_features`` of 100k entity rows (``to_arrow``), best of ``--reps``, on: the once-ingested history,
the 10,000-commit history, and that history after ``FeatureStore.compact``. Answers are checked equal. With
``--publish`` also ``bench/results/stream_small_files.{md,json}``.

Target (issue 16): after compaction, within 1.5x of the same rows ingested at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import skewless as sk
from skewless.ingest import prepare
from skewless.offline.base import StreamProgress
from skewless.timeutil import now as utc_now

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent


def repo(path: Path) -> sk.FeatureStore:
    shutil.rmtree(path, ignore_errors=True)
    store = sk.init_repo(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], online=False, schema=[
        sk.Field("k", sk.Int64), sk.Field("x", sk.Float64), sk.Field("y", sk.Int64)])])
    return store


def rows(n: int, keys: int, seed: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(T0) + pd.to_timedelta(np.sort(rng.integers(0, 30 * 86_400, n)), unit="s")
    return pd.DataFrame({"k": rng.integers(0, keys, n), "event_timestamp": ts, "x": rng.random(n),
                         "y": np.arange(n)})


def pit(store: sk.FeatureStore, entity: pd.DataFrame, reps: int):
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = store.get_historical_features(entity, ["v:x", "v:y"]).to_arrow()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=10_000)
    ap.add_argument("--rows-per-append", type=int, default=100)
    ap.add_argument("--entity-rows", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=".bench/stream_small_files")
    ap.add_argument("--publish", action="store_true", help="also write bench/results/stream_small_files.{md,json}")
    a = ap.parse_args()
    base = Path(a.dir)
    n, keys = a.appends * a.rows_per_append, 10_000
    data = rows(n, keys)
    rng = np.random.default_rng(7)
    entity = pd.DataFrame({"k": rng.integers(0, keys, a.entity_rows),
                           "event_timestamp": pd.Timestamp(T0) + pd.to_timedelta(
                               rng.integers(0, 31 * 86_400, a.entity_rows), unit="s")})

    once = repo(base / "once")
    once.ingest("v", data)
    small = repo(base / "small")
    view = small.get_feature_view("v")
    t = time.perf_counter()
    for i in range(a.appends):
        part = data.iloc[i * a.rows_per_append:(i + 1) * a.rows_per_append]
        table = prepare(view, part, batch=i + 1, write_time=utc_now())
        small.offline.append("v", table, batch=i + 1, tie_check=lambda new, prior: small.engine.tie_level(
            view, new, prior), history_stats=lambda prior: small.engine.packing_stats(view, prior),
            progress=StreamProgress("bench", i + 1, {"shard-0": str((i + 1) * a.rows_per_append - 1)}))
    build_s = time.perf_counter() - t

    t_once, r_once = pit(once, entity, a.reps)
    t_small, r_small = pit(small, entity, a.reps)
    t = time.perf_counter()
    done = small.compact("v")
    compact_s = time.perf_counter() - t
    t_comp, r_comp = pit(small, entity, a.reps)
    same = r_once.select(["x", "y"]).equals(r_small.select(["x", "y"])) and \
        r_once.select(["x", "y"]).equals(r_comp.select(["x", "y"]))
    result = {"appends": a.appends, "rows": n, "entity_rows": a.entity_rows, "build_s": round(build_s, 1),
              "appends_per_s": round(a.appends / build_s, 1), "pit_once_s": round(t_once, 3),
              "pit_small_files_s": round(t_small, 3), "pit_compacted_s": round(t_comp, 3),
              "compact_s": round(compact_s, 1), "files_removed": done["files_removed"],
              "ratio_compacted_vs_once": round(t_comp / t_once, 2), "ratio_uncompacted_vs_once": round(t_small / t_once, 2),
              "answers_equal": bool(same), "target": "ratio_compacted_vs_once <= 1.5"}
    result["load_1min"] = os.getloadavg()[0]
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream_small_files.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if a.publish:
        publish(result)


def publish(result: dict) -> None:
    """``bench/results/stream_small_files.{md,json}`` from a result of ``main``."""
    r = result
    lines = ["# Small files from stream appends\n",
             f"`python -m bench.stream_small_files_bench --appends {r['appends']} --rows-per-append "
             f"{r['rows'] // r['appends']} --publish` (see `bench/stream_small_files_bench.py`) on the shared 2-core "
             f"machine (1-minute load {r.get('load_1min', float('nan')):.1f} at the end): a history of "
             f"{r['rows']:,} rows built from {r['appends']:,} stream appends (each one Delta commit with the "
             f"consumer's positions, tie check included) against the same rows ingested at once; "
             f"`get_historical_features` of {r['entity_rows']:,} entity rows, best of 3, answers checked equal "
             f"({'equal' if r['answers_equal'] else 'NOT equal'}).\n",
             "| history | PIT (s) | vs ingested at once | goal |", "|---|---:|---:|---|",
             f"| ingested at once | {r['pit_once_s']:.3f} | 1.00x | |",
             f"| {r['appends']:,} small appends | {r['pit_small_files_s']:.3f} | {r['ratio_uncompacted_vs_once']:.2f}x | |",
             f"| after `FeatureStore.compact` ({r['files_removed']:,} files rewritten in {r['compact_s']} s) | "
             f"{r['pit_compacted_s']:.3f} | {r['ratio_compacted_vs_once']:.2f}x | "
             f"{'met' if r['ratio_compacted_vs_once'] <= 1.5 else 'missed'} (<= 1.5x) |", "",
             f"Building the history: {r['build_s']} s, {r['appends_per_s']} appends/s.", ""]
    results = ROOT / "bench" / "results"
    (results / "stream_small_files.md").write_text("\n".join(lines))
    (results / "stream_small_files.json").write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
