"""Online reads of aggregated views against plain views (issue 15's goals), on Redis or SQLite.

    python -m bench.agg_online_bench [--online redis|sqlite] [--calls N] [--ingest-only]

Three reads of one entity through ``get_online_features``, interleaved call by call in one process so other load
falls on all alike; medians in µs:

* ``plain12``: a plain view with 12 Float64 features (the reference);
* ``agg12``: an aggregated view with 12 outputs (count, sum, mean, max of ``amount`` over 1 h, 1 d, 7 d; hop 1 h),
  the entity holding an event every 20 minutes for 8 days (goal: <= 1.5x ``plain12``);
* ``agg_1d`` / ``agg_365d``: count, sum, mean, max over 1 day / over 365 days in a view whose longest window is
  365 days, an event every 2 hours for 400 days (goal: 365 d <= 2x 1 d).

Then ``ingest``: ``--ingest-events`` events (default 100,000) over 10,000 cards in the last 7 days, one
``ingest`` call into the ``agg12`` view's layout, tiles included (goal: >= 200k events/s into Redis).

``--ingest-only``: only the ingest, in a fresh process, with this process's CPU time and (Redis) the server's
(``INFO cpu``) beside the wall time. ``--ingest-batches N``: N such ingests into the same view, one after the other
(the first finds an empty history and computes its tiles from its own rows; each later one has every tile it
touches shared with earlier events, so it scans the history for them).

Redis: the local cloud's (``skewless.localcloud``, started on demand), or ``--redis-url``'s (a server of your own:
its ``INFO cpu`` is then this run's alone); SQLite: the repo's own file. ``overlap``: the share of the server's CPU
time hidden behind the client's, ``(client CPU + server CPU - wall) / server CPU`` (0: one waits for the other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

import skewless as sk

UTC = timezone.utc
H, D = timedelta(hours=1), timedelta(days=1)


def _store(path: Path, online: str, redis_url: str | None = None) -> sk.FeatureStore:
    fs = sk.init_repo(path)
    if online == "redis":
        from skewless.adapters.redis.store import from_url

        if redis_url is None:
            from skewless.localcloud import LocalCloud

            cloud = LocalCloud(os.environ.get("SKEWLESS_LOCAL_STATE", Path.cwd() / ".skewless-local"))
            cloud.acquire(["redis"])
            redis_url = cloud.endpoints()["redis"]
        fs.__dict__["online"] = from_url(redis_url, None, {"key_prefix": f"aggbench{os.getpid()}"})
    return fs


def _events(card: int, start: datetime, step: timedelta, n: int) -> pa.Table:
    ts = [start + step * i for i in range(n)]
    return pa.table({"card": pa.array([card] * n, pa.int64()), "event_timestamp": pa.array(ts, pa.timestamp("us", "UTC")),
                     "amount": pa.array([float(i % 97) for i in range(n)], pa.float64())})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--online", choices=["redis", "sqlite"], default="redis")
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--ingest-events", type=int, default=100_000)
    p.add_argument("--ingest-only", action="store_true")
    p.add_argument("--ingest-batches", type=int, default=1)
    p.add_argument("--redis-url", help="a Redis of your own (redis://host:port), its INFO cpu then this run's alone; "
                                       "default: the local cloud's")
    args = p.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as d:
        fs = _store(Path(d) / "repo", args.online, args.redis_url)
        card = sk.Entity("card", ["card"], dtype=sk.Int64)
        fields = [sk.Field("card", sk.Int64), sk.Field("amount", sk.Float64)]
        fns = ["count", "sum", "mean", "max"]
        agg12 = sk.AggregatedView("agg12", [card], fields, [sk.Aggregation("amount", f, w) for w in (H, D, 7 * D)
                                                             for f in fns], hop=H)
        year = sk.AggregatedView("year", [card], fields, [sk.Aggregation("amount", f, w) for w in (D, 365 * D)
                                                          for f in fns], hop=H)
        plain = sk.FeatureView("plain12", [card], [sk.Field("card", sk.Int64)]
                               + [sk.Field(f"f{i}", sk.Float64) for i in range(12)])
        if args.ingest_only:
            fs.apply([card])
            _ingest(fs, card, fields, agg12, now, args)
            return
        fs.apply([card, agg12, year, plain])
        fs.ingest("agg12", _events(1, now - 8 * D, timedelta(minutes=20), 8 * 72))
        fs.ingest("year", _events(1, now - 400 * D, 2 * H, 400 * 12))
        fs.ingest("plain12", pa.table({"card": [1], "event_timestamp": pa.array([now - H], pa.timestamp("us", "UTC")),
                                       **{f"f{i}": [float(i)] for i in range(12)}}))
        reads = {"plain12": [f"plain12:f{i}" for i in range(12)], "agg12": [f"agg12:{a.name}" for a in agg12.aggregations],
                 "agg_1d": [f"year:amount_{f}_1d" for f in fns], "agg_365d": [f"year:amount_{f}_365d" for f in fns]}
        rows = [{"card": 1}]
        times: dict[str, list[float]] = {k: [] for k in reads}
        for i in range(args.calls + 200):
            for name, refs in reads.items():
                t = time.perf_counter()
                fs.get_online_features(refs, rows)
                if i >= 200:  # warm-up
                    times[name].append((time.perf_counter() - t) * 1e6)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            print(f"{k:10s} median {v:8.1f} µs")
        print(f"agg12 / plain12 = {med['agg12'] / med['plain12']:.2f} (goal <= 1.5)")
        print(f"agg_365d / agg_1d = {med['agg_365d'] / med['agg_1d']:.2f} (goal <= 2)")
        _ingest(fs, card, fields, agg12, now, args)
        if args.online == "redis":
            for v in ("agg12", "year", "plain12"):
                fs.online.drop_view(v)


def _ingest(fs: sk.FeatureStore, card: sk.Entity, fields: list, agg12: sk.AggregatedView, now: datetime,
            args: argparse.Namespace) -> None:
    """One ``ingest`` of ``--ingest-events`` events into a view of ``agg12``'s layout, tiles included."""
    bulk = sk.AggregatedView("bulk", [card], fields, agg12.aggregations, hop=H)
    fs.apply([bulk])
    n = args.ingest_events
    server = (lambda: sum(fs.online.client.info("cpu")[k] for k in ("used_cpu_sys", "used_cpu_user"))) \
        if args.online == "redis" else (lambda: 0.0)
    for b in range(args.ingest_batches):
        rng = np.random.default_rng(b)
        ev = np.datetime64(now.replace(tzinfo=None), "us") - rng.integers(0, 7 * 86_400 * 10**6, n).astype(
            "timedelta64[us]")
        table = pa.table({"card": pa.array(rng.integers(0, 10_000, n), pa.int64()),
                          "event_timestamp": pa.array(ev, pa.timestamp("us", "UTC")),
                          "amount": pa.array(rng.random(n))})
        s0, c0, t = server(), time.process_time(), time.perf_counter()
        fs.ingest("bulk", table)
        took, cpu, scpu = time.perf_counter() - t, time.process_time() - c0, server() - s0
        history = "empty history" if b == 0 else f"history of {b * n:,} events"
        print(f"ingest {n} events over 10,000 cards ({history}): {took:.2f} s = {n / took:,.0f} events/s "
              f"(goal >= 200,000); client CPU {cpu:.2f} s, server CPU {scpu:.2f} s, "
              f"overlap {(cpu + scpu - took) / scpu if scpu else 0:.2f}, load {os.getloadavg()[0]:.1f}")
    if args.online == "redis":
        fs.online.drop_view("bulk")


if __name__ == "__main__":
    main()
