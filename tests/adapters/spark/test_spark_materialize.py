"""Materialize from Spark's executors into Redis (``materialize_writes: workers``, adapters/spark/materialize.py):
the online state equals the driver path's and the DuckDB engine's, a crashed part is redone on a rerun while the
finished parts are skipped, SQLite keeps the driver path, and bad options are ConfigErrors. Real pyspark (local
mode, the session the other Spark tests share) and the local cloud's redis-server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import redis

import skewless as sk
from skewless.adapters.spark.engine import SparkEngine
from skewless.config import StoreConfig
from skewless.errors import ConfigError, EngineError
from skewless.materialize import last_end

from .conftest import SPARK_OPTIONS

# Recent times: Redis evicts aggregation tiles past their newest tile + the longest window, by the wall clock.
T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


def H(h: float) -> datetime:
    return T0 + timedelta(hours=h)


N = 300  # entities of view v
PARTS = 4
START, END, NOW = H(-10), H(3), H(3.5)
GRACE = {"ttl_grace_seconds": 400_000_000}  # Redis keeps expired rows, so reads say EXPIRED as SQLite would


def _define(store: sk.FeatureStore) -> None:
    ent = sk.Entity("ent", join_keys=["k"])
    cust = sk.Entity("cust", join_keys=["c", "region"])
    store.apply([ent, cust,
                 sk.FeatureView("v", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Float64),
                                                             sk.Field("s", sk.String)]),
                 sk.FeatureView("w", entities=[cust], ttl=timedelta(hours=1.5),
                                schema=[sk.Field("c", sk.Int64), sk.Field("region", sk.String),
                                        sk.Field("y", sk.Int64)]),
                 # tiles: materialize takes the aggregation path on every engine, with workers on or not
                 sk.AggregatedView("a", [ent], [sk.Field("k", sk.Int64), sk.Field("x", sk.Float64)],
                                   [sk.Aggregation("x", "sum", timedelta(hours=2), name="x_sum_2h"),
                                    sk.Aggregation(None, "count(*)", timedelta(hours=6), name="n_6h")],
                                   hop=timedelta(hours=1))])


def _fill(store: sk.FeatureStore) -> None:
    """History only (online=False): the online rows come from materialize alone. Late-created rows that lose and
    that win a tie, rows after END (not true yet), entities with rows before START only."""
    v = [(k, H(h), H(h), float(k * 10 + h), f"s{h}") for k in range(N) for h in range(5)]
    v += [(k, H(2), H(9), -1.0, "late") for k in range(0, N, 3)]  # an older event: never wins at END
    v += [(k, H(3), H(5), -float(k), "tie") for k in range(0, N, 5)]  # the same event, created later: wins
    v += [(k, H(-50), H(-50), 0.5, "old") for k in range(N, N + 10)]  # before START: not materialized
    store.ingest("v", pd.DataFrame(v, columns=["k", "event_timestamp", "created_timestamp", "x", "s"]), online=False)
    w = [(c, r, H(c % 4), H(c % 4), c * 100 + i) for c in range(120) for i, r in enumerate(("eu", "us", "ap"))]
    store.ingest("w", pd.DataFrame(w, columns=["c", "region", "event_timestamp", "created_timestamp", "y"]),
                 online=False)
    a = [(k % 40, H(h / 2), H(h / 2), float(k + h)) for k in range(80) for h in range(8)]
    store.ingest("a", pd.DataFrame(a, columns=["k", "event_timestamp", "created_timestamp", "x"]), online=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One repo, its histories written once; each test reads them through stores of its own (``_store``)."""
    path = tmp_path_factory.mktemp("spark-mat") / "repo"
    store = sk.init_repo(path)
    _define(store)
    _fill(store)
    return path


def _store(repo, engine: str, online_url: str, **options) -> sk.FeatureStore:
    """The repo with ``engine`` and ``online_url`` (a Redis URL gets a key prefix of its own: an empty store)."""
    base = sk.FeatureStore(repo).config
    online = dict(GRACE, key_prefix=f"t{uuid.uuid4().hex[:12]}") if online_url.startswith(("redis", "tair")) else {}
    cfg = dataclasses.replace(base, engine=engine, engine_options={**SPARK_OPTIONS, **options} if engine == "spark"
                              else {}, online=StoreConfig(online_url, online))
    return sk.FeatureStore(repo, config=cfg)


def _online(store: sk.FeatureStore) -> dict:
    got = {}
    for refs, rows in ((["v:x", "v:s"], [{"k": k} for k in range(N + 12)]),
                       (["w:y"], [{"c": c, "region": r} for c in range(122) for r in ("eu", "us", "ap", "zz")]),
                       (["a:x_sum_2h", "a:n_6h"], [{"k": k} for k in range(42)])):
        resp = store.get_online_features(refs, rows, now=NOW)
        got.update(resp.to_dict(include_event_timestamps=True))
        got.update({f"{f}__status": s for f, s in resp.statuses.items()})
    return got


def _parts_written(store: sk.FeatureStore) -> list:
    return list(store.online.list_meta("materialize_part/"))


def test_worker_writes_equal_the_driver_paths_and_the_duckdb_engines(repo, redis_url):
    workers = _store(repo, "spark", redis_url, materialize_partitions=PARTS)
    driver = _store(repo, "spark", redis_url, materialize_writes="driver")
    duck = _store(repo, "duckdb", redis_url)
    assert workers.engine.writes_online(workers.online) and not driver.engine.writes_online(driver.online)
    results = {name: s.materialize(START, END) for name, s in
               (("workers", workers), ("driver", driver), ("duckdb", duck))}
    assert [(r.view, r.rows, r.resumed_from) for r in results["workers"]] == [("a", 40, 0), ("v", N, 0),
                                                                                ("w", 360, 0)]
    assert [(r.view, r.rows) for r in results["workers"]] == [(r.view, r.rows) for r in results["driver"]] \
        == [(r.view, r.rows) for r in results["duckdb"]]
    state = json.loads(workers.online.get_meta("materialize/v"))
    assert state["done"] and state["parts"] == PARTS and state["rows_done"] == N
    assert _parts_written(workers) == []  # a finished job's part records are dropped
    got = {name: _online(s) for name, s in (("workers", workers), ("driver", driver), ("duckdb", duck))}
    assert got["workers"] == got["driver"] == got["duckdb"]
    v = got["workers"]
    assert v["x"][:N] == [-float(k) if k % 5 == 0 else float(k * 10 + 3) for k in range(N)]
    assert v["x"][N:] == [None] * 12 and set(v["x__status"][N:]) == {"NOT_FOUND"}
    assert {"PRESENT", "EXPIRED", "NOT_FOUND"} <= set(v["y__status"])  # not vacuous: every status occurs
    # tiles written (2 x 8 rows per key, 7 of them at or before NOW), none for keys without events
    assert v["n_6h"][:40] == [14] * 40 and v["n_6h"][40:] == [0] * 2
    assert "parts" not in json.loads(workers.online.get_meta("materialize/a"))  # ... by the tiles' path
    # the same keys in Redis, under each store's prefix (the encoding is the store's own write in both)
    client = redis.Redis.from_url(redis_url)

    def keys(store):
        head = store.online.prefix + b":"
        return sorted(k[len(head):] for k in client.scan_iter(match=head + b"*", count=1000)
                      if not k.startswith(head + b"__"))
    assert keys(workers) == keys(driver) == keys(duck) and len(keys(workers)) == N + 360 + 40
    assert last_end(workers.online, "v") == END


def test_a_crashed_part_is_redone_and_finished_parts_are_skipped(repo, redis_url, tmp_path):
    """A child process's materialize whose executor writing part 3 is killed (SIGKILL, after its first batch):
    Spark fails the job, the parts that finished are recorded; the rerun skips them, redoes the rest, and the online
    state and counts equal a clean run's."""
    store = _store(repo, "spark", redis_url, materialize_partitions=PARTS)
    cfg = store.config
    child = ("import dataclasses, json, sys\nfrom datetime import datetime\nimport skewless as sk\n"
             "from skewless.config import StoreConfig\n"
             "repo, (engine_options, url, options) = sys.argv[1], map(json.loads, sys.argv[2:5])\n"
             "cfg = dataclasses.replace(sk.FeatureStore(repo).config, engine='spark', engine_options=engine_options,"
             " online=StoreConfig(url, options))\n"
             "sk.FeatureStore(repo, config=cfg).materialize(datetime.fromisoformat(sys.argv[5]), "
             "datetime.fromisoformat(sys.argv[6]), ['v'])\n")
    env = {**os.environ, "SKEWLESS_KILL_AT": "materialize.worker_part.3"}
    proc = subprocess.run([sys.executable, "-c", child, str(repo), json.dumps(cfg.engine_options),
                           json.dumps(cfg.online.url), json.dumps(cfg.online.options), START.isoformat(),
                           END.isoformat()], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "EngineError" in proc.stderr, proc.stderr[-3000:]
    state = json.loads(store.online.get_meta("materialize/v"))
    assert not state["done"] and state["parts"] == PARTS
    prefix = f"materialize_part/v/{state['token']}/"
    done = {int(k[len(prefix):]): int(v) for k, v in store.online.list_meta(prefix).items()}
    assert done and 3 not in done, done  # part 3 died; Spark ran parts 0-2 first (2 at a time)
    [res] = store.materialize(START, END, ["v"])
    assert (res.rows, res.resumed_from) == (N, sum(done.values()))  # each row counted once
    assert json.loads(store.online.get_meta("materialize/v"))["done"] is True and _parts_written(store) == []
    clean = _store(repo, "spark", redis_url, materialize_partitions=PARTS)
    clean.materialize(START, END, ["v"])
    assert _online(store)["x"] == _online(clean)["x"]


def test_a_failing_part_fails_materialize_typed_and_nothing_is_marked_done(repo, redis_url):
    """Redis gone for the executors (the driver still reaches it): the job fails as an EngineError; the view is not
    marked done, its last end does not move, and the rerun with the store back completes."""
    store = _store(repo, "spark", redis_url, materialize_partitions=PARTS)
    real = store.config.online
    assert store.online.get_meta("materialize/v") is None  # the driver's store, opened before the change
    store.config.online = StoreConfig("redis://127.0.0.1:1/0", dict(real.options, retries=0))
    with pytest.raises(EngineError, match="materialize 'v'"):
        store.materialize(START, END, ["v"])
    assert not json.loads(store.online.get_meta("materialize/v"))["done"]
    assert last_end(store.online, "v") is None
    store.config.online = real
    [res] = store.materialize(START, END, ["v"])
    assert (res.rows, res.resumed_from) == (N, 0)


def test_sqlite_keeps_the_driver_path(repo, tmp_path):
    store = _store(repo, "spark", f"sqlite:///{tmp_path}/online.db")
    assert isinstance(store.engine, SparkEngine) and not store.engine.writes_online(store.online)
    [res] = store.materialize(START, END, ["v"])
    assert res.rows == N and "parts" not in json.loads(store.online.get_meta("materialize/v"))
    forced = _store(repo, "spark", f"sqlite:///{tmp_path}/online2.db", materialize_writes="workers")
    with pytest.raises(ConfigError, match="materialize_writes: workers"):
        forced.materialize(START, END, ["v"])


@pytest.mark.parametrize("options, message", [
    ({"materialize_writes": "executors"}, "materialize_writes must be workers or driver"),
    ({"materialize_partitions": 0}, "materialize_partitions must be an integer >= 1"),
    ({"materialize_partitions": "many"}, "materialize_partitions must be an integer >= 1"),
    ({"materialize_partitions": True}, "materialize_partitions must be an integer >= 1"),
])
def test_bad_materialize_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        SparkEngine({**SPARK_OPTIONS, **options})


def test_tair_takes_the_worker_path_and_matches_the_duckdb_engine(repo, tair_url):
    """Tair's store (the Redis store plus TairHash) opened on the executors from its tair:// URL: the same online
    state as the DuckDB engine's materialize into the same Tair."""
    workers = _store(repo, "spark", tair_url, materialize_partitions=PARTS)
    duck = _store(repo, "duckdb", tair_url)
    assert workers.engine.writes_online(workers.online)
    [res] = workers.materialize(START, END, ["v"])
    duck.materialize(START, END, ["v"])
    assert res.rows == N and json.loads(workers.online.get_meta("materialize/v"))["parts"] == PARTS
    got = [s.get_online_features(["v:x", "v:s"], [{"k": k} for k in range(N + 12)], now=NOW) for s in (workers, duck)]
    assert got[0].to_dict(include_event_timestamps=True) == got[1].to_dict(include_event_timestamps=True)
    assert got[0].statuses == got[1].statuses and got[0].to_dict()["x"][1] == 13.0
