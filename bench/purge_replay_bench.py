"""What the purge's replay of every commit costs (``skewless.offline.delta_purge``), local and on S3.

``python -m bench.purge_replay_bench [--commits 500] [--publish]``: one history of ``--commits`` appends (one row
each, written with delta-rs, a checkpoint every 100 commits as delta-rs writes them), on a local folder and on the
local cloud's moto S3 (loopback). Timed: skewless' vacuum (``DeltaOfflineStore.vacuum``: every commit entry read,
delta-rs' dry run on the replay, the listed files deleted — none here: nothing was removed) against delta-rs' own
dry run on the table as it opens it (the newest checkpoint and what follows: what the purge used before, and what
misses removals a checkpoint dropped). ``--publish`` also writes ``bench/results/purge_replay.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from bench.verdict import result_dirs

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "skewless-bench-purge"


def _history(store, commits: int) -> None:
    uri = store._uri("people")
    for i in range(commits):
        write_deltalake(uri, pa.table({"k": [i], "name": [f"person {i}"]}), mode="append",
                        storage_options=store.storage_options)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(store, commits: int) -> dict:
    _history(store, commits)
    dt = store._table("people")
    assert dt.version() == commits - 1
    replay = _time(lambda: store.vacuum("people", retention_hours=0, keep_versions=[]))
    checkpoint = _time(lambda: store._table("people").vacuum(retention_hours=0, dry_run=True,
                                                              enforce_retention_duration=False))
    return {"commits": commits, "replay_seconds": replay, "checkpoint_seconds": checkpoint}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args(argv)
    from skewless.adapters.aws.s3 import S3OfflineStore
    from skewless.localcloud import LocalCloud
    from skewless.offline.delta import DeltaOfflineStore

    local = ROOT / ".bench" / "purge_replay"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    result = {"local": measure(DeltaOfflineStore(str(local)), a.commits)}
    cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
    cloud.acquire(["moto"])
    try:
        endpoint = cloud.endpoints()["moto"]
        cloud.ensure_bucket(BUCKET, endpoint)
        s3 = S3OfflineStore(f"s3://{BUCKET}/run-{int(time.time())}",
                            {"endpoint_url": endpoint, "region": "us-east-1", "access_key_id": "test",
                             "secret_access_key": "test"})
        result["s3_moto"] = measure(s3, a.commits)
    finally:
        cloud.release()
    text = (f"# The purge's replay of every commit (`python -m bench.purge_replay_bench --commits {a.commits}`)\n\n"
            f"A history of {a.commits} one-row appends (delta-rs checkpoints every 100).\n\n"
            "| store | skewless vacuum (replay), s | delta-rs dry run from the checkpoint, s |\n|---|---|---|\n"
            + "".join(f"| {name} | {r['replay_seconds']:.2f} | {r['checkpoint_seconds']:.2f} |\n"
                      for name, r in result.items())
            + "\nThe replay reads every commit entry (16 at a time): its cost grows with the history's commits, once "
            "per purge or retention run of a view; the checkpoint's dry run is cheaper but misses the removals a "
            "checkpoint dropped (docs/governance.md).\n")
    print(text)
    for folder in result_dirs(a.publish):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "purge_replay.json").write_text(json.dumps(result, indent=2) + "\n")
        (folder / "purge_replay.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
