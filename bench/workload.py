"""The generated workload's shape (views, feature references, entity key sets), read from its ``meta.json``, the
measurement every online store shares (materialize), and repos that share the benchmark repo's registry and
histories but move one store or engine (``derived_repo``). Used by ``measure.py`` (embedded stores),
``redis_bench.py`` (Redis) and ``spark_bench.py`` (the Spark engine), so none imports another's tasks.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

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


def derived_repo(repo: Path, out: Path, *, online: dict | None = None, offline: dict | None = None) -> Path:
    """A repo at ``out`` reading ``repo``'s registry and Delta histories (absolute paths), with ``online`` as its
    online store and ``offline``'s keys (e.g. ``engine``, ``options``) over its offline section when given."""
    cfg = yaml.safe_load((repo / "skewless.yaml").read_text())

    def abs_path(p: str) -> str:
        return p if "://" in p or Path(p).is_absolute() else str((repo / p).resolve())
    registry = cfg["registry"] if isinstance(cfg["registry"], str) else cfg["registry"]["url"]
    base = cfg["offline"] if isinstance(cfg["offline"], dict) else {"url": cfg["offline"]}
    doc = {"project": cfg["project"], "registry": abs_path(registry),
           "offline": {**base, "url": abs_path(base["url"]), **(offline or {})}}
    if online is not None:
        doc["online"] = online
    elif "online" in cfg:
        doc["online"] = cfg["online"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "skewless.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out
