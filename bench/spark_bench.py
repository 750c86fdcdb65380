"""PIT training set on the Spark engine (local[2]) vs the DuckDB engine vs Feast 0.67's Spark offline store, same
data, same run; and the Spark engine's time from 1M to 10M entity rows (issue 17).

    ./run shell -m bench.spark_bench                     # --scale small: 100k entity rows x 1M feature rows, 3 views
        [--rows 1000000,10000000] [--reps 3] [--no-feast] [--no-scaling] [--publish]

Data and the DuckDB repo are the main benchmark's (bench/__main__.py: ``.bench/data/<scale>``, ``.bench/repos/
<scale>``); the Spark repo (``.bench/repos/<scale>-spark``) reads the same registry and Delta histories with
``offline.engine: spark`` (``SPARK`` below). Each measurement runs in its own process:

* skewless, Spark engine: ``get_historical_features(entity.parquet, 30 features).to_arrow()``, ``--reps`` times in
  one process; the first run is cold (the JVM starts in it), the others warm.
* skewless, DuckDB engine: ``bench.measure pit`` (the main benchmark's task), ``--reps`` processes, best.
* Feast 0.67, its Spark offline store (``feast[spark]`` in ``.bench/feast-spark-venv``, pyspark pinned to ours by
  bench/peers/setup_feast.sh): bench/peers/feast_peer.py ``--offline-store spark``, each view a ``SparkSource`` over
  the same Parquet, ``get_historical_features(entity_df, 30 features).to_df()``, ``--reps`` times in one process
  (cold, then warm), with the same Spark settings as ours (``spark_conf``).

Every output is checked against bench/pit_check.py's pandas reference (rows, values, ties). Scaling: ``--rows``
entity files over the same history (bench/datagen.py with the scale's feature rows, so the views are the same
files), each ``get_historical_features(...).to_parquet(folder)`` (written by Spark, never collected) in a fresh
process with the JVM started before the clock; Spark's shuffle bytes (its status store) and the (entity row,
history row) candidate pairs the window join produces (counted by DuckDB) are recorded for the scale model in
docs/engines/spark.md. Results: bench/out/spark_pit.{json,md}; --publish also writes bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import SCALES, WORK, ensure_data, ensure_repo, measure, ratio, sh, write_results
from bench.verdict import ROOT, result_dirs, verdict_lines
from bench.workload import derived_repo, feature_refs

# The Spark engine's settings for every Spark run here; Feast's Spark store gets the same ones (spark_conf below).
SPARK = {"master": "local[2]", "shuffle_partitions": 8, "driver_memory": "8g"}
FEAST_VENV = Path(os.environ.get("FEAST_SPARK_VENV", WORK / "feast-spark-venv"))
CORES = 2


def spark_conf(settings: dict = SPARK) -> dict:
    """The Spark settings our engine's session runs with (adapters/spark/session.py), as a Spark conf for Feast."""
    return {"spark.master": settings["master"], "spark.driver.memory": settings["driver_memory"],
            "spark.sql.shuffle.partitions": str(settings["shuffle_partitions"]), "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false", "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true"}


# -- child side: one process per measurement --------------------------------------------------------------------
def shuffle_bytes(spark) -> int:
    """Shuffle bytes written by every stage so far (Spark's status store; it is kept with the UI off)."""
    gw = spark.sparkContext._gateway  # stageList(statuses, details, withSummaries, quantiles, taskStatuses)
    stages = spark.sparkContext._jsc.sc().statusStore().stageList(None, False, False, gw.new_array(gw.jvm.double, 0),
                                                                  gw.jvm.java.util.ArrayList())
    return sum(int(stages.apply(i).shuffleWriteBytes()) for i in range(stages.size()))


def child_pit(data: Path, repo: Path, meta: dict, args) -> dict:
    import pyarrow.parquet as pq

    import skewless as sk

    store = sk.FeatureStore(repo)
    walls = []
    for i in range(args.reps):
        t = time.perf_counter()
        table = store.get_historical_features(str(data / "entity.parquet"), feature_refs(meta)).to_arrow()
        walls.append(round(time.perf_counter() - t, 3))
        if i == 0 and args.out:
            pq.write_table(table, args.out)
    return {"wall_s": walls[0], "walls_s": walls, "warm_s": min(walls[1:], default=None), "rows_out": table.num_rows}


def child_parquet(data: Path, repo: Path, meta: dict, args) -> dict:
    import pyarrow.parquet as pq

    import skewless as sk

    store = sk.FeatureStore(repo)
    spark = store.engine.spark
    spark.range(1).count()  # the JVM is up before the clock starts
    before = shuffle_bytes(spark)
    t = time.perf_counter()
    out = store.get_historical_features(str(data / "entity.parquet"), feature_refs(meta)).to_parquet(args.out)
    wall = time.perf_counter() - t
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in Path(out).glob("*.parquet"))
    return {"wall_s": round(wall, 3), "rows_out": rows, "shuffle_write_bytes": shuffle_bytes(spark) - before}


def candidate_pairs(data: Path, meta: dict) -> int:
    """(entity row, history row) pairs the window form's join produces: same key, history event time <= the row's
    time, over every view (DuckDB counts them straight on the Parquet)."""
    import duckdb

    con = duckdb.connect()
    return sum(con.execute(f"SELECT count(*) FROM read_parquet('{data / 'entity.parquet'}') e JOIN read_parquet('"
                       f"{data / v['path']}') h ON e.driver_id = h.driver_id AND h.event_timestamp <= "
                       f"e.event_timestamp").fetchone()[0] for v in meta["views"])


# -- parent side ------------------------------------------------------------------------------------------------
def child(task: str, data: Path, repo: Path, *extra, env: dict | None = None) -> dict:
    load = os.getloadavg()[0]
    out = sh([sys.executable, "-m", "bench.spark_bench", "--child", task, data, repo, *extra], cwd=ROOT,
             env={**os.environ, **(env or {})})
    res = json.loads(out.strip().splitlines()[-1])
    res.update(load_1m_start=round(load, 2), load_1m_end=round(os.getloadavg()[0], 2))
    return res


def class_archive(data: Path, repo: Path) -> str:
    """The driver JVM's class archive of this machine's cache (adapters/spark/cds.py), made first when missing: a
    Spark process run to its end, its JVM waited for (the archive is written at its exit)."""
    from skewless.adapters.spark import cds
    from skewless.adapters.spark.session import _java

    java = _java()
    final = cds.folder() / f"{cds.key(java)}.jsa"
    for _ in range(2):
        if final.exists():
            return str(final)
        child("pit", data, repo, "--reps", 1)
        deadline = time.monotonic() + 300
        while any(cds._writer_alive(t) for t in cds._pending(cds.folder(), cds.key(java))):
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        cds.adopt(java)
    return str(final) if final.exists() else "none (not written)"


def check(data: Path, result: Path) -> dict:
    """bench/pit_check.py's verdict on an output: rows, values and ties against the pandas reference."""
    path = result.with_suffix(".check.json")
    subprocess.run([sys.executable, ROOT / "bench" / "pit_check.py", data, result, "--json", path],
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    rep = json.loads(path.read_text()) if path.exists() else {"ok": False}
    return {k: rep.get(k) for k in ("ok", "result_rows", "missing_rows", "extra_rows", "mismatched_rows_per_view",
                                    "rows_resolved_at_event_time_ties")}


def feast_spark(data: Path, raw: Path, args) -> dict:
    env = {**os.environ, "FEAST_VENV": str(FEAST_VENV), "FEAST_EXTRAS": "duckdb,redis,spark"}
    sh(["bash", ROOT / "bench" / "peers" / "setup_feast.sh"], env=env)
    path, saved = raw / "feast_spark_historical.json", raw / "feast_spark.parquet"
    try:
        sh([FEAST_VENV / "bin" / "python", ROOT / "bench" / "peers" / "feast_peer.py", data, "--task", "historical",
            "--offline-store", "spark", "--reps", args.reps, "--spark-conf", json.dumps(spark_conf()), "--timeout",
            args.feast_timeout, "--save-output", saved, "--out", path])
    except subprocess.CalledProcessError:
        pass  # the peer always writes its JSON, with status "timeout" / "error" when it failed
    res = json.loads(path.read_text()) if path.exists() else {"status": "missing"}
    keep = ("status", "error", "wall_s", "walls_s", "rows_out", "peak_rss_mb", "feast_version", "loadavg_1m_start",
            "loadavg_1m_end")
    out = {k: res.get(k) for k in keep}
    out["warm_s"] = min(res.get("walls_s", [])[1:], default=None)
    if res.get("status") == "ok":
        out["check"] = check(data, saved)
    return out


def entity_data(scale: str, rows: int) -> Path:
    """The scale's history with ``rows`` entity rows (datagen: same seed and feature rows, so the same views)."""
    data = WORK / "data" / f"{scale}-entity-{rows}"
    if not (data / "meta.json").exists():
        sh([sys.executable, ROOT / "bench" / "datagen.py", data, "--entity-rows", rows, "--feature-rows",
            SCALES[scale][1], "--force"])
    return data


def to_parquet_run(data: Path, spark_repo: Path, raw: Path) -> dict:
    meta = json.loads((data / "meta.json").read_text())
    n = meta["params"]["entity_rows"]
    run = child("parquet", data, spark_repo, "--out", raw / f"spark_{data.name}.parquet")
    run.update(entity_rows=n, history_rows=meta["params"]["feature_rows"], candidate_pairs=candidate_pairs(data, meta))
    run["rows_ok"] = run["rows_out"] == n
    print(json.dumps(run), file=sys.stderr, flush=True)
    return run


def spark_repo_for(scale: str) -> tuple[Path, Path]:
    """The scale's data and a repo reading its DuckDB repo's registry and histories with ``engine: spark``."""
    data = ensure_data(scale)
    repo = ensure_repo(data, scale)
    return data, derived_repo(repo, WORK / "repos" / f"{scale}-spark", offline={"engine": "spark", "options": SPARK})


def figures(res: dict) -> list[tuple]:
    """The verdict lines' figures: Feast's Spark store / skewless's Spark engine, cold and warm; time from the
    smallest to the largest --rows and its row ratio."""
    sp, fe = res["spark"], res.get("feast", {})
    ok = fe.get("status") == "ok"
    out = [("spark_vs_feast", "Feast Spark store / skewless Spark engine, first call (JVM start included)",
            ratio(fe.get("wall_s"), sp["wall_s"]) if ok else None),
           ("spark_vs_feast", "Feast Spark store / skewless Spark engine, warm (best later call, same process)",
            ratio(fe.get("warm_s"), sp.get("warm_s")) if ok else None)]
    runs = res.get("scaling") or []
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        out.append(("spark_scaling", f"time for {b['entity_rows']:,} / {a['entity_rows']:,} entity rows "
                    f"({b['entity_rows'] // a['entity_rows']}x the rows)", ratio(b["wall_s"], a["wall_s"])))
    return out


def report(res: dict) -> str:
    sp, dk, fe = res["spark"], res["duckdb"], res.get("feast", {})
    lines = [f"scale: {res['scale']} ({res['entity_rows']:,} entity rows x {res['feature_rows']:,} feature rows, 3 "
             f"views x 10 features); Spark {res['spark_settings']}; 1-min load at start {res['load_1m_start']}, "
             f"end {res['load_1m_end']}", "",
             "| PIT training set | wall, first call (s) | wall, warm (s) | rows | checked against the pandas reference |",
             "|---|---|---|---|---|"]

    def row(name, r, warm):
        c = r.get("check") or {}
        lines.append(f"| {name} | {r.get('wall_s', r.get('status'))} | {warm if warm is not None else '-'} | "
                     f"{r.get('rows_out', '-')} | {'ok' if c.get('ok') else c or '-'} |")
    if res.get("spark_first_ever"):
        row("skewless, Spark engine, first process on the machine (no class archive yet)", res["spark_first_ever"],
            None)
    row("skewless, Spark engine (`to_arrow`; the JVM maps the class archive an earlier process wrote)", sp,
        sp.get("warm_s"))
    row("skewless, DuckDB engine (`to_arrow`, own process per run)", dk, dk.get("best_s"))
    if fe:
        row(f"Feast {fe.get('feast_version', '0.67')} Spark offline store (`to_df`)", fe, fe.get("warm_s"))
    runs = (res.get("scaling") or []) + ([res["probe"]] if res.get("probe") else [])
    if runs:
        lines += ["", "Spark engine, `to_parquet(folder)` (JVM started before the clock; its own process each):", "",
                  "| entity rows | history rows | wall (s) | rows written | candidate pairs | shuffle written (MB) | "
                  "entity rows/s/core | pairs/s/core | load start / end |", "|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            lines.append(f"| {r['entity_rows']:,} | {r['history_rows']:,} | {r['wall_s']} | "
                         f"{r['rows_out']:,}{'' if r['rows_ok'] else ' (!)'}"
                         f" | {r['candidate_pairs']:,} | {r['shuffle_write_bytes'] / 1e6:,.0f} | "
                         f"{r['entity_rows'] / r['wall_s'] / CORES:,.0f} | "
                         f"{r['candidate_pairs'] / r['wall_s'] / CORES:,.0f} | {r['load_1m_start']} / "
                         f"{r['load_1m_end']} |")
    lines += ["", "targets:"] + verdict_lines(figures(res))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.spark_bench", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--rows", default="1000000,10000000", help="entity rows for the scaling figure (comma-separated)")
    p.add_argument("--reps", type=int, default=3, help="PIT runs per engine (Spark and Feast: in one process)")
    p.add_argument("--no-feast", action="store_true")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--probe-full", action="store_true",
                   help="also time to_parquet on the full scale (1M entity rows x 10M feature rows) for the scale model")
    p.add_argument("--feast-timeout", type=int, default=1800)
    p.add_argument("--publish", action="store_true", help="also write bench/results/spark_pit.{json,md}")
    p.add_argument("--child", nargs=3, metavar=("TASK", "DATA", "REPO"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        task, data, repo = args.child[0], Path(args.child[1]), Path(args.child[2])
        meta = json.loads((data / "meta.json").read_text())
        res = {"pit": child_pit, "parquet": child_parquet}[task](data, repo, meta, args)
        import resource

        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(res))
        return
    args.rows = [int(x) for x in args.rows.split(",") if x]
    raw = WORK / "results" / f"{args.scale}-spark"
    raw.mkdir(parents=True, exist_ok=True)
    data, spark_repo = spark_repo_for(args.scale)
    repo = ensure_repo(data, args.scale)
    ent, feat = SCALES[args.scale]
    res = {"scale": args.scale, "entity_rows": ent, "feature_rows": feat, "spark_settings": SPARK,
           "load_1m_start": round(os.getloadavg()[0], 2)}
    # The first call of a process on a machine where no Spark process ran before (no class archive: adapters/spark/
    # cds.py, in a cache folder of its own), then the first call of a later process, which maps the archive an
    # earlier process wrote (made here first if this machine has none).
    with tempfile.TemporaryDirectory(prefix="spark-bench-cache-") as empty:
        res["spark_first_ever"] = child("pit", data, spark_repo, "--reps", 1, env={"SKEWLESS_CACHE": empty})
    res["class_archive"] = class_archive(data, spark_repo)
    res["spark"] = child("pit", data, spark_repo, "--reps", args.reps, "--out", raw / "spark.parquet")
    res["spark"]["check"] = check(data, raw / "spark.parquet")
    duck = [measure("pit", data, repo, "--save-output", raw / "duckdb.parquet") for _ in range(args.reps)]
    res["duckdb"] = {**duck[0], "walls_s": [r["wall_s"] for r in duck], "best_s": min(r["wall_s"] for r in duck),
                     "check": check(data, raw / "duckdb.parquet")}
    if not args.no_feast:
        res["feast"] = feast_spark(data, raw, args)
    if not args.no_scaling:
        res["scaling"] = [to_parquet_run(entity_data(args.scale, n), spark_repo, raw) for n in args.rows]
    if args.probe_full:  # 10x the history per entity row: separates the cost per candidate pair (scale model)
        res["probe"] = to_parquet_run(*spark_repo_for("full"), raw)
    res["load_1m_end"] = round(os.getloadavg()[0], 2)
    (raw / "spark_pit.json").write_text(json.dumps(res, indent=1))  # kept even if the report fails
    text = report(res)
    folders = result_dirs(args.publish)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    write_results(folders, "spark_pit", res, text)
    print(text)


if __name__ == "__main__":
    main()
