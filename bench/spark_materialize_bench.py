"""Materialize on the Spark engine into Redis: written from the executors (``materialize_writes: workers``) vs
streamed back and written by the driver (``driver``), same history, same run (issue 17).

    ./run shell -m bench.spark_materialize_bench [--entities 1000000] [--master local[2]] [--publish]

The history (``.bench/repos/spark-materialize-<entities>``, written once by the DuckDB engine): ``--entities``
entities x 2 rows (the newer wins), a key and 5 features (2 Float64, 2 Int64, a String). Each mode runs in a process
of its own against the local cloud's Redis, under a key prefix of its own, with the JVM started before the clock:
``materialize(start, end)`` of the whole view, timed; then 2,000 random entities are read from both prefixes and
must be equal (and every entity's winner present). Recorded: wall time, rows/s, the driver process's peak RSS (the
Python side: the driver path holds chunks, the worker path only N small rows), the load average before and after.
Results: bench/out/spark_materialize.{json,md}; --publish also writes bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.__main__ import WORK, write_results
from bench.verdict import result_dirs

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
START, END = T - timedelta(days=1), T + timedelta(days=1)
MODES = ("workers", "driver")


def make_history(path: Path, entities: int) -> None:
    import numpy as np
    import pyarrow as pa

    import skewless as sk

    if (path / "ready").exists():
        return
    store = sk.init_repo(path)
    ent = sk.Entity("user", join_keys=["user_id"])
    store.apply([ent, sk.FeatureView("u", entities=[ent], schema=[
        sk.Field("user_id", sk.Int64), sk.Field("f1", sk.Float64), sk.Field("f2", sk.Float64),
        sk.Field("n1", sk.Int64), sk.Field("n2", sk.Int64), sk.Field("s", sk.String)])])
    rng = np.random.default_rng(17)
    for hour in (0, 1):  # two rows per entity, one batch each; the second (newer) wins
        ids = np.arange(entities, dtype=np.int64)
        ts = pa.array(np.full(entities, int((T + timedelta(hours=hour)).timestamp() * 1e6)),
                      pa.timestamp("us", tz="UTC"))
        table = pa.table({"user_id": ids, "event_timestamp": ts, "created_timestamp": ts,
                          "f1": rng.random(entities), "f2": rng.random(entities) * hour,
                          "n1": ids * 10 + hour, "n2": rng.integers(0, 1 << 40, entities),
                          "s": pa.array([f"s{i % 1000}-{hour}" for i in range(entities)])})
        store.ingest("u", table, online=False)
    (path / "ready").write_text("ok")


def child(mode: str, repo: Path, redis_url: str, prefix: str, master: str) -> dict:
    import skewless as sk
    from skewless.config import StoreConfig

    base = sk.FeatureStore(repo).config
    cfg = dataclasses.replace(base, engine="spark", engine_options={
        "master": master, "shuffle_partitions": 8, "materialize_writes": mode},
        online=StoreConfig(redis_url, {"key_prefix": prefix}))
    store = sk.FeatureStore(repo, config=cfg)
    store.engine.spark  # noqa: B018 - the JVM starts before the clock
    store.online.drop_view("u")
    load = os.getloadavg()
    t = time.perf_counter()
    [res] = store.materialize(START, END, ["u"])
    wall = time.perf_counter() - t
    return {"mode": mode, "rows": res.rows, "wall_s": round(wall, 2), "rows_per_s": round(res.rows / wall),
            "driver_python_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "parts": json.loads(store.online.get_meta("materialize/u")).get("parts"),
            "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()]}


def compare(repo: Path, redis_url: str, prefixes: dict, entities: int) -> None:
    import skewless as sk
    from skewless.adapters.redis.store import from_url

    view = sk.FeatureStore(repo).get_feature_view("u")
    keys = [(k,) for k in random.Random(1).sample(range(entities), min(2000, entities))]
    feats = ["f1", "f2", "n1", "n2", "s"]
    got = {}
    for mode, prefix in prefixes.items():
        online = from_url(redis_url, None, {"key_prefix": prefix})
        got[mode] = online.read_raw([(view, feats, keys)])[0]
        online.drop_view("u")
        online.close()
    assert got["workers"] == got["driver"], "the two modes' online rows differ"
    assert all(r is not None and r[1][2] == k[0] * 10 + 1 for r, k in zip(got["workers"], keys)), "a winner is missing"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.spark_materialize_bench", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--publish", action="store_true")
    p.add_argument("--child", nargs=4, metavar=("MODE", "REPO", "REDIS", "PREFIX"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, repo, redis_url, prefix = args.child
        print(json.dumps(child(mode, Path(repo), redis_url, prefix, args.master)))
        return
    from skewless.localcloud import LocalCloud

    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", WORK.parent / ".skewless-local"))
    cloud.acquire(["redis"])
    try:
        redis_url = cloud.endpoints()["redis"]
        repo = WORK / "repos" / f"spark-materialize-{args.entities}"
        t = time.perf_counter()
        make_history(repo, args.entities)
        print(f"history ready ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
        runs, prefixes = [], {}
        for mode in MODES:
            prefixes[mode] = f"smbench{os.getpid()}{mode}"
            out = subprocess.run([sys.executable, "-m", "bench.spark_materialize_bench", "--master", args.master,
                                  "--child", mode, str(repo), redis_url, prefixes[mode]],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], file=sys.stderr)
        compare(repo, redis_url, prefixes, args.entities)
    finally:
        cloud.release()
    res = {"entities": args.entities, "history_rows": 2 * args.entities, "master": args.master,
           "cores": os.cpu_count(), "runs": runs}
    lines = [f"# Spark materialize into Redis: executors vs driver ({args.entities:,} entities, 2 rows each, "
             f"{args.master}, {os.cpu_count()} cores)", "",
             "| writes | rows | wall (s) | rows/s | parts | driver Python peak RSS (MB) | load before -> after |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['rows']:,} | {r['wall_s']} | {r['rows_per_s']:,} | {r['parts'] or '-'} | "
              f"{r['driver_python_peak_rss_mb']} | {r['load_before'][0]} -> {r['load_after'][0]} |" for r in runs]
    lines += ["", "Both modes' online rows compared on 2,000 random entities: equal."]
    text = "\n".join(lines)
    print(text)
    folders = result_dirs(args.publish)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    write_results(folders, "spark_materialize", res, text)


if __name__ == "__main__":
    main()
