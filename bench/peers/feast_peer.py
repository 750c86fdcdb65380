#!/usr/bin/env python3
"""Feast peer for the skewless benchmark.

Run with the Feast venv (bench/peers/setup_feast.sh):

    .bench/feast-venv/bin/python bench/peers/feast_peer.py DATA_DIR \
        --task historical|materialize|online --out result.json \
        [--offline-store file|duckdb|spark] [--timeout S] [--max-rss-gb G]

DATA_DIR is the output of bench/datagen.py (entity.parquet, view_*.parquet,
meta.json).  A throw-away Feast repo is built programmatically in a temp dir:
provider local, the chosen offline store (spark: Feast's contrib Spark offline store with
--spark-conf as its spark_conf, each view a SparkSource over the same parquet file), sqlite (or, with --online-store redis, Redis)
online store, one Entity
`driver` (join key driver_id), one FeatureView per view_i over a FileSource of
the parquet file (ttl None: no TTL), and then

  historical   times get_historical_features(entity_df, all features).to_df(); --reps N times it N times in
               the same process (walls_s; wall_s is the first, cold, run)
  materialize  times materialize(start, end) over the full data range
  online       materialize, then times get_online_features() for 1 and for
               100 entities (warm-up, then many repetitions; p50/p99 in ms)

The work runs in a child process; the parent enforces --timeout and a
resident-memory guard (--max-rss-gb, summed over the child's process tree),
and always writes a JSON result (status "ok", "timeout", "oom-guard" or
"error").  peak_rss_mb is the child's ru_maxrss (RUSAGE_CHILDREN in the
parent, so it is known even when the child is killed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timedelta, timezone

# --------------------------------------------------------------------------
# child side: the actual Feast work
# --------------------------------------------------------------------------


def _rss_peak_mb() -> float:
    # Linux: ru_maxrss is in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    # nearest-rank percentile
    k = max(0, min(len(sorted_vals) - 1, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def _latency_summary(samples_s: list[float]) -> dict:
    ms = sorted(x * 1000.0 for x in samples_s)
    return {
        "n": len(ms),
        "p50_ms": round(_pct(ms, 50), 4),
        "p90_ms": round(_pct(ms, 90), 4),
        "p99_ms": round(_pct(ms, 99), 4),
        "mean_ms": round(sum(ms) / len(ms), 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


class _WarnLog:
    """Collect distinct warnings (category: message) without spamming stderr."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def install(self) -> None:
        def show(message, category, filename, lineno, file=None, line=None):
            key = f"{category.__name__}: {str(message).splitlines()[0][:300]}"
            self.seen[key] = self.seen.get(key, 0) + 1

        warnings.showwarning = show
        warnings.simplefilter("default")


def build_store(data_dir: str, meta: dict, offline: str, workdir: str, online: str = "sqlite",
                redis_connection: str = "", spark_conf: dict | None = None):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    if online == "redis":
        # Feast's defaults: newest-wins by reading stored timestamps first (HMGET), then HSET + EXPIRE pipelines
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        online_cfg = RedisOnlineStoreConfig(connection_string=redis_connection)
    else:
        online_cfg = SqliteOnlineStoreConfig(path=os.path.join(workdir, "data", "online.db"))

    if offline == "file":
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig

        offline_cfg = DaskOfflineStoreConfig(type="file")
    elif offline == "duckdb":
        from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

        offline_cfg = DuckDBOfflineStoreConfig()
    elif offline == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStoreConfig

        offline_cfg = SparkOfflineStoreConfig(spark_conf=spark_conf or {})
    else:
        raise ValueError(offline)

    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    config = RepoConfig(
        project="skewless_bench",
        provider="local",
        registry=os.path.join(workdir, "data", "registry.db"),
        online_store=online_cfg,
        offline_store=offline_cfg,
        entity_key_serialization_version=3,
        repo_path=workdir,
    )
    store = FeatureStore(config=config)

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    objs: list = [driver]
    features: list[str] = []
    for v in meta["views"]:
        source_args = dict(name=f"{v['name']}_source", path=os.path.abspath(os.path.join(data_dir, v["path"])),
                           timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
        if offline == "spark":
            from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

            src = SparkSource(file_format="parquet", **source_args)
        else:
            src = FileSource(**source_args)
        fv = FeatureView(
            name=v["name"],
            entities=[driver],
            ttl=None,
            schema=[Field(name="driver_id", dtype=Int64)]
            + [Field(name=f, dtype=Float64) for f in v["features"]],
            source=src,
            online=True,
        )
        objs.append(fv)
        features += [f"{v['name']}:{f}" for f in v["features"]]
    store.apply(objs)
    return store, features


def _time_range(meta: dict) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(meta["time_range"]["start"])
    end = datetime.fromisoformat(meta["time_range"]["end_exclusive"])
    # widen a little: created/event timestamps are < end, entity ts < end
    return start - timedelta(days=1), end + timedelta(days=1)


def task_historical(store, features, data_dir, meta, res, args):
    import pandas as pd

    t = time.perf_counter()
    entity_df = pd.read_parquet(os.path.join(data_dir, "entity.parquet"))
    res["entity_load_s"] = round(time.perf_counter() - t, 4)
    res["entity_rows_in"] = len(entity_df)

    walls = []
    for _ in range(max(1, args.reps)):  # the first run is cold (a Spark store starts its JVM in it)
        t = time.perf_counter()
        job = store.get_historical_features(entity_df=entity_df, features=features)
        df = job.to_df()
        walls.append(round(time.perf_counter() - t, 4))
    res["wall_s"], res["walls_s"] = walls[0], walls
    res["rows_out"] = int(len(df))
    res["cols_out"] = int(len(df.columns))
    res["entity_df_rows_per_s"] = round(len(entity_df) / res["wall_s"], 1)
    # cheap fingerprint for a cross-check against skewless
    feat_cols = [f.split(":", 1)[1] for f in features]
    res["null_counts"] = {c: int(df[c].isna().sum()) for c in feat_cols}
    res["sums"] = {c: float(df[c].sum()) for c in feat_cols}
    if args.save_output:
        df.to_parquet(args.save_output, index=False)
        res["saved_output"] = args.save_output


def _distinct_entities(data_dir: str, meta: dict) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = {}
    for v in meta["views"]:
        col = pq.read_table(os.path.join(data_dir, v["path"]), columns=["driver_id"])["driver_id"]
        out[v["name"]] = int(pc.count_distinct(col).as_py())
    return out


def _online_rows(workdir: str) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(os.path.join(workdir, "data", "online.db"))
    try:
        out = {}
        for (name,) in con.execute("select name from sqlite_master where type='table'"):
            (n,) = con.execute(f'select count(distinct entity_key) from "{name}"').fetchone()
            out[name] = int(n)
        return out
    finally:
        con.close()


def task_materialize(store, features, data_dir, meta, res, args, workdir):
    start, end = _time_range(meta)
    res["materialize_range"] = [start.isoformat(), end.isoformat()]
    t = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    res["wall_s"] = round(time.perf_counter() - t, 4)

    distinct = _distinct_entities(data_dir, meta)
    feature_rows = sum(v["rows"] for v in meta["views"])
    res["entities_written_expected"] = distinct
    try:
        res["online_store_entity_rows"] = _online_rows(workdir) if args.online_store == "sqlite" else "-"
    except Exception as e:  # informative only
        res["online_store_entity_rows"] = f"error: {e!r}"
    written = sum(distinct.values())
    res["entity_rows_written"] = written
    res["feature_rows_scanned"] = feature_rows
    res["entity_rows_per_s"] = round(written / res["wall_s"], 1)
    res["feature_rows_scanned_per_s"] = round(feature_rows / res["wall_s"], 1)
    res["peak_rss_mb_after_materialize"] = round(_rss_peak_mb(), 1)
    if args.check:
        try:
            res["online_check"] = _check_online(store, features, data_dir, meta, args.seed)
        except Exception as e:  # informative only
            res["online_check"] = f"error: {e!r}"


def _check_online(store, features, data_dir, meta, seed, n_keys=1000) -> dict:
    """Compare online values for n_keys random keys with the expected latest row
    (max event_timestamp, then max created_timestamp) read from the parquet."""
    import numpy as np
    import pyarrow.parquet as pq

    lo, hi = meta["driver_id_range"]
    keys = sorted(set(np.random.default_rng(seed + 7).integers(lo, hi + 1, size=n_keys).tolist()))
    got = store.get_online_features(features=features, entity_rows=[{"driver_id": k} for k in keys]).to_dict()
    mism, compared = {}, 0
    for v in meta["views"]:
        df = pq.read_table(os.path.join(data_dir, v["path"]), filters=[("driver_id", "in", keys)]).to_pandas()
        df = df.sort_values(["driver_id", "event_timestamp", "created_timestamp"]).drop_duplicates("driver_id", keep="last")
        exp = df.set_index("driver_id")
        bad = 0
        for i, k in enumerate(got["driver_id"]):
            for f in v["features"]:
                e = exp[f].get(k) if k in exp.index else None
                g = got[f][i]
                compared += 1
                if (e is None) != (g is None) or (e is not None and abs(e - g) > 1e-12):
                    bad += 1
        mism[v["name"]] = bad
    return {"keys": len(keys), "values_compared": compared, "mismatched_values": mism}


def task_online(store, features, data_dir, meta, res, args, workdir):
    import random

    task_materialize(store, features, data_dir, meta, res, args, workdir)
    res["materialize"] = {k: res.pop(k) for k in list(res) if k in (
        "materialize_range", "wall_s", "entities_written_expected", "online_store_entity_rows",
        "entity_rows_written", "feature_rows_scanned", "entity_rows_per_s", "feature_rows_scanned_per_s")}

    lo, hi = meta["driver_id_range"]
    rng = random.Random(args.seed)
    out = {}
    for batch in (1, 100):
        reps = args.reps_1 if batch == 1 else args.reps_100

        def rows(batch=batch):
            return [{"driver_id": rng.randint(lo, hi)} for _ in range(batch)]

        for _ in range(args.warmup):
            store.get_online_features(features=features, entity_rows=rows()).to_dict()
        # primary: the call itself (Feast does the lookup + proto assembly here)
        lat = []
        for _ in range(reps):
            er = rows()
            t = time.perf_counter()
            store.get_online_features(features=features, entity_rows=er)
            lat.append(time.perf_counter() - t)
        # secondary: call + .to_dict() (what a Python caller usually needs)
        lat_d = []
        nonnull = 0
        for _ in range(max(1, reps // 2)):
            er = rows()
            t = time.perf_counter()
            d = store.get_online_features(features=features, entity_rows=er).to_dict()
            lat_d.append(time.perf_counter() - t)
        nonnull = sum(x is not None for x in d[features[0].split(":", 1)[1]])
        out[f"batch_{batch}"] = {
            "get_online_features": _latency_summary(lat),
            "get_online_features_to_dict": _latency_summary(lat_d),
            "entities_per_s_at_p50": round(batch / (_latency_summary(lat)["p50_ms"] / 1000.0), 1),
            "last_response_nonnull_first_feature": nonnull,
        }
    res["online"] = out
    res["features_per_request"] = len(features)


def child_main(args) -> int:
    wl = _WarnLog()
    wl.install()
    res: dict = {"status": "error"}
    t_all = time.perf_counter()
    try:
        import feast

        res["feast_version"] = feast.__version__
        with open(os.path.join(args.data_dir, "meta.json")) as f:
            meta = json.load(f)
        workdir = args.workdir or tempfile.mkdtemp(prefix="feast_peer_")
        os.makedirs(workdir, exist_ok=True)
        res["workdir"] = workdir
        t = time.perf_counter()
        store, features = build_store(args.data_dir, meta, args.offline_store, workdir, args.online_store,
                                      args.redis, json.loads(args.spark_conf))
        res["setup_s"] = round(time.perf_counter() - t, 4)
        res["n_features"] = len(features)
        if args.task == "historical":
            task_historical(store, features, args.data_dir, meta, res, args)
        elif args.task == "materialize":
            task_materialize(store, features, args.data_dir, meta, res, args, workdir)
        else:
            task_online(store, features, args.data_dir, meta, res, args, workdir)
        res["status"] = "ok"
    except BaseException as e:  # noqa: BLE001 - report everything
        res["status"] = "error"
        res["error"] = f"{type(e).__name__}: {e}"[:2000]
        res["traceback"] = traceback.format_exc()[-4000:]
    res["child_total_s"] = round(time.perf_counter() - t_all, 4)
    res["peak_rss_mb"] = round(_rss_peak_mb(), 1)
    res["warnings"] = wl.seen
    with open(args.child_out, "w") as f:
        json.dump(res, f, indent=2, default=str)
    return 0 if res["status"] == "ok" else 1


# --------------------------------------------------------------------------
# parent side: timeout + memory guard + result file
# --------------------------------------------------------------------------


def _tree_rss_bytes(pid: int) -> int:
    """RSS of pid and all its descendants (reads /proc; Linux only)."""
    children: dict[int, list[int]] = {}
    rss_pages: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            fields = st[st.rfind(")") + 2:].split()
            ppid = int(fields[1])
            children.setdefault(ppid, []).append(int(d))
            rss_pages[int(d)] = int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss_pages.get(p, 0)
        stack.extend(children.get(p, []))
    return total * os.sysconf("SC_PAGE_SIZE")


def parent_main(args) -> int:
    fd, child_out = tempfile.mkstemp(prefix="feast_peer_child_", suffix=".json")
    os.close(fd)
    os.unlink(child_out)
    own_workdir = args.workdir is None
    workdir = args.workdir or tempfile.mkdtemp(prefix="feast_peer_")
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", child_out] + sys.argv[1:]
    if own_workdir:
        cmd += ["--workdir", workdir]
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "default")
    # feast.metrics creates a prometheus multiprocess dir in /tmp at import and
    # removes it only at a clean exit; keep it in the workdir so killed runs
    # don't leak it
    if "PROMETHEUS_MULTIPROCESS_DIR" not in env and own_workdir:
        env["PROMETHEUS_MULTIPROCESS_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(workdir, "prom")
        os.makedirs(env["PROMETHEUS_MULTIPROCESS_DIR"], exist_ok=True)
    log_path = args.out + ".log"
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    max_rss = 0
    status = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.perf_counter() - t0
            rss = _tree_rss_bytes(proc.pid)
            max_rss = max(max_rss, rss)
            if args.timeout and elapsed > args.timeout:
                status = "timeout"
            elif args.max_rss_gb and rss > args.max_rss_gb * 2**30:
                status = "oom-guard"
            if status:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child's own session only
                except ProcessLookupError:
                    pass
                proc.wait()
                break
    wall = time.perf_counter() - t0
    if own_workdir and not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)

    res: dict = {}
    if status is None and os.path.exists(child_out):
        with open(child_out) as f:
            res = json.load(f)
        os.unlink(child_out)
    elif status is None:
        res = {"status": "error", "error": f"child exited with code {proc.returncode} without a result"
                                          f" (killed by signal?)"}
    else:
        res = {"status": status}
        if status == "timeout":
            res["error"] = f"timeout after {args.timeout:g} s"
        else:
            res["error"] = f"killed: process-tree RSS exceeded {args.max_rss_gb:g} GB"
        res["peak_rss_mb"] = round(ru.ru_maxrss / 1024.0, 1)
        res["warnings"] = {}
    try:
        with open(os.path.join(args.data_dir, "meta.json")) as f:
            meta = json.load(f)
        res["data"] = {k: meta["params"][k] for k in ("entity_rows", "feature_rows", "views", "entities",
                                                      "features_per_view", "seed")}
    except Exception:
        pass
    res.update({
        "peer": "feast",
        "task": args.task,
        "offline_store": args.offline_store,
        "online_store": args.online_store,
        "data_dir": os.path.abspath(args.data_dir),
        "timeout_s": args.timeout,
        "max_rss_gb": args.max_rss_gb,
        "process_wall_s": round(wall, 3),
        "sampled_tree_peak_rss_mb": round(max_rss / 2**20, 1),
        "log": log_path,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        # 1-min load average before/after: >~1 at start means something else was
        # using the (2) cores during the measurement
        "loadavg_1m_start": round(load_start[0], 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    if "peak_rss_mb" not in res:
        res["peak_rss_mb"] = round(ru.ru_maxrss / 1024.0, 1)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2, default=str)
        f.write("\n")
    # short summary on stdout
    summary = {k: res.get(k) for k in ("peer", "task", "offline_store", "status", "error", "wall_s",
                                       "rows_out", "entity_df_rows_per_s", "entity_rows_per_s", "feature_rows_scanned_per_s",
                                       "peak_rss_mb", "process_wall_s")}
    if "online" in res:
        summary["online"] = {b: {k: v["get_online_features"][k] for k in ("p50_ms", "p99_ms")}
                             for b, v in res["online"].items()}
    print(json.dumps(summary))
    return 0 if res.get("status") == "ok" else 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--task", required=True, choices=["historical", "materialize", "online"])
    p.add_argument("--out", required=True, help="result JSON path (a .log with the child's output goes beside it)")
    p.add_argument("--offline-store", default="file", choices=["file", "duckdb", "spark"],
                   help="file = Feast's default dask-based file offline store")
    p.add_argument("--online-store", default="sqlite", choices=["sqlite", "redis"])
    p.add_argument("--redis", default="127.0.0.1:6392,db=1",
                   help="Feast redis connection_string (host:port,db=N) for --online-store redis")
    p.add_argument("--timeout", type=float, default=0, help="kill the run after S seconds (0 = none)")
    p.add_argument("--max-rss-gb", type=float, default=16.0, help="kill the run if its RSS exceeds this (0 = none)")
    p.add_argument("--workdir", default=None, help="Feast repo dir (default: a fresh temp dir)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temp Feast repo")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--reps-1", type=int, default=2000, help="online repetitions for 1 entity")
    p.add_argument("--reps-100", type=int, default=500, help="online repetitions for 100 entities")
    p.add_argument("--seed", type=int, default=0, help="seed for the online request entity ids")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="materialize/online: skip the spot check of online values against the parquet")
    p.add_argument("--save-output", default=None, help="historical: write the result frame to this parquet")
    p.add_argument("--reps", type=int, default=1, help="historical: runs in the same process (the first is cold)")
    p.add_argument("--spark-conf", default="{}", help="--offline-store spark: its spark_conf, as JSON")
    p.add_argument("--_child", dest="child_out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_out:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
