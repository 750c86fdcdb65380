"""What a training-set split costs (issue 20): ``Split.assign`` alone, and a DuckDB training set with and without
a split.

    .venv/bin/python -m bench.split_bench [--rows 1000000] [--reps 3] [--out bench/out/split.json]

``assign``: ``--rows`` rows split by time, by entity (one Int64 key with 10,000 distinct values, with every value
distinct, and two keys Int64 + String) and by both; each the best of ``--reps`` (wall and this process's CPU). The
entity split hashes each distinct entity once (SHA-256 in Python), so its cost follows the distinct entities.
``training set``: a local repo with one view of ``--rows`` rows over 100,000 entities, ``--rows`` entity rows;
``to_arrow()`` without a split, then with an entity+time split; the median of ``--reps`` of each, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import skewless as sk

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1e6)
CUT = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def assign_figures(n: int, reps: int) -> dict:
    i = np.arange(n)
    ts = pa.array(T0_US + i * 86_400_000_000 // n, pa.timestamp("us", "UTC"))
    tables = {
        "time": (sk.Split(time={"test": CUT}), pa.table({"event_timestamp": ts})),
        "entity, 10k entities": (sk.Split(entity={"train": .8, "test": .2}, keys=["k"]),
                                 pa.table({"k": i % 10_000})),
        "entity, all distinct": (sk.Split(entity={"train": .8, "test": .2}, keys=["k"]), pa.table({"k": i})),
        "entity, two keys, 10k": (sk.Split(entity={"train": .8, "test": .2}, keys=["k", "s"]),
                                  pa.table({"k": i % 100, "s": pa.array((i % 10_000).astype(str))})),
        "both, 10k entities": (sk.Split(time={"test": CUT}, entity={"train": .8, "test": .2}, keys=["k"]),
                               pa.table({"k": i % 10_000, "event_timestamp": ts})),
    }
    out = {}
    for name, (split, table) in tables.items():
        runs = [timed(lambda s=split, t=table: s.assign(t)) for _ in range(reps)]
        out[name] = {"wall_s": round(min(r[0] for r in runs), 4), "cpu_s": round(min(r[1] for r in runs), 4)}
        print(f"assign {name}: {n:,} rows: {out[name]['wall_s'] * 1000:.0f} ms", flush=True)
    return out


def training_figures(n: int, reps: int) -> dict:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="skewless-split-bench-") as tmp:
        store = sk.init_repo(Path(tmp) / "repo")
        ent = sk.Entity("user", join_keys=["user_id"], dtype=sk.Int64)
        store.apply([ent, sk.FeatureView("v", [ent], [sk.Field("x", sk.Float64)], online=False)])
        store.ingest("v", pd.DataFrame({"user_id": rng.integers(0, 100_000, n), "x": rng.normal(size=n),
                                        "event_timestamp": pd.to_datetime(T0_US + rng.integers(0, 86_400_000_000, n),
                                                                          unit="us", utc=True)}), online=False)
        ents = pd.DataFrame({"user_id": rng.integers(0, 100_000, n), "event_timestamp": pd.to_datetime(
            T0_US + rng.integers(0, 86_400_000_000, n), unit="us", utc=True)})
        split = sk.Split(time={"test": CUT}, entity={"train": .8, "test": .2})
        sides: dict[str, list] = {"no split": [], "split": []}
        for _ in range(reps):
            sides["no split"].append(timed(lambda: store.get_historical_features(ents, ["v:x"]).to_arrow()))
            sides["split"].append(timed(lambda: store.get_historical_features(ents, ["v:x"], split=split).to_arrow()))
    out = {k: {"wall_s": round(statistics.median(r[0] for r in v), 3),
               "cpu_s": round(statistics.median(r[1] for r in v), 3)} for k, v in sides.items()}
    out["overhead_wall"] = round(out["split"]["wall_s"] / out["no split"]["wall_s"] - 1, 3)
    print(f"training set, {n:,} rows: no split {out['no split']['wall_s']} s, split {out['split']['wall_s']} s",
          flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    result = {"rows": a.rows, "load_avg": os.getloadavg(), "assign": assign_figures(a.rows, a.reps),
              "training_set": training_figures(a.rows, a.reps)}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
