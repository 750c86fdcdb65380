"""The generated workload's shape (views, feature references, entity key sets), read from its ``meta.json``, and
the measurement every online store shares (materialize). Used by ``measure.py`` (embedded stores) and
``redis_bench.py`` (Redis), so neither imports the other's tasks.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import skewless as sk


def views_of(meta: dict) -> list[tuple[str, list[str]]]:
    n, f = meta["params"]["views"], meta["params"]["features_per_view"]
    return [(f"view_{i}", [f"f{i}_{j}" for j in range(f)]) for i in range(n)]


def feature_refs(meta):
    return [f"{v}:{f}" for v, fs in views_of(meta) for f in fs]


def entity_sets(meta, seed=0):
    rnd = random.Random(seed)
    lo, hi = meta["driver_id_range"]
    return [[rnd.randint(lo, hi)] for _ in range(200)], [[rnd.randint(lo, hi) for _ in range(100)] for _ in range(50)]


def materialize(data: Path, repo: Path, meta: dict, args) -> dict:
    store = sk.FeatureStore(repo)
    for v, _ in views_of(meta):
        store.online.drop_view(v)
        store.online.set_meta(f"materialize/{v}", None)
    start = datetime.fromisoformat(meta["time_range"]["start"]) - timedelta(days=1)
    end = datetime.fromisoformat(meta["time_range"]["end_exclusive"]) + timedelta(days=1)
    t = time.perf_counter()
    res = store.materialize(start, end)
    wall = time.perf_counter() - t
    rows = sum(r.rows for r in res)
    return {"wall_s": round(wall, 3), "rows_written": rows, "rows_per_s": round(rows / wall),
            "feature_rows_scanned": meta["params"]["feature_rows"]}
