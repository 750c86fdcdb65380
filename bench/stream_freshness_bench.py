"""Stream -> online freshness: events produced at ``--rate`` events/s into an in-memory stream (``memory://``, so the
consumer and not a stream service is measured), consumed exactly once into a view (``FeatureStore.stream``: each
micro-batch's offline append, with its stream positions, then its online push), and for one event every
``--probe-ms``, the time from its production to the first online read that sees it.

    ./run shell -m bench.stream_freshness_bench [--rate 10000] [--seconds 10] [--online redis://...]
        [--max-seconds 0.05] [--poll-seconds 0.01] [--tag T] [--publish]

The producer, the consumer and the probe are threads of one process (the consumer as ``skewless stream`` runs it);
what bounds the figure is printed beside it: the consumer's micro-batch bound (``max_seconds``) and idle poll
(``poll_seconds``), and each micro-batch's offline commit, which exactly-once puts before the online write.
"""

from __future__ import annotations

import argparse
import sys
import json
import os
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

import skewless as sk
from bench.verdict import result_dirs
from skewless.streams.memory import MemorySource

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=10_000, help="events/s produced")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--online", default=None, help="online store URL (default: the local cloud's Redis)")
    ap.add_argument("--max-seconds", type=float, default=0.05, help="the consumer's micro-batch latency bound")
    ap.add_argument("--poll-seconds", type=float, default=0.01, help="the consumer's idle poll")
    ap.add_argument("--probe-ms", type=float, default=20, help="one probed event every this many ms")
    ap.add_argument("--tag", default="stream_freshness")
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args(argv)
    cloud = None
    online = a.online
    if online is None:
        from skewless.localcloud import LocalCloud

        cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", ROOT / ".skewless-local"))
        cloud.acquire(["redis"])
        online = cloud.endpoints()["redis"]
    try:
        return _run(a, online, argv if argv is not None else sys.argv[1:])
    finally:
        if cloud is not None:
            cloud.release()


def _run(a, online: str, argv: list[str]) -> int:
    path = ROOT / ".bench" / "stream_freshness"
    shutil.rmtree(path, ignore_errors=True)
    sk.init_repo(path, project="streamfresh")
    cfg = yaml.safe_load((path / "skewless.yaml").read_text())
    cfg["online"] = {"url": online, "options": {"key_prefix": f"sfresh{os.getpid()}"}}
    (path / "skewless.yaml").write_text(yaml.safe_dump(cfg))
    store = sk.FeatureStore(path)
    e = sk.Entity("ent", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)])])
    shard: list = []
    source = MemorySource({"s0": shard})
    done = threading.Event()
    produced: dict[int, float] = {}  # probed key -> production time
    tick = 0.005  # the producer appends rate * tick records per tick
    per_tick = max(1, round(a.rate * tick))
    probe_every = max(1, round(a.probe_ms / 1000 / tick))

    def produce():
        n, start, k = 0, time.perf_counter(), 0
        while not done.is_set():
            due = start + k * tick
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            stamp = datetime.now(timezone.utc).isoformat()
            batch = [{"k": n + i, "x": float(n + i), "event_timestamp": stamp} for i in range(per_tick)]
            if k % probe_every == 0:
                produced[n + per_tick - 1] = time.perf_counter()
            shard.extend(batch)  # list.extend is atomic under the GIL: the consumer sees whole ticks
            n += per_tick
            k += 1

    stats = {}

    def consume():
        stats["s"] = store.stream("v", source, consumer="fresh", max_seconds=a.max_seconds,
                                  poll_seconds=a.poll_seconds, stop=done.is_set, compact_every=None)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    reader = sk.FeatureStore(path)
    seen: list[float] = []
    probed: set[int] = set()
    load0 = os.getloadavg()[0]
    t_end = time.perf_counter() + a.seconds
    while time.perf_counter() < t_end:
        todo = [k for k in list(produced) if k not in probed]
        if not todo:
            time.sleep(0.001)
            continue
        key = todo[0]
        while time.perf_counter() < t_end + 5:
            got = reader.get_online_features(["v:x"], [{"k": key}]).values["x"][0]
            if got == float(key):
                seen.append(time.perf_counter() - produced[key])
                break
            time.sleep(0.0005)
        probed.add(key)
    done.set()
    for t in threads:
        t.join(60)
    s = stats.get("s")
    seen.sort()

    def pct(q):
        return round(seen[min(len(seen) - 1, int(q * len(seen)))] * 1000, 1) if seen else None
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rate": a.rate, "seconds": a.seconds,
           "produced": len(shard), "probes": len(seen), "visible_p50_ms": pct(0.5), "visible_p99_ms": pct(0.99),
           "visible_max_ms": round(seen[-1] * 1000, 1) if seen else None,
           "micro_batches": getattr(s, "batches", None), "max_seconds": a.max_seconds,
           "poll_seconds": a.poll_seconds, "online": "redis", "load_before": round(load0, 2),
           "load_after": round(os.getloadavg()[0], 2),
           "command": "./run shell -m bench.stream_freshness_bench " + " ".join(argv)}
    doc["events_per_batch"] = round(doc["produced"] / doc["micro_batches"]) if doc["micro_batches"] else None
    md = (f"Stream -> online freshness ({doc['when']}), `{doc['command'].strip()}`: {doc['produced']:,} events at "
          f"{a.rate:,}/s into a `memory://` stream, consumed exactly once into Redis + the offline history in "
          f"{doc['micro_batches']} micro-batches (~{doc['events_per_batch']} events each; max_seconds "
          f"{a.max_seconds}, poll {a.poll_seconds} s): produced -> visible online p50 {doc['visible_p50_ms']} ms / "
          f"p99 {doc['visible_p99_ms']} ms / max {doc['visible_max_ms']} ms over {doc['probes']} probed events "
          f"(load average {doc['load_before']} before, {doc['load_after']} after).")
    for folder in result_dirs(a.publish):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{a.tag}.json").write_text(json.dumps(doc, indent=1))
        (folder / f"{a.tag}.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
