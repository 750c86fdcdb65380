"""The Redis online store on real redis-servers started through the local cloud's own code (never mocks):
the conformance suite, AUTH/ACL/TLS, one round trip per batched read, eviction, faults, cluster mode, and the
FeatureStore invariant (online at t=now equals the training-set path at t=now)."""

from __future__ import annotations

import math
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
import yaml
from tests.support.conformance.online import OnlineStoreConformance, rows, view, wall_now

import skewless as sk
from skewless import plugins
from skewless.adapters.redis.store import RedisOnlineStore, from_url, mask_url
from skewless.adapters.redis.scripts import ROW_UPSERT
from skewless.errors import ConfigError, StoreUnavailable, ValidationError
from skewless.localcloud import redis_service
from skewless.localcloud.cloud import redis_binary

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (Redis needs the port <= 55535)."""
    rnd = np.random.default_rng()
    for _ in range(200):
        p = int(rnd.integers(20000, 45000))
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture
def store(redis_url):
    s = from_url(redis_url, None, {"key_prefix": prefix()})
    yield s
    s.close()


class TestRedisOnlineStore(OnlineStoreConformance):
    @pytest.fixture
    def store(self, store):  # the module's fixture: a fresh key prefix on the local cloud's Redis
        return store


# -- encodings and the Lua script ------------------------------------------------------------------------
def test_floats_round_trip_bit_exactly(store):
    v = view("floats", fields=[sk.Field("d", sk.Float64), sk.Field("f", sk.Float32)])
    specials = [0.1, -0.0, 5e-324, 1.7976931348623157e308, float("inf"), -float("inf"), float("nan"), 1 / 3]
    rnd = np.random.default_rng(1).standard_normal(200) * 1e10
    ds = specials + rnd.tolist()
    store.write(v, rows(v, [{"k": i, "ev": T0, "d": d, "f": d} for i, d in enumerate(ds)]))
    got = store.read_raw([(v, ["d", "f"], [(i,) for i in range(len(ds))])])[0]
    f32 = pa.array(ds, pa.float32()).to_pylist()  # what a Float32 column holds
    for (_ev, (d, f)), want_d, want_f in zip(got, ds, f32):
        assert struct.pack("<d", d) == struct.pack("<d", want_d)
        assert (math.isnan(f) and math.isnan(want_f)) or struct.pack("<d", f) == struct.pack("<d", want_f)


def test_strings_and_bytes_keep_empty_apart_from_null(store):
    v = view("texts", fields=[sk.Field("s", sk.String), sk.Field("b", sk.Bytes)])
    vals = [("", b""), (None, None), ("\u00ff\u0000x", b"\xff"), ("\xff", b"\x00")]
    store.write(v, rows(v, [{"k": i, "ev": T0, "s": s, "b": b} for i, (s, b) in enumerate(vals)]))
    got = store.read([(v, ["s", "b"], [(i,) for i in range(len(vals))])], T0)[0]
    assert [tuple(x) for x in got.values] == vals


def test_wide_view_with_strings_and_nulls(store):
    fields = [sk.Field(f"f{i}", sk.Int64 if i % 2 else sk.String) for i in range(60)]  # a 60-bit null bitmap
    v = view("wide", fields=fields)
    full = {f.name: (i if i % 2 else str(i)) for i, f in enumerate(fields)}
    store.write(v, rows(v, [{"k": 1, "ev": T0, **full}]))
    half = {k: (None if i < 30 else x) for i, (k, x) in enumerate(full.items())}
    store.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(seconds=1), **half}]))
    store.write(v, rows(v, [{"k": 1, "ev": T0, **full, "wb": 99}]))  # older event: loses whatever its batch
    got = store.read([(v, v.feature_names, [(1,)])], T0 + timedelta(days=1))[0]
    assert got.values == [list(half.values())]


def test_batch_ids_beyond_2_pow_53_compare_exactly(store):
    v = view()
    big = 1_795_370_911_096_305_123  # a nanosecond batch id: doubles cannot tell it from big + 1
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 2.0, "wb": big + 1}]))
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0, "wb": big}]))
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [2.0]
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 3.0, "wb": big + 2}]))
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [3.0]


def test_many_rows_across_script_calls_and_duplicate_keys(redis_url):
    s = from_url(redis_url, None, {"key_prefix": prefix(), "write_batch_rows": 7})
    v = view()
    n = 1000
    data = [{"k": i % 300, "ev": T0 + timedelta(seconds=i), "x": float(i)} for i in range(n)]
    s.write(v, rows(v, data[::-1]))  # newest first: later calls must not overwrite
    got = s.read_raw([(v, ["x"], [(k,) for k in range(300)])])[0]
    assert [g[1][0] for g in got] == [float(max(i for i in range(n) if i % 300 == k)) for k in range(300)]
    s.close()


def command_calls(redis_url: str, key_prefix: str, action) -> list[int]:
    """The SET and EVALSHA commands (a SET run by a script counts too, and a script's MSET once per key) on keys
    under ``key_prefix`` while ``action()`` runs, read from MONITOR. The server-wide commandstats would also count the commands of tests running
    at the same time in other workers against the same server."""
    sentinel = "end-" + uuid.uuid4().hex
    with redis.Redis.from_url(redis_url).monitor() as mon:  # MONITOR is on when this returns
        action()
        redis.Redis.from_url(redis_url).echo(sentinel)
        counts = [0, 0]
        while True:
            cmd = mon.next_command()["command"]
            if cmd == f"ECHO {sentinel}":
                return counts
            name = cmd.split(" ", 1)[0].upper()
            if key_prefix in cmd and name in ("SET", "EVALSHA"):
                counts[name == "EVALSHA"] += 1
            elif key_prefix in cmd and name == "MSET":
                counts[0] += cmd.count(f"{key_prefix}:")


def test_new_keys_take_set_nx_and_existing_keys_the_script(redis_url):
    p = prefix()
    s = from_url(redis_url, None, {"key_prefix": p, "write_batch_rows": 10})
    redis.Redis.from_url(redis_url).script_load(ROW_UPSERT)  # another test may have flushed it: a NOSCRIPT rerun
    v = view()                                                 # would count twice
    s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 0.0}]))  # layout recorded, connection made
    # k=1 exists: 1 script call. A SET from inside a script counts too: 100 NX + 1 scripted (k=1 is newer by write
    # order)
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0, "x": float(k)} for k in range(100)]))) == [101, 1]
    # all older: 100 refused NX, 10 script calls, no scripted SET
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0 - timedelta(seconds=1), "x": -1.0} for k in range(100)]))) == [100, 10]
    assert [g[1][0] for g in s.read_raw([(v, ["x"], [(k,) for k in range(100)])])[0]] == [float(k) for k in range(100)]
    s.close()


def test_a_write_that_fits_one_script_call_is_one_call_new_keys_or_not(redis_url):
    """A push of at most ``write_batch_rows`` rows is one EVALSHA (one round trip), not SET NX then the script:
    new keys are inserted, newer rows replace stored ones, older ones lose."""
    p = prefix()
    s = from_url(redis_url, None, {"key_prefix": p, "write_batch_rows": 100})
    redis.Redis.from_url(redis_url).script_load(ROW_UPSERT)  # as above
    v = view()
    s.write(v, rows(v, [{"k": 1000, "ev": T0, "x": 0.0}]))  # layout recorded, connection made
    s.write(v, rows(v, [{"k": k, "ev": T0, "x": 0.0} for k in range(50)]))
    # 50 existing (newer: replaced, a SET each from the script) + 50 new (inserted): 1 call, 100 scripted SETs
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0 + timedelta(seconds=1), "x": float(k)} for k in range(100)]))) == [100, 1]
    # all older: one call, nothing replaced
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0, "x": -1.0} for k in range(100)]))) == [0, 1]
    assert [g[1][0] for g in s.read_raw([(v, ["x"], [(k,) for k in range(100)])])[0]] == [float(k) for k in range(100)]
    # one more row than a call holds: the two passes (101 SET NX, k=100 new and inserted; the 100 refused in
    # 1 script call)
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0, "x": -1.0} for k in range(101)]))) == [101, 1]
    s.close()


def test_a_rewrite_of_existing_keys_goes_to_the_script_after_the_first_pass(redis_url):
    """Re-materializing: the first 2,048 rows find their keys taken, so the rest skips SET NX."""
    p = prefix()
    s = from_url(redis_url, None, {"key_prefix": p})
    redis.Redis.from_url(redis_url).script_load(ROW_UPSERT)  # as above
    v = view()
    n = 5000
    s.write(v, rows(v, [{"k": k, "ev": T0, "x": 0.0} for k in range(n)]))
    # 2,048 refused SET NX + 5,000 scripted SETs; 16 script calls for the first pass's rows, 24 for the rest
    assert command_calls(redis_url, p, lambda: s.write(
        v, rows(v, [{"k": k, "ev": T0 + timedelta(seconds=1), "x": float(k)} for k in range(n)]))) == [2048 + n, 16 + 24]
    got = s.read_raw([(v, ["x"], [(k,) for k in range(n)])])[0]
    assert [g[1][0] for g in got] == [float(k) for k in range(n)]
    s.close()


def test_rows_of_an_earlier_definition_decode_by_name_in_a_new_process(redis_url):
    p = prefix()
    v1 = view("evo", fields=[sk.Field("x", sk.Float64), sk.Field("y", sk.String), sk.Field("z", sk.Int64)])
    first = from_url(redis_url, None, {"key_prefix": p})
    first.write(v1, rows(v1, [{"k": 1, "ev": T0, "x": 1.5, "y": "a", "z": 7}]))
    first.close()
    # a feature removed, one added, the order changed: a new store instance knows only the recorded layouts
    v2 = view("evo", fields=[sk.Field("w", sk.Bool), sk.Field("z", sk.Int64), sk.Field("y", sk.String)])
    later = from_url(redis_url, None, {"key_prefix": p})
    assert later.read_raw([(v2, ["z", "w", "y"], [(1,)])])[0] == [(sk_us(T0), [7, None, "a"])]
    # a dtype changed since the row was written: an error that says what to do, never a reinterpreted value
    v3 = view("evo", fields=[sk.Field("x", sk.Int64)])
    with pytest.raises(ValidationError, match="'x' is a Float64, not a Int64.*re-materialize"):
        later.read_raw([(v3, ["x"], [(1,)])])
    # a layout nobody recorded (the layouts hash lost): a clear error too
    redis.Redis.from_url(redis_url).delete(f"{p}:__layouts")
    with pytest.raises(ValidationError, match="not recorded.*re-materialize"):
        from_url(redis_url, None, {"key_prefix": p}).read_raw([(v2, ["z"], [(1,)])])
    later.close()


def test_a_hash_of_the_earlier_layout_reads_absent_and_is_replaced(store, redis_url):
    v = view()
    key = f"{store.prefix.decode()}:v:{{5}}"
    redis.Redis.from_url(redis_url).hset(key, mapping={"__e": "1", "__o": "1:0:0:0", "x": b"\0" * 8})
    assert store.read_raw([(v, ["x"], [(5,)])])[0] == [None]
    store.write(v, rows(v, [{"k": 5, "ev": T0, "x": 4.0}]))
    assert store.read_raw([(v, ["x"], [(5,)])])[0] == [(sk_us(T0), [4.0])]


def test_many_key_reads_decode_like_one_key_reads(store):
    """The vectorized (columnar) decode of a many-key read against the value-by-value one: absent keys, nulls, an older
    layout, every fixed-width dtype, a subset of features in another order."""
    fields = [sk.Field("a", sk.Float64), sk.Field("b", sk.Int32), sk.Field("c", sk.Bool), sk.Field("d", sk.Float32),
              sk.Field("e", sk.Int64)]
    v1 = view("many", fields=fields[:4])
    store.write(v1, rows(v1, [{"k": 1000, "ev": T0, "a": 1.0, "b": 1, "c": True, "d": 0.5}]))  # the older layout
    v = view("many", fields=fields)
    data = [{"k": k, "ev": T0 + timedelta(seconds=k), "a": k / 3, "b": -k, "c": k % 2 == 0, "d": k / 7, "e": k << 40}
            for k in range(60)]
    data[7]["a"] = None  # a null: that read falls back to value by value
    store.write(v, rows(v, data))
    keys = [(k,) for k in range(70)]  # 60..69 absent
    for feats in (["e", "a", "c"], v.feature_names):
        for ks in (keys, [k for k in keys if k != (7,)], keys[:5] + [(1000,)]):
            got = store.read_raw([(v, feats, ks)])[0]  # value by value
            evs, cols = store.read_raw_columns([(v, feats, ks)])[0]  # one numpy pass where it can
            assert evs == [None if g is None else g[0] for g in got]
            assert cols == [[None if g is None else g[1][j] for g in got] for j in range(len(feats))]
            want = {d["k"]: [d[f] if f != "d" or d[f] is None else float(np.float32(d[f])) for f in feats]
                    for d in data}
            want[1000] = [{"a": 1.0, "b": 1, "c": True, "d": 0.5}.get(f) for f in feats]
            assert [None if g is None else g[1] for g in got] == [want.get(k[0]) for k in ks]


def test_reads_poll_then_block_and_stop_polling_where_replies_are_slower(redis_url):
    p = prefix()
    v = view()
    writer = from_url(redis_url, None, {"key_prefix": p})
    writer.write(v, rows(v, [{"k": k, "ev": T0, "x": float(k)} for k in range(50)]))
    reqs = [(v, ["x"], [(k,) for k in range(60)])]  # 60 keys: a small read, which polls
    want = writer.read_raw(reqs)
    assert [w[1][0] for w in want[0][:50]] == [float(k) for k in range(50)] and want[0][50:] == [None] * 10
    blocking = from_url(redis_url, None, {"key_prefix": p, "read_spin_us": 0})
    assert blocking.read_raw(reqs) == want and not blocking.wire.spin.use()
    # Replies held back by CLIENT PAUSE cannot arrive within the 100 µs of polling: each read falls back to
    # blocking with the same answers, and after 8 such reads in a row polling pauses for the next 256.
    admin = redis.Redis.from_url(redis_url)
    store = from_url(redis_url, None, {"key_prefix": p})
    store.read_raw(reqs)  # connected, plans built
    store.wire.spin.misses = 0  # whether that read finished polling depends on the moment
    for i in range(8):
        assert store.wire.spin.paused == 0 and store.wire.spin.misses == i
        admin.client_pause(30)
        assert store.read_raw(reqs) == want
    assert store.wire.spin.paused == 256 and store.wire.spin.misses == 0
    assert store.read_raw(reqs) == want and store.wire.spin.paused == 255  # this read did not poll
    for s in (writer, blocking, store):
        s.close()


def test_script_flushed_on_the_server_is_reloaded(store, redis_url):
    v = view()
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
    redis.Redis.from_url(redis_url).script_flush()
    store.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(seconds=1), "x": 2.0}]))
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [2.0]


# -- reads: one round trip ---------------------------------------------------------------------------------
def test_batched_read_of_three_views_is_one_round_trip(store, redis_url, monkeypatch):
    views = [view(f"rt{i}", fields=[sk.Field(f"a{i}", sk.Float64), sk.Field(f"b{i}", sk.Int64)]) for i in range(3)]
    n = 200
    for i, v in enumerate(views):
        store.write(v, rows(v, [{"k": k, "ev": T0, f"a{i}": k / 2, f"b{i}": k} for k in range(n)]))
    reqs = [(v, v.feature_names, [(k,) for k in range(n + 5)]) for v in views]
    store.read_raw(reqs)  # warm: connection made, plans built
    admin = redis.Redis.from_url(redis_url)
    before = admin.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)
    sends = []
    real = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command",
                        lambda self, cmd, check_health=True: (sends.append(1), real(self, cmd, check_health))[1])
    got = store.read_raw(reqs)
    monkeypatch.undo()
    after = admin.info("commandstats")["cmdstat_mget"]["calls"]
    assert len(sends) == 1  # every command of the batch written at once, then every reply read: one round trip
    assert after - before == 1  # 3 x 205 keys: one MGET
    for r in got:
        assert r[:n] == [(sk_us(T0), [k / 2, k]) for k in range(n)] and r[n:] == [None] * 5


def sk_us(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# -- TTL eviction ------------------------------------------------------------------------------------------
def test_keys_expire_at_event_time_plus_ttl(store, redis_url):
    v = view("short", ttl=timedelta(seconds=1))
    t = wall_now()
    store.write(v, rows(v, [{"k": 1, "ev": t, "x": 1.0}]))
    key = f"{store.prefix.decode()}:short:{{1}}"
    pttl = redis.Redis.from_url(redis_url).pttl(key)
    assert 0 < pttl <= 1001
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0] is not None
    time.sleep(max(0.0, (t + timedelta(seconds=1.05) - wall_now()).total_seconds()))
    assert store.read_raw([(v, ["x"], [(1,)])])[0] == [None]
    # a view that loses its TTL: the next newer write makes the key permanent
    v2 = view("short", ttl=None)
    store.write(v2, rows(v2, [{"k": 2, "ev": wall_now(), "x": 1.0}]))
    store.write(v, rows(v, [{"k": 3, "ev": wall_now(), "x": 1.0}]))
    store.write(v2, rows(v2, [{"k": 3, "ev": wall_now(), "x": 2.0}]))
    admin = redis.Redis.from_url(redis_url)
    assert admin.pttl(f"{store.prefix.decode()}:short:{{2}}") == -1
    assert admin.pttl(f"{store.prefix.decode()}:short:{{3}}") == -1


def test_ttl_grace_delays_eviction(redis_url):
    s = from_url(redis_url, None, {"key_prefix": prefix(), "ttl_grace_seconds": 3600})
    assert s.eviction_grace == timedelta(hours=1)
    v = view("g", ttl=timedelta(hours=1))
    t = wall_now() - timedelta(minutes=90)  # past its TTL, inside the grace
    s.write(v, rows(v, [{"k": 1, "ev": t, "x": 1.0}]))
    assert s.read([(v, ["x"], [(1,)])], wall_now())[0].statuses == ["EXPIRED"]
    s.close()


# -- drop_view and meta ------------------------------------------------------------------------------------
def test_drop_view_unlinks_only_that_views_keys(redis_url):
    p = prefix()
    s, other = from_url(redis_url, None, {"key_prefix": p}), from_url(redis_url, None, {"key_prefix": p + "x"})
    a, b = view("a"), view("ab")
    data = [{"k": i, "ev": T0, "x": 1.0} for i in range(2500)]
    for st in (s, other):
        st.write(a, rows(a, data))
        st.write(b, rows(b, data[:10]))
    s.set_meta("materialize/a", "{}")
    s.drop_view("a")
    admin = redis.Redis.from_url(redis_url)
    assert not list(admin.scan_iter(match=f"{p}:a:*", count=1000))
    assert s.read_raw([(b, ["x"], [(1,)])])[0][0] is not None
    assert other.read_raw([(a, ["x"], [(1,)])])[0][0] is not None
    assert s.get_meta("materialize/a") == "{}"  # checkpoints are not values


# -- configuration, credentials, faults ----------------------------------------------------------------------
def test_factory_options_and_url_masking(redis_url, tmp_path):
    s = plugins.load("online", redis_url)(redis_url, tmp_path, {"key_prefix": "proj"})
    assert isinstance(s, RedisOnlineStore) and s.prefix == b"proj"
    assert from_url(redis_url, None, {}).prefix == b"skewless"
    with pytest.raises(ConfigError, match="unknown Redis online store options"):
        from_url(redis_url, None, {"prefix": "x"})
    with pytest.raises(ConfigError, match="key_prefix"):
        from_url(redis_url, None, {"key_prefix": "a{b}"})
    assert mask_url("redis://alice:s3cr%40t@h:6379/1") == "redis://alice:***@h:6379/1"
    assert mask_url("rediss://:pw@h/0") == "rediss://:***@h/0"
    assert from_url("redis://u:hunter2@127.0.0.1:1/0", None, {}).url == "redis://u:***@127.0.0.1:1/0"


def test_closed_port_is_store_unavailable_fast_and_bounded():
    port = free_port()
    s = from_url(f"redis://:hunter2@127.0.0.1:{port}/0", None, {"key_prefix": prefix()})
    t = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        s.get_meta("x")
    took = time.monotonic() - t
    assert err.value.endpoint == f"127.0.0.1:{port}" and f"127.0.0.1:{port}" in str(err.value)
    assert "hunter2" not in str(err.value) and "hunter2" not in repr(err.value.__cause__)
    assert isinstance(err.value.__cause__, redis.ConnectionError)
    assert 0.25 <= took < 2.0  # 3 attempts, backoff 0.1 s + 0.2 s between them
    v = view()
    with pytest.raises(StoreUnavailable):
        s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
    with pytest.raises(StoreUnavailable):
        s.read([(v, ["x"], [(1,)])], T0)


def test_unresponsive_server_times_out_bounded():
    """A server that accepts connections and never answers: bounded by socket_timeout x attempts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        s = from_url(f"redis://127.0.0.1:{srv.getsockname()[1]}/0", None,
                     {"socket_timeout": 0.2, "connect_timeout": 0.2})
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="127.0.0.1"):
            s.get_meta("x")
        assert time.monotonic() - t < 2.0
    finally:
        stop.set()
        th.join()
        for c in held:
            c.close()
        srv.close()


@pytest.fixture
def extra_redis(tmp_path):
    """Start extra redis-servers (AUTH, ACL, TLS, cluster nodes) through skewless.localcloud; stop them after."""
    started = []

    def start(name, extra_args, port=None):
        svc = redis_service(name, port or free_port(), extra_args=extra_args, state=tmp_path)
        try:
            svc.start(tmp_path)
        except StoreUnavailable as exc:
            if "Bad directive" in str(exc):
                pytest.skip(f"{redis_binary()} lacks a feature this test needs: {str(exc).splitlines()[-1]}")
            raise
        started.append(svc)
        return svc
    yield start
    for svc in started:
        svc.stop(tmp_path)


def test_auth_password(extra_redis):
    svc = extra_redis("redis-auth", ["--requirepass", "pa55word"])
    s = from_url(f"redis://:pa55word@127.0.0.1:{svc.port}/0", None, {"key_prefix": prefix()})
    v = view()
    s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
    assert s.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0]
    s.set_meta("a", "1")
    assert s.list_meta("") == {"a": "1"}
    s2 = from_url(f"redis://127.0.0.1:{svc.port}/0", None, {"password": "pa55word"})  # password as an option
    assert s2.get_meta("a") is None  # another prefix
    bad = from_url(f"redis://:wrong-pw@127.0.0.1:{svc.port}/0", None, {})
    t = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        bad.get_meta("a")
    assert time.monotonic() - t < 0.5  # a wrong password is not retried
    assert "wrong-pw" not in str(err.value) and f"127.0.0.1:{svc.port}" in str(err.value)


# The least-privilege ACL documented in adapters/redis/store.py's docstring, command by command.
ACL_COMMANDS = ["+set", "+mset", "+mget", "+evalsha", "+script|load", "+hget", "+hset", "+hsetnx", "+hdel",
                "+hgetall", "+scan", "+unlink", "+ping", "+client|setname", "+select",
                "+hmget", "+exists", "+hvals", "+pexpiretime", "+pexpireat", "+multi", "+exec", "+rename", "+del", "+eval"]


def test_acl_user_with_least_privilege(extra_redis):
    p = prefix()
    rules = [f"~{p}:*", *ACL_COMMANDS]
    svc = extra_redis("redis-acl", ["--user", "skewless", "on", ">s3cret", *rules])
    s = from_url(f"redis://skewless:s3cret@127.0.0.1:{svc.port}/1", None, {"key_prefix": p})
    v = view("acl", ttl=timedelta(days=365 * 50))
    s.write(v, rows(v, [{"k": 1, "ev": wall_now(), "x": 1.0}]))
    assert s.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0]
    s.write(v, rows(v, [{"k": 1, "ev": wall_now(), "x": 2.0}]))  # an existing key: the script (MGET, SET PXAT)
    assert s.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [2.0]
    # an older row loses: the script could read the stored row (a read refused inside a script must not pass for
    # an absent key)
    s.write(v, rows(v, [{"k": 1, "ev": wall_now() - timedelta(hours=1), "x": 3.0}]))
    assert s.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [2.0]
    nt = view("acl_nottl")  # no TTL: the script writes its winners by MSET
    for x in (1.0, 2.0):
        s.write(nt, rows(nt, [{"k": 1, "ev": wall_now(), "x": x}, {"k": 2, "ev": wall_now(), "x": x}]))
    assert [r[1] for r in s.read_raw([(nt, ["x"], [(1,), (2,)])])[0]] == [[2.0], [2.0]]
    s.set_meta("materialize/acl", "x")
    assert s.list_meta("materialize/") == {"materialize/acl": "x"}
    s.drop_view("acl")
    assert s.read_raw([(v, ["x"], [(1,)])])[0] == [None]
    outside = from_url(f"redis://skewless:s3cret@127.0.0.1:{svc.port}/1", None, {"key_prefix": "elsewhere"})
    with pytest.raises(StoreUnavailable, match="(?i)NOPERM|no permissions"):
        outside.write(v, rows(v, [{"k": 1, "ev": wall_now(), "x": 1.0}]))


@pytest.mark.parametrize("form", ["tuples", "batch"])
def test_acl_user_with_least_privilege_keeps_aggregation_tiles(extra_redis, form):
    """The documented ACL (adapters/redis/store.py) covers the tile scripts: the upsert with and without the
    ``~v`` shortcut, a hash written before ``~v`` existed (EXISTS, HVALS), the expire time, reads, dropping."""
    from skewless.online.base import to_us

    p = prefix()
    rules = [f"~{p}:*", *ACL_COMMANDS]
    svc = extra_redis("redis-acl-tiles", ["--user", "skewless", "on", ">s3cret", *rules])
    s = from_url(f"redis://skewless:s3cret@127.0.0.1:{svc.port}/1", None, {"key_prefix": p})
    put = s.write_tiles if form == "tuples" else (lambda v, tiles, version: s.write_tiles(v, _tile_batch(v, tiles),
                                                                                             version))
    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggacl", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(hours=2))], hop=timedelta(hours=1))
    cur = to_us(wall_now()) // v.hop_us
    put(v, [((1,), 0, cur, b"a3"), ((2,), 0, cur - 1, b"b3")], 3)
    put(v, [((1,), 0, cur, b"a2")], 2)  # older: kept out field by field
    put(v, [((1,), 0, cur - 1, b"a4")], 4)  # newer: the shortcut
    admin = redis.Redis(port=svc.port, db=1)
    admin.hdel(s._tile_key(v, (2,)), "~v")  # as written before '~v' existed
    put(v, [((2,), 0, cur - 1, b"b5")], 5)
    assert s.read_tiles(v, [(1,), (2,)], [(0, cur), (0, cur - 1)]) == [
        {(0, cur): b"a3", (0, cur - 1): b"a4"}, {(0, cur - 1): b"b5"}]
    assert admin.pexpiretime(s._tile_key(v, (1,))) > 0
    s.drop_view("aggacl")
    assert s.read_tiles(v, [(1,), (2,)], [(0, cur)]) == [{}, {}]


def test_acl_user_with_least_privilege_writes_tiles_as_transactions(extra_redis):
    """The documented ACL covers the guarded write of packed tiles (MULTI, EVAL of TILE_OPEN: HGET, RENAME; HSET;
    EVAL of TILE_SETTLE: EXISTS, RENAME, PEXPIRETIME, PEXPIREAT, or HGETALL, DEL and the upsert; EXEC) over absent,
    older, newer, mixed and pre-``~v`` hashes: nothing refused and written again, exactly the upsert's result."""
    from tests.adapters.redis import test_redis_tile_guard as guard

    from skewless.online.base import to_us

    p = prefix()
    svc = extra_redis("redis-acl-guarded", ["--user", "skewless", "on", ">s3cret", f"~{p}:*", *ACL_COMMANDS])
    s = from_url(f"redis://skewless:s3cret@127.0.0.1:{svc.port}/1", None, {"key_prefix": p})
    top = to_us(wall_now()) // guard.VIEW.hop_us
    guard._prepare(s, top)
    s.write_tiles = None  # a refused chunk would be written again through it: here it must not be
    assert s.start_write_tiles(guard.VIEW, guard._batch(top), 5)() == 4 * guard.CARDS
    assert guard._work(s) == []
    assert s.read_tiles(guard.VIEW, [(0,), (250,)], [(0, top)]) == [
        {(0, top): guard._batch(top).state[2].as_py()}, {(0, top): b"newer250"}]
    s.drop_view(guard.VIEW.name)


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("skewless test CA")).issuer_name(name("skewless test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=1)).add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                                                  critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_tls_with_a_private_ca(extra_redis, tmp_path):
    ca, cert, key = _certificates(tmp_path)
    tls_port = free_port()
    extra_redis("redis-tls", ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                              "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--requirepass", "tlspw"])
    url = f"rediss://:tlspw@127.0.0.1:{tls_port}/0"
    s = from_url(url, tmp_path, {"key_prefix": prefix(), "ssl_ca_certs": "ca.pem"})  # relative to the repo
    v = view()
    s.write(v, rows(v, [{"k": k, "ev": T0, "x": float(k)} for k in range(100)]))
    assert [r[1] for r in s.read_raw([(v, ["x"], [(k,) for k in range(100)])])[0]] == [[float(k)] for k in range(100)]
    tv = sk.AggregatedView("tlstiles", [sk.Entity("card", ["card"], dtype=sk.Int64)],
                           [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                           [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))
    top = int(wall_now().timestamp() * 1e6) // tv.hop_us  # (tiles of 2024 would expire at once)
    finishes = [s.start_write_tiles(tv, _tile_batch(tv, [((c,), 0, top, b"t%d" % c) for c in range(k, k + 150)]), 1)
                for k in (0, 150, 300)]  # pipelined on a TLS stream: each read once the later ones are sent
    assert [f() for f in finishes] == [150] * 3
    assert s._tile_streams().get().tls
    assert s.read_tiles(tv, [(c,) for c in range(450)], [(0, top)]) == [{(0, top): b"t%d" % c} for c in range(450)]
    untrusted = from_url(url, None, {"key_prefix": prefix()})  # the system CAs do not know this server
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{tls_port}") as err:
        untrusted.get_meta("x")
    assert "tlspw" not in str(err.value)


# -- cluster mode ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    """A 3-primary Redis Cluster on loopback, built with redis-cli --cluster create."""
    state = tmp_path_factory.mktemp("cluster")
    cli = shutil.which("redis-cli") or str(Path(redis_binary()).with_name("redis-cli"))
    ports = [free_cluster_port() for _ in range(3)]
    nodes = [redis_service(f"cluster-{p}", p, extra_args=["--cluster-enabled", "yes", "--cluster-config-file",
                                                           f"nodes-{p}.conf", "--cluster-node-timeout", "2000"],
                           state=state) for p in ports]
    try:
        for n in nodes:
            n.start(state)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            infos = [redis.Redis(port=p).cluster("info") for p in ports]
            if all(i["cluster_state"] == "ok" for i in infos):
                break
            time.sleep(0.1)
        else:
            pytest.fail("cluster did not become ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for n in nodes:
            n.stop(state)


class TestRedisClusterOnlineStore(OnlineStoreConformance):
    @pytest.fixture
    def store(self, cluster_url):
        s = from_url(cluster_url, None, {"key_prefix": prefix(), "cluster": True})
        yield s
        s.close()

    def test_views_of_one_entity_share_a_slot_and_reads_span_nodes(self, store):
        from redis.crc import key_slot

        a, b = view("a"), view("b", fields=[sk.Field("z", sk.Int64)])
        assert key_slot(b"p:a:{42}") == key_slot(b"p:b:{42}")
        n = 300  # spread over all three primaries
        store.write(a, rows(a, [{"k": k, "ev": T0, "x": float(k)} for k in range(n)]))
        store.write(b, rows(b, [{"k": k, "ev": T0, "z": k} for k in range(n)]))
        ra, rb = store.read_raw([(a, ["x"], [(k,) for k in range(n)]), (b, ["z"], [(k,) for k in range(n)])])
        assert [r[1] for r in ra] == [[float(k)] for k in range(n)] and [r[1] for r in rb] == [[k] for k in range(n)]
        store.drop_view("a")
        assert store.read_raw([(a, ["x"], [(k,) for k in range(n)])])[0] == [None] * n


# -- FeatureStore: online at t=now equals the training-set path at t=now --------------------------------------
def redis_repo(path: Path, redis_url: str) -> sk.FeatureStore:
    sk.init_repo(path, project="redis_test")
    cfg = yaml.safe_load((path / "skewless.yaml").read_text())
    cfg["online"] = {"url": redis_url, "options": {"key_prefix": prefix()}}
    (path / "skewless.yaml").write_text(yaml.safe_dump(cfg))
    return sk.FeatureStore(path)


def test_feature_store_online_equals_historical_at_now(tmp_path, redis_url):
    store = redis_repo(tmp_path / "repo", redis_url)
    user = sk.Entity("user", join_keys=["user_id"])
    stats = sk.FeatureView("stats", entities=[user], schema=[
        sk.Field("user_id", sk.Int64), sk.Field("score", sk.Float64), sk.Field("n", sk.Int32),
        sk.Field("name", sk.String), sk.Field("flag", sk.Bool), sk.Field("seen", sk.UnixTimestamp)],
        ttl=timedelta(days=3))
    plain = sk.FeatureView("plain", entities=[user], schema=[sk.Field("user_id", sk.Int64),
                                                             sk.Field("w", sk.Float32)])
    store.apply([user, stats, plain])
    assert isinstance(store.online, RedisOnlineStore)
    now0 = datetime.now(UTC).replace(microsecond=0)
    rng = np.random.default_rng(7)
    n, users = 4000, 500
    ev = [now0 - timedelta(hours=int(h)) for h in rng.integers(1, 24 * 6, n)]  # some older than the 3-day TTL
    df = pd.DataFrame({"user_id": rng.integers(0, users, n), "event_timestamp": ev,
                       "created_timestamp": [e + timedelta(minutes=int(m)) for e, m in zip(ev, rng.integers(0, 60, n))],
                       "score": rng.random(n), "n": rng.integers(-5, 5, n).astype("int32"),
                       "name": [None if i % 7 == 0 else f"u{i}" for i in range(n)], "flag": rng.random(n) > 0.5,
                       "seen": [now0 - timedelta(seconds=int(s)) for s in rng.integers(0, 10**6, n)]})
    df.loc[df.index[::11], "score"] = None
    store.ingest("stats", df)
    store.ingest("plain", pd.DataFrame({"user_id": np.arange(users), "event_timestamp": now0 - timedelta(days=30),
                                        "w": rng.random(users).astype("float32")}))
    store.online.drop_view("stats")  # forget the ingest push: what follows is materialize's work alone
    store.online.drop_view("plain")
    res = store.materialize(now0 - timedelta(days=40), now0)
    assert sum(r.rows for r in res) > 0
    now = datetime.now(UTC)
    refs = ["stats:score", "stats:n", "stats:name", "stats:flag", "stats:seen", "plain:w"]
    keys = list(range(users + 20))  # 20 unknown users
    online = store.get_online_features(refs, [{"user_id": k} for k in keys], now=now)
    hist = store.get_historical_features(pd.DataFrame({"user_id": keys, "event_timestamp": [now] * len(keys)}),
                                         refs).to_pandas()
    for ref in refs:
        col = ref.split(":")[1]
        want = [None if pd.isna(x) else x for x in hist[col].tolist()]
        got = online.values[col]
        if col == "seen":
            want = [None if x is None else pd.Timestamp(x).to_pydatetime() for x in want]
        if col == "flag":
            want = [None if x is None else bool(x) for x in want]
        assert got == want, col
    statuses = online.statuses["score"]
    assert statuses.count("NOT_FOUND") >= 20 and statuses.count("PRESENT") > users // 2
    # idempotent: materializing again changes nothing
    store.materialize(now0 - timedelta(days=40), now0)
    assert store.get_online_features(refs, [{"user_id": k} for k in keys], now=now).values == online.values



def test_error_reply_in_a_batched_read_is_store_unavailable(store, redis_url):
    v = view()
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
    admin = redis.Redis.from_url(redis_url)
    user = f"nomget-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(user, enabled=True, passwords=["+pw"], keys=[f"{store.prefix.decode()}:*"],
                      commands=["+@all", "-mget"])
    try:
        url = redis_url.replace("redis://", f"redis://{user}:pw@")
        denied = from_url(url, None, {"key_prefix": store.prefix.decode(), "retries": 0})
        with pytest.raises(StoreUnavailable, match="(?i)NOPERM|no permissions"):
            denied.read_raw([(v, ["x"], [(1,), (2,)])])
    finally:
        admin.acl_deluser(user)
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0]


def test_a_foreign_value_is_a_clear_error_and_the_connection_stays_in_sync(store, redis_url):
    v = view()
    store.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
    redis.Redis.from_url(redis_url).set(f"{store.prefix.decode()}:v:{{2}}", "not a row")
    with pytest.raises(ValidationError, match="view 'v' is not a skewless row.*re-materialize"):
        store.read_raw([(v, ["x"], [(1,), (2,)])])
    assert store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0]  # the connection is still in sync
    # a write replaces it (the script treats what is not a row as older than any row)
    store.write(v, rows(v, [{"k": 2, "ev": T0, "x": 2.0}]))
    assert store.read_raw([(v, ["x"], [(1,), (2,)])])[0] == [(sk_us(T0), [1.0]), (sk_us(T0), [2.0])]


def _tile_batch(v, tiles):
    """``write_tiles``' tuples as the ``TileBatch`` maintenance hands the store (framed for many entities at once)."""
    import numpy as np

    from skewless.aggregation.dirty import TileBatch

    keys = sorted({k for k, _, _, _ in tiles})
    number = {k: i for i, k in enumerate(keys)}
    table = pa.table({c: pa.array([k[i] for k in keys], v.join_key_dtypes[c].arrow) for i, c in enumerate(v.join_keys)})
    e, lv, t = (np.array(c, np.int64) for c in zip(*[(number[k], lv, t) for k, lv, t, _ in tiles]))
    return TileBatch.of(table, [e], [lv], [t], [[st for _, _, _, st in tiles]])


@pytest.fixture(params=["tuples", "batch"])
def write_tiles(request, store):
    """``store.write_tiles`` given tuples (one call per entity) or a ``TileBatch`` (calls of many entities)."""
    if request.param == "tuples":
        return store.write_tiles
    return lambda v, tiles, version: store.write_tiles(v, _tile_batch(v, tiles), version)


def test_aggregation_tiles_hash_expires_after_its_newest_tile_ages_out(store, write_tiles):
    """A (view, entity) hash of tiles expires at its newest tile's end + longest window + hop (transformations.md:
    older tiles may be evicted); a write of older tiles never brings the expire time forward."""
    from skewless.aggregation.tiles import tile_range
    from skewless.online.base import to_us

    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggx", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(hours=1))], hop=timedelta(hours=1))
    hop = v.hop_us
    now = to_us(wall_now())
    current, old = now // hop, now // hop - 5  # tiles (current, ending after now) and 5 hours back
    write_tiles(v, [((1,), 0, old, b"old"), ((2,), 0, current, b"cur")], 3)
    assert store.read_tiles(v, [(1,), (2,)], [(0, old), (0, current)]) == [{}, {(0, current): b"cur"}]
    key = store._tile_key(v, (2,))
    expected_ms = (tile_range(0, current, hop)[1] + 2 * hop) // 1000
    assert store.client.pexpiretime(key) == expected_ms
    write_tiles(v, [((2,), 0, old, b"late")], 4)
    assert store.client.pexpiretime(key) == expected_ms
    # a write from an older history version never replaces a newer one; a tombstone of a newer one does
    write_tiles(v, [((2,), 0, current, b"stale")], 2)
    assert store.read_tiles(v, [(2,)], [(0, current)]) == [{(0, current): b"cur"}]
    write_tiles(v, [((2,), 0, current, None)], 5)
    assert store.read_tiles(v, [(2,)], [(0, current), (0, old)]) == [{(0, old): b"late"}]


def test_aggregation_tiles_many_of_one_entity_keep_the_latest_version_per_field(store, write_tiles):
    """One entity's write of more tiles than one slice of the upsert script (500 fields): each field still keeps
    the partial of the latest version, across slices (a backfill of a year of hourly tiles is one call)."""
    from skewless.online.base import to_us

    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggmany", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(days=365))], hop=timedelta(hours=1))
    top = to_us(wall_now()) // v.hop_us
    tiles = [(0, top - i) for i in range(1300)]
    write_tiles(v, [((1,), lv, t, b"v3-%d" % t) for lv, t in tiles], 3)
    # version 2 is older: none of its fields wins; version 4 wins on every other field, even ones in later slices
    write_tiles(v, [((1,), lv, t, b"v2") for lv, t in tiles], 2)
    write_tiles(v, [((1,), lv, t, b"v4-%d" % t) for lv, t in tiles[::2]], 4)
    got = store.read_tiles(v, [(1,)], tiles)[0]
    assert got == {(lv, t): (b"v4-%d" if i % 2 == 0 else b"v3-%d") % t for i, (lv, t) in enumerate(tiles)}


def test_aggregation_tiles_of_many_entities_per_call_keep_the_latest_version_also_in_hashes_written_before(store):
    """A batch of more entities than one script call takes (``KEYS_PER_CALL``): each field keeps the partial of the
    latest version, whether the hash's newest version (``~v``) is later than the write's or not, and also in a hash
    written before ``~v`` was kept (its fields' versions are read once)."""
    from skewless.adapters.redis.tiles import KEYS_PER_CALL
    from skewless.online.base import to_us

    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggents", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))
    top = to_us(wall_now()) // v.hop_us
    cards = range(2 * KEYS_PER_CALL + 7)
    store.write_tiles(v, _tile_batch(v, [((c,), 0, top - i, b"v3") for c in cards for i in range(3)]), 3)
    legacy = store._tile_key(v, (5,))
    store.client.hdel(legacy, "~v")  # as written before '~v'
    store.client.hset(legacy, f"0:{top - 9}", b"%020d" % 7 + b"v7")  # a field of a later version
    # odd cards: version 5 is newer for their fields; even cards got version 6 first, so version 5 loses there
    store.write_tiles(v, _tile_batch(v, [((c,), 0, top - i, b"v6") for c in cards if c % 2 == 0
                                         for i in range(2)]), 6)
    store.write_tiles(v, _tile_batch(v, [((c,), 0, top - i, b"v5") for c in cards for i in range(3)]
                                     + [((5,), 0, top - 9, b"v5")]), 5)
    got = store.read_tiles(v, [(c,) for c in cards], [(0, top - i) for i in range(3)])
    for c, g in zip(cards, got):
        want = [b"v6", b"v6", b"v5"] if c % 2 == 0 else [b"v5"] * 3
        assert g == {(0, top - i): w for i, w in enumerate(want)}, c
    assert store.read_tiles(v, [(5,)], [(0, top - 9)]) == [{(0, top - 9): b"v7"}]  # the legacy hash's later field
    assert store.client.hget(legacy, "~v") == b"7"


def test_aggregation_tiles_started_write_survives_a_dropped_connection_and_a_missing_script(store):
    """``start_write_tiles`` sends now and reads the replies later: a connection dropped in between, or the script
    flushed from the server, is settled by writing the batch again (idempotent), and the connection stays in sync."""
    from skewless.online.base import to_us

    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggstart", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))
    top = to_us(wall_now()) // v.hop_us
    finish = store.start_write_tiles(v, _tile_batch(v, [((c,), 0, top, b"a%d" % c) for c in range(150)]), 3)
    store.wire.connection().disconnect()  # the replies are lost
    assert finish() == 150
    store.client.script_flush()
    finish = store.start_write_tiles(v, _tile_batch(v, [((c,), 0, top - 1, b"b%d" % c) for c in range(150)]), 4)
    assert finish() == 150  # NOSCRIPT replies: loaded and written again
    got = store.read_tiles(v, [(c,) for c in range(150)], [(0, top), (0, top - 1)])
    assert got == [{(0, top): b"a%d" % c, (0, top - 1): b"b%d" % c} for c in range(150)]
