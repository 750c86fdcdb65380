"""Sustained stream ingest: events/s through the exactly-once consumer (validation, offline append with positions,
online newest-wins push) from an in-memory source, so the consumer, not a stream service, is measured.

    python -m bench.stream_ingest_bench                          # 200k events, SQLite online
    python -m bench.stream_ingest_bench --online redis://127.0.0.1:6392/0

Target (issue 16): >= 100k events/s into Redis + offline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

import skewless as sk
from skewless.streams.memory import MemorySource

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--max-records", type=int, default=50_000)
    ap.add_argument("--online", default=None, help="an online store URL (default: the repo's SQLite)")
    ap.add_argument("--dir", default=".bench/stream_ingest")
    a = ap.parse_args()
    path = Path(a.dir)
    shutil.rmtree(path, ignore_errors=True)
    store = sk.init_repo(path)
    if a.online:
        cfg = yaml.safe_load((path / "skewless.yaml").read_text())
        cfg["online"] = {"url": a.online} if isinstance(cfg.get("online"), dict) else a.online
        (path / "skewless.yaml").write_text(yaml.safe_dump(cfg))
        store = sk.FeatureStore(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])])
    shards: dict[str, list] = {f"s{i}": [] for i in range(4)}
    for n in range(a.events):
        shards[f"s{n % 4}"].append({"k": n % 50_000, "event_timestamp": (T + timedelta(seconds=n)).isoformat(),
                                    "x": n * 1.0})
    t = time.perf_counter()
    st = store.stream("v", MemorySource(shards), consumer="bench", max_records=a.max_records, until_caught_up=True,
                      compact_every=None)
    dt = time.perf_counter() - t
    print(json.dumps({"events": a.events, "seconds": round(dt, 2), "events_per_s": round(a.events / dt),
                      "micro_batches": st.batches, "online": a.online or "sqlite"}))


if __name__ == "__main__":
    main()
