"""Feast 0.67 building the training set of bench/agg_training_bench.py the best way it can (run by that bench in the
Feast venv of bench/peers/setup_feast.sh, as a child capped at --max-as-gb of address space).

    .bench/feast-venv/bin/python bench/peers/feast_agg.py --data DIR --workdir DIR --out result.json
        [--offline-store duckdb|file] [--save-output out.parquet] [--max-as-gb 10] [--duckdb-memory 8GB]

Feast 0.67 does not compute windowed aggregations in ``get_historical_features`` (bench/peers/feast_agg_probe.py
shows it; the citations are in bench/README.md), so this is its documented path: a batch transformation computes
the aggregates into a table, a FeatureView over that table serves them, and Feast's point-in-time join picks, per
entity row, the latest row at or before its timestamp.

1. precompute (DuckDB SQL, the engine of Feast's local offline store): one row per (card, change point) with the
   12 values. A window ``(floor_h(t - w), t]`` changes at every event (it enters) and at ``ceil_h(ev) + w`` (it
   leaves), so a row at each distinct such time, aggregated over its window with variable RANGE frames, is the
   exact value for every t up to the next row. Written to Parquet for the FileSource.
2. ``get_historical_features(entity_df, 12 features).to_df()`` with the chosen offline store (``duckdb``: ibis +
   DuckDB; ``file``: dask), then the counts of rows before any event filled with 0 (Feast's join leaves them null;
   the definition says 0).

wall_s = precompute_s + pit_s; the entity Parquet is read into pandas before the timer (Feast takes a DataFrame).
Status ``ok``, ``memory-cap`` (an allocation failed under the address-space cap; phase and time say where) or
``error``; the JSON is written in every case the process survives.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
import warnings

HOUR_US = 3_600_000_000
WINDOWS = {"1h": HOUR_US, "1d": 24 * HOUR_US, "7d": 7 * 24 * HOUR_US}  # as bench/agg_training_bench.py
FUNCTIONS = ("count", "sum", "mean", "max")
FEATURES = [f"amount_{f}_{n}" for n in WINDOWS for f in FUNCTIONS]
_SQL_FN = {"count": "count", "sum": "sum", "mean": "avg", "max": "max"}
_MEMORY_ERRORS = ("MemoryError", "Out of Memory", "bad_alloc", "Cannot allocate memory", "OutOfMemory")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def precompute_sql(events: str) -> str:
    """Every (card, change point) with its 12 values: events enter at their time, leave window w at ceil_h(ev) + w."""
    exits = " UNION ".join(f"SELECT card, t + ({HOUR_US} - t % {HOUR_US}) % {HOUR_US} + {w} AS t FROM ev"
                           for w in WINDOWS.values())
    # rows at t with t' in (floor_h(t - w), t]: RANGE offset t - floor_h(t - w) - 1 = w - 1 + t % h (w is whole hours)
    frames = ", ".join(f"w{n} AS (PARTITION BY card ORDER BY t RANGE BETWEEN ({w - 1} + t % {HOUR_US}) PRECEDING "
                       f"AND CURRENT ROW)" for n, w in WINDOWS.items())
    cols = ", ".join(f"{_SQL_FN[f]}(amount) OVER w{n} AS amount_{f}_{n}" for n in WINDOWS for f in FUNCTIONS)
    # peers (same card and t) share a frame, so keep one of them: the last, found in the frames' own sort order
    return (f"WITH ev AS (SELECT card, epoch_us(event_timestamp) AS t, amount FROM read_parquet('{events}')), "
            f"pts AS (SELECT card, t, amount FROM ev UNION ALL SELECT card, t, NULL::DOUBLE FROM ({exits})) "
            f"SELECT card, make_timestamp(t)::TIMESTAMPTZ AS ts, {cols} FROM pts WINDOW {frames} "
            f"QUALIFY t IS DISTINCT FROM lead(t) OVER (PARTITION BY card ORDER BY t)")


def phase(res: dict, name: str) -> None:
    """Say on stderr when each phase starts (wall clock), so a parent can bound the time of a run it saw die."""
    res["phase"] = name
    print(f"PHASE {name} {time.time():.3f}", file=sys.stderr, flush=True)


def precompute(data: str, out: str, memory: str, tmp: str) -> int:
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect(config={"memory_limit": memory, "temp_directory": tmp})
    con.sql("SET TimeZone = 'UTC'")
    con.sql(f"COPY ({precompute_sql(os.path.join(data, 'events.parquet'))}) TO '{out}' (FORMAT parquet)")
    con.close()
    return pq.ParquetFile(out).metadata.num_rows


def build_store(workdir: str, table: str, offline: str, duckdb_memory: str):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    if offline == "duckdb":
        import ibis
        from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig as OfflineConfig

        # Feast's duckdb store runs on ibis' default backend; DuckDB would size itself to 80% of RAM and fail at the
        # address-space cap instead of spilling, so give it a limit below the cap (Feast has no option for this)
        ibis.set_backend(ibis.duckdb.connect(memory_limit=duckdb_memory,
                                             temp_directory=os.path.join(workdir, "duckdb_tmp")))
    else:
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig as OfflineConfig
    config = RepoConfig(project="agg_bench", provider="local", registry=os.path.join(workdir, "registry.db"),
                        online_store=SqliteOnlineStoreConfig(path=os.path.join(workdir, "online.db")),
                        offline_store=OfflineConfig(), entity_key_serialization_version=3, repo_path=workdir)
    store = FeatureStore(config=config)
    card = Entity(name="card", join_keys=["card"], value_type=ValueType.INT64)
    fields = [Field(name=n, dtype=Int64 if "_count_" in n else Float64) for n in FEATURES]
    view = FeatureView(name="txn", entities=[card], ttl=None, schema=[Field(name="card", dtype=Int64)] + fields,
                       source=FileSource(name="txn_aggregates", path=table, timestamp_field="ts"), online=False)
    store.apply([card, view])
    return store


def run(args, res: dict) -> None:
    import pandas as pd

    os.makedirs(args.workdir, exist_ok=True)
    table = os.path.join(args.workdir, "txn_aggregates.parquet")
    phase(res, "setup")
    t_start = time.perf_counter()
    res["_t_start"] = t_start
    entity_df = pd.read_parquet(os.path.join(args.data, "entity.parquet"))
    entity_df["rid"] = range(len(entity_df))  # Feast does not keep the input order: the id restores it afterwards
    res["entity_load_s"] = round(time.perf_counter() - t_start, 3)

    phase(res, "precompute")
    t = time.perf_counter()
    res["precompute_rows"] = precompute(args.data, table, args.duckdb_memory, os.path.join(args.workdir, "tmp"))
    res["precompute_s"] = round(time.perf_counter() - t, 3)
    res["precompute_rss_mb"] = peak_rss_mb()

    phase(res, "apply")
    store = build_store(args.workdir, table, args.offline_store, args.duckdb_memory)

    phase(res, "get_historical_features")
    t = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=[f"txn:{n}" for n in FEATURES]).to_df()
    for n in FEATURES:
        if "_count_" in n:  # no row at or before the entity row: its window is empty, a count of 0
            df[n] = df[n].fillna(0).astype("int64")
    res["pit_s"] = round(time.perf_counter() - t, 3)
    res["wall_s"] = round(res["precompute_s"] + res["pit_s"], 3)
    res["rows_out"], res["cols_out"] = int(len(df)), int(len(df.columns))
    phase(res, "done")
    if args.save_output:
        df.sort_values("rid")[["rid"] + FEATURES].to_parquet(args.save_output, index=False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--offline-store", choices=["duckdb", "file"], default="duckdb")
    ap.add_argument("--save-output")
    ap.add_argument("--max-as-gb", type=float, default=10.0, help="address-space cap (RLIMIT_AS) of this process")
    ap.add_argument("--duckdb-memory", default="8GB", help="DuckDB memory_limit, below the cap so it spills")
    args = ap.parse_args()
    cap = int(args.max_as_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.makedirs(args.workdir, exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(args.workdir, "metrics"))  # see README quirks
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    warnings.simplefilter("ignore")
    import feast

    res: dict = {"status": "error", "feast": feast.__version__, "offline_store": args.offline_store,
                 "max_as_gb": args.max_as_gb, "duckdb_memory_limit": args.duckdb_memory,
                 "loadavg_1m_start": os.getloadavg()[0]}
    try:
        run(args, res)
        res["status"] = "ok"
    except BaseException as e:  # noqa: BLE001  (a result is written for any failure)
        text = f"{type(e).__name__}: {e}"
        res["status"] = "memory-cap" if any(m in text for m in _MEMORY_ERRORS) else "error"
        res["error"] = text[:2000]
        res["traceback"] = traceback.format_exc()[-3000:]
        res["died_after_s"] = round(time.perf_counter() - res.get("_t_start", time.perf_counter()), 1)
    res.pop("_t_start", None)
    res["peak_rss_mb"] = peak_rss_mb()
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
    return 0 if res["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
