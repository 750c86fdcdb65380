import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

import skewless as sk
from skewless.errors import StoreUnavailable

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
N = 120_000


def define(store, ttl=None):
    e = sk.Entity("user", join_keys=["user_id"])
    store.apply([e, sk.FeatureView("u", entities=[e], schema=[sk.Field("user_id", sk.Int64), sk.Field("score", sk.Float64),
                                                            sk.Field("n", sk.Int64)], ttl=ttl)])


def big_frame(seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, N // 2, N)
    return pd.DataFrame({"user_id": keys, "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 86400, N), "s"),
                         "created_timestamp": T0, "score": rng.random(N), "n": rng.integers(0, 10, N)})


def online_state(store, keys):
    r = store.get_online_features(["u:score", "u:n"], [{"user_id": int(k)} for k in keys], now=T0 + timedelta(days=2))
    return list(zip(r.values["score"], r.values["n"], r.event_timestamps["score"], r.statuses["score"]))


def historical_at(store, keys, t):
    ents = pd.DataFrame({"user_id": keys, "event_timestamp": [t] * len(keys)})
    df = store.get_historical_features(ents, ["u:score", "u:n"], include_event_timestamps=True).to_pandas()
    return df


def test_materialize_writes_winner_at_end_and_respects_window(repo):
    define(repo)
    repo.ingest("u", pd.DataFrame({"user_id": [1, 1, 2, 3], "event_timestamp": [T0, T0 + timedelta(hours=5), T0,
                                                                             T0 + timedelta(hours=30)],
                                   "score": [1.0, 5.0, 2.0, 3.0], "n": [1, 5, 2, 3]}))
    repo.online.drop_view("u")  # forget the ingest-time push: look at what materialize alone writes
    res = repo.materialize(T0, T0 + timedelta(hours=4))
    assert res[0].rows == 2
    r = repo.get_online_features(["u:score"], [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}],
                                 now=T0 + timedelta(hours=4))
    assert r.values["score"] == [1.0, 2.0, None]
    repo.materialize_incremental(T0 + timedelta(days=2))
    r = repo.get_online_features(["u:score"], [{"user_id": 1}, {"user_id": 3}], now=T0 + timedelta(days=2))
    assert r.values["score"] == [5.0, 3.0]


def test_incremental_twice_is_idempotent_and_matches_historical(repo):
    define(repo, ttl=timedelta(hours=12))
    df = big_frame()
    repo.ingest("u", df.iloc[: N // 2])
    repo.online.drop_view("u")
    end = T0 + timedelta(days=1)
    repo.materialize_incremental(end)
    repo.ingest("u", df.iloc[N // 2:])
    repo.materialize_incremental(end)
    keys = sorted(df.user_id.unique()[:500].tolist())
    first = online_state(repo, keys)
    repo.materialize_incremental(end)
    assert online_state(repo, keys) == first
    hist = historical_at(repo, keys, end)
    now_state = repo.get_online_features(["u:score"], [{"user_id": k} for k in keys], now=end)
    assert [None if pd.isna(x) else x for x in hist["score"]] == now_state.values["score"]


def test_kill_9_mid_materialize_then_rerun_equals_one_clean_run(tmp_path):
    df = big_frame(seed=3)
    clean, crashed = sk.init_repo(tmp_path / "clean"), sk.init_repo(tmp_path / "crashed")
    for s in (clean, crashed):
        define(s)
        s.ingest("u", df)
        s.online.drop_view("u")
        s.online.close()
    end = T0 + timedelta(days=1)
    script = textwrap.dedent(f"""
        import skewless as sk, datetime
        s = sk.FeatureStore({str(tmp_path / 'crashed')!r})
        s.materialize(datetime.datetime(2023, 12, 1, tzinfo=datetime.timezone.utc),
                      datetime.datetime.fromisoformat({end.isoformat()!r}), chunk_rows=2000)
        print("finished")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    db = tmp_path / "crashed" / "data" / "online.db"
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(db, timeout=1)
            row = con.execute("SELECT v FROM skewless_meta WHERE k = 'materialize/u'").fetchone()
            con.close()
        except sqlite3.Error:
            row = None
        if row and '"rows_done": 0,' not in row[0]:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    assert killed, "materialize finished before it could be killed; make the data larger"
    crashed = sk.FeatureStore(tmp_path / "crashed")
    res = crashed.materialize(datetime(2023, 12, 1, tzinfo=UTC), end, chunk_rows=2000)
    assert res[0].resumed_from > 0  # it resumed from the checkpoint instead of starting over
    clean = sk.FeatureStore(tmp_path / "clean")
    clean.materialize(datetime(2023, 12, 1, tzinfo=UTC), end)
    keys = sorted(df.user_id.unique().tolist())
    assert online_state(crashed, keys) == online_state(clean, keys)


def test_crash_between_offline_and_online_is_repaired_by_next_materialize(repo, monkeypatch):
    define(repo)
    repo.ingest("u", pd.DataFrame({"user_id": [1], "event_timestamp": [T0 + timedelta(hours=5)], "score": [5.0],
                                   "n": [5]}))
    repo.materialize_incremental(T0 + timedelta(days=1))
    original = type(repo.online).write

    def crash(self, view, rows):
        raise StoreUnavailable("simulated crash after the offline commit")
    monkeypatch.setattr(type(repo.online), "write", crash)
    late = pd.DataFrame({"user_id": [1], "event_timestamp": [T0 + timedelta(hours=6)], "score": [6.0], "n": [6]})
    with pytest.raises(StoreUnavailable):
        repo.ingest("u", late)
    monkeypatch.setattr(type(repo.online), "write", original)
    now = T0 + timedelta(days=2)
    assert repo.get_online_features(["u:score"], [{"user_id": 1}], now=now).values["score"] == [5.0]  # stale, not wrong
    # the next incremental window starts after the late row's event time, yet the pending batch is repaired
    repo.materialize_incremental(T0 + timedelta(days=1, hours=1))
    assert repo.get_online_features(["u:score"], [{"user_id": 1}], now=now).values["score"] == [6.0]
    assert repo.online.list_meta("pending/") == {}


def test_bad_materialize_arguments(repo):
    define(repo)
    with pytest.raises(sk.ValidationError, match="after"):
        repo.materialize(T0 + timedelta(days=1), T0)
    with pytest.raises(sk.ValidationError):
        repo.materialize("not a date", T0)


# -- the latest-per-entity query at each tie level, and the scan running ahead of the writes --------------------
def tie_frame(level: int, part: int) -> pd.DataFrame:
    """Rows whose ties among one entity's rows, also across parts, are exactly those of ``level``
    (HistoryFiles.tie_level)."""
    rng = np.random.default_rng(10 * level + part)
    n = 3000
    keys = rng.integers(0, 300, n)
    if level == 0:  # no two rows of an entity share an event time
        ev, cr = rng.permutation(n) + part * n, rng.integers(0, 10, n)
    elif level == 1:  # event ties, broken by created time
        ev, cr = rng.integers(0, 40, n), rng.permutation(n) + part * n
    else:  # ties on event and created: the write order decides
        ev, cr = rng.integers(0, 40, n), rng.integers(0, 3, n)
    return pd.DataFrame({"user_id": keys, "event_timestamp": T0 + pd.to_timedelta(ev, "s"),
                         "created_timestamp": T0 + pd.to_timedelta(cr, "s"), "score": rng.random(n),
                         "n": rng.integers(0, 1000, n)})


@pytest.mark.parametrize("level", [0, 1, 2])
def test_materialize_writes_the_spec_winner_at_each_tie_level(repo, level):
    define(repo)
    frames = [tie_frame(level, i) for i in range(2)]  # two writes: ties across them count too
    for df in frames:
        repo.ingest("u", df)
    assert repo.offline.files("u", repo.offline.version("u")).tie_level == level
    repo.online.drop_view("u")
    start, end = T0 + timedelta(seconds=5), T0 + timedelta(seconds=30 if level else 2000)
    seen = []
    res = repo.materialize(start, end, chunk_rows=37, progress=lambda v, n: seen.append((v, n)))
    every = pd.concat(frames)
    in_window = every[(every.event_timestamp >= start) & (every.event_timestamp <= end)]
    keys = sorted(every.user_id.unique().tolist())
    assert res[0].rows == in_window.user_id.nunique()
    assert [n for _, n in seen] == sorted(n for _, n in seen) and seen[-1] == ("u", res[0].rows)
    hist = historical_at(repo, keys, end)
    online = repo.get_online_features(["u:score", "u:n"], [{"user_id": k} for k in keys], now=end)
    wanted = set(in_window.user_id.tolist())
    for i, k in enumerate(keys):
        if k in wanted:  # the winner at end: what historical retrieval (checked against the oracle) returns
            assert (online.values["score"][i], online.values["n"][i]) == (hist["score"][i], hist["n"][i]), k
        else:  # no row in [start, end]: nothing written
            assert online.statuses["score"][i] == "NOT_FOUND", k


def test_latest_per_entity_renders_for_other_dialects():
    import sqlglot

    from skewless.offline.pit import latest_per_entity

    for dialect in ("spark", "hive", "presto"):
        for level in (0, 1, 2):
            sql = latest_per_entity("h", ("k", "j"), ("x",), "TIMESTAMP '2024-01-02'", "TIMESTAMP '2024-01-01'",
                                    tie_level=level, dialect=dialect)
            sqlglot.parse_one(sql, read=dialect)
            assert ("ROW_NUMBER" in sql.upper()) == (level > 0), sql


def two_views(store):
    e = sk.Entity("user", join_keys=["user_id"])
    schema = [sk.Field("user_id", sk.Int64), sk.Field("score", sk.Float64), sk.Field("n", sk.Int64)]
    store.apply([e, sk.FeatureView("u", entities=[e], schema=schema), sk.FeatureView("w", entities=[e], schema=schema)])
    df = big_frame(seed=5).iloc[:20_000]
    for v in ("u", "w"):
        store.ingest(v, df)
        store.online.drop_view(v)


def scan_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "skewless-materialize-scan" and t.is_alive()]


def test_scan_error_mid_view_reaches_the_caller_after_the_rows_before_it(repo, monkeypatch):
    import json

    two_views(repo)
    original = type(repo.engine).latest_rows

    def failing(self, con, view, *args, **kw):
        reader = original(self, con, view, *args, **kw)
        if view.name == "u":
            return reader

        def gen():
            yield reader.read_next_batch()
            raise RuntimeError("disk on fire")
        return gen()
    monkeypatch.setattr(type(repo.engine), "latest_rows", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        repo.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1), chunk_rows=1000)
    assert not scan_threads()
    assert json.loads(repo.online.get_meta("materialize/u"))["done"] is True
    w = json.loads(repo.online.get_meta("materialize/w"))
    assert w["done"] is False and w["rows_done"] == 1000  # the chunk before the error, and only it, is online
    monkeypatch.setattr(type(repo.engine), "latest_rows", original)
    res = repo.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1), chunk_rows=1000)
    assert [(r.view, r.resumed_from) for r in res] == [("u", 0), ("w", 1000)]


def test_write_error_stops_the_scan_without_a_hang(repo, monkeypatch):
    import json

    two_views(repo)
    calls = []

    def down(self, view, rows):
        calls.append(rows.num_rows)
        raise StoreUnavailable("online store down")
    monkeypatch.setattr(type(repo.online), "write", down)
    t = time.monotonic()
    with pytest.raises(StoreUnavailable):
        repo.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1), chunk_rows=500)
    assert time.monotonic() - t < 30 and calls == [500]
    assert not scan_threads()
    assert json.loads(repo.online.get_meta("materialize/u"))["rows_done"] == 0
    assert repo.online.get_meta("materialize/w") is None  # never started: no record
