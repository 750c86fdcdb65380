"""The Redis online store's measurements (``./run bench --online redis``): skewless vs the raw floor vs Feast.

    python -m bench.measure materialize-redis|online-redis DATA_DIR REDIS_REPO_DIR

The Redis itself is started by ``bench/__main__.py`` through ``skewless.localcloud`` (a dedicated redis-server, not
the local cloud's shared one). The Redis repo shares the benchmark repo's registry and Delta histories and only
moves its online store to Redis (``redis_repo``).

Floor: redis-py reading exactly the keys skewless reads, the cheapest way the layout allows (one string per view and
entity, so one MGET of all of them; with the earlier hash layout it was a pipelined HMGET per key), with the same
client options (timeouts, client name, hiredis), returning raw bytes: no decoding, no TTL, no statuses, no response
object. skewless and the floor run interleaved, call by call, in one process, so load from other
programs on the two cores falls on both alike.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import skewless as sk
from bench.workload import derived_repo, entity_sets, feature_refs, materialize, views_of

KEY_PREFIX = "bench"


def redis_repo(repo: Path, redis_url: str, out: Path) -> Path:
    """A repo reading ``repo``'s registry and histories, with its online store on ``redis_url``."""
    return derived_repo(repo, out, online={"url": redis_url, "options": {"key_prefix": KEY_PREFIX}})


def materialize_redis(data: Path, repo: Path, meta: dict, args) -> dict:
    import resource

    store = sk.FeatureStore(repo)
    for v, _ in views_of(meta):  # drop the last run's keys now, and let Redis free them before the clock starts
        store.online.drop_view(v)
    deadline = time.monotonic() + 60
    while store.online.client.info("memory").get("lazyfree_pending_objects", 0) and time.monotonic() < deadline:
        time.sleep(0.05)

    def cpu():  # Redis's and this process's CPU seconds: the two cores are shared, so say who used them
        i = store.online.client.info("cpu")
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return i["used_cpu_user"] + i["used_cpu_sys"], ru.ru_utime + ru.ru_stime
    c0 = cpu()
    out = materialize(data, repo, meta, args)
    c1 = cpu()
    out["redis_cpu_s"], out["client_cpu_s"] = round(c1[0] - c0[0], 2), round(c1[1] - c0[1], 2)
    out["feature_rows_scanned_per_s"] = round(out["feature_rows_scanned"] / out["wall_s"])
    info = store.online.client.info()
    out["redis"] = {"version": info.get("redis_version"), "used_memory_mb": round(info["used_memory"] / 2**20, 1),
                    "keys": store.online.client.dbsize(), "allocator": info.get("mem_allocator")}
    return out


def _floor_client(store):
    """A plain redis-py client with the skewless store's own connection options."""
    import redis

    kw = {k: v for k, v in store.online._kwargs.items() if k != "retry"}
    return redis.Redis.from_url(store.config.online.url, **kw)


def online_redis(data: Path, repo: Path, meta: dict, args) -> dict:
    store = sk.FeatureStore(repo)
    refs = feature_refs(meta)
    client = _floor_client(store)
    heads = [b"%b:%b:{" % (KEY_PREFIX.encode(), v.encode()) for v, _ in views_of(meta)]

    def floor(keys):
        return client.mget([b"%b%d}" % (head, k) for head in heads for k in keys])

    def skewless(keys):
        return store.get_online_features(refs, [{"driver_id": k} for k in keys])

    ones, hundreds = entity_sets(meta)
    _check_same(skewless(hundreds[0]), floor(hundreds[0]), meta)
    out = {}
    for name, sets, reps in (("one", ones, args.reps_1), ("hundred", hundreds, args.reps_100)):
        lat = {"skewless": [], "floor": []}
        for i in range(50 + reps):  # 50 warm-up calls each, then alternate call by call
            keys = sets[i % len(sets)]
            for who, fn in (("skewless", skewless), ("floor", floor)) if i % 2 else (("floor", floor),
                                                                                   ("skewless", skewless)):
                t = time.perf_counter_ns()
                fn(keys)
                if i >= 50:
                    lat[who].append((time.perf_counter_ns() - t) / 1e6)
        out[name] = {who: _summary(xs) for who, xs in lat.items()}
    r = skewless(hundreds[0])
    out["present_of_100"] = sum(st == "PRESENT" for st in r.statuses[refs[0].split(":")[1]])
    return out


def _summary(xs: list[float]) -> dict:
    import statistics

    xs = sorted(xs)
    return {"p50_ms": round(statistics.median(xs), 4), "p99_ms": round(xs[int(len(xs) * 0.99) - 1], 4),
            "reps": len(xs)}


def _check_same(resp, raw: list, meta: dict) -> None:
    """The floor reads what skewless reads: decode the floor's bytes and compare (a benchmark of wrong answers is
    worthless)."""
    i = 0
    n = len(resp.entity_rows)
    for _v, fs in views_of(meta):
        for j in range(n):
            value = raw[i]
            i += 1
            got = [resp.values[f][j] for f in fs]
            # decoded here from the documented row layout (adapters/redis/row_layout.py), not with skewless's decoder:
            # 32-byte order tuple, 8-byte layout id, null bitmap, then the Float64 values in view order
            nb = (len(fs) + 7) // 8
            want = [None] * len(fs) if value is None else list(struct.unpack_from(f"<{len(fs)}d", value, 40 + nb))
            if value is not None and any(value[40:40 + nb]):
                raise AssertionError("the bench data has no null features")
            if got != want:
                raise AssertionError(f"skewless and the floor disagree: {got} != {want}")


TASKS = {"materialize-redis": materialize_redis, "online-redis": online_redis}

__all__ = ["KEY_PREFIX", "TASKS", "redis_repo"]
