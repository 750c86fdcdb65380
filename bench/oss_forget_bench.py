"""``forget`` on an oss:// history: how long, and how many of the history's data files a delete downloads.

``python -m bench.oss_forget_bench [--files 40] [--reps 3] [--publish]``: a repo with its registry and one view's
history on the local cloud's OSS shim (oss2 -> shim -> moto's S3, loopback), the history ``--files`` ingests of 10
keys each (one data file each), SQLite online. Each rep forgets 2 keys held by 2 different files, with the purge
(``purge_now=True``: delete, online delete, expiry record, vacuum), timed end to end; the files downloaded are the
OSS store's own count (``OSSOfflineStore.erase_reads``). ``--publish`` also writes ``bench/results/oss_forget.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import yaml

import skewless as sk

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "skewless-bench-oss"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args(argv)
    from skewless.localcloud import LocalCloud

    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
    cloud.acquire(["oss"])
    try:
        cloud.ensure_bucket(BUCKET, cloud.endpoints()["moto"])
        result = run(cloud.endpoints()["oss"], a.files, a.reps)
    finally:
        cloud.release()
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / ("results" if a.publish else "out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "oss_forget.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "oss_forget.md").write_text(
        f"# forget on an oss:// history (`python -m bench.oss_forget_bench --files {a.files} --reps {a.reps}`)\n\n"
        f"History of {a.files} data files (10 keys each) on the local OSS shim; forget 2 keys (2 files) with the purge."
        f"\n\n| rep | forget, seconds | of which the offline delete | files downloaded | files in the version |\n"
        "|---|---|---|---|---|\n"
        + "".join(f"| {i + 1} | {r['seconds']:.2f} | {r['delete_seconds']:.2f} | {r['downloaded']} | {r['files']} |\n"
                  for i, r in enumerate(result["reps"]))
        + f"\nmedian {result['median_seconds']:.2f} s\n\nEach rep forgets 2 more keys of the same history. A delete "
        "writes the rows it keeps of the files it rewrote as one file, whose key range spans theirs, so a later delete "
        "downloads that file too when its key falls inside the range (rep 2: 3 files, rep 3: 4).\n")
    return 0


def run(endpoint: str, files: int, reps: int) -> dict:
    path = ROOT / ".bench" / "oss_forget"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    prefix = f"oss://{BUCKET}/run-{int(time.time())}"
    options = {"endpoint": endpoint, "region": "cn-hangzhou", "access_key_id": "test", "access_key_secret": "test"}
    (path / "skewless.yaml").write_text(yaml.safe_dump({
        "project": "ossforget", "registry": {"url": f"{prefix}/registry", "options": options},
        "offline": {"url": f"{prefix}/offline", "engine": "duckdb", "storage_options": options},
        "online": "sqlite:///online.db"}))
    store = sk.FeatureStore(path)
    person = sk.Entity("person", ["k"], dtype=sk.Int64)
    store.apply([person, sk.FeatureView("people", [person], [sk.Field("k", sk.Int64), sk.Field("name", sk.String),
                                                             sk.Field("score", sk.Float64)])])
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for f in range(files):
        keys = list(range(10 * f, 10 * f + 10))
        store.ingest("people", pd.DataFrame({"k": keys, "event_timestamp": [t0 + timedelta(hours=f)] * 10,
                                             "name": [f"person {k}" for k in keys], "score": [k / 7 for k in keys]}))
    out = []
    for rep in range(reps):
        gone = [10 * (2 * rep) + 3, 10 * (files - 1 - 2 * rep) + 5]  # two keys in two files far apart
        store.offline.erase_reads.clear()
        marks: dict[str, float] = {}
        t = time.perf_counter()
        report = store.forget("person", gone, purge_now=True,
                              progress=lambda msg, m=marks: m.setdefault(msg.split(": ", 1)[1], time.perf_counter()))
        seconds = time.perf_counter() - t
        assert report.complete and report.offline_rows == {"people": 2}, report
        (view, downloaded, total), = store.offline.erase_reads
        # the offline delete: from forget's "deleting history rows" to its "deleting online rows"
        delete = marks["deleting online rows and tiles"] - marks["deleting history rows"]
        out.append({"seconds": seconds, "delete_seconds": delete, "downloaded": downloaded, "files": total})
    return {"files": files, "reps": out, "median_seconds": statistics.median(r["seconds"] for r in out)}


if __name__ == "__main__":
    sys.exit(main())
