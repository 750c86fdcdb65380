"""The Tair online store: the conformance suite on both of its paths (plain Redis layout on a real redis-server,
TairHash on the local cloud's Tair emulator over that redis-server), the commands the TairHash path sends (as the
emulator's MONITOR saw them), per-field TTL, the probe, TLS, and an unreachable server."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
from tests.support.conformance.online import OnlineStoreConformance, T0, rows, view, wall_now
from tests.adapters.redis.test_redis_online import _certificates, free_port, prefix
from tests.adapters.redis.test_redis_online import (
    test_feature_store_online_equals_historical_at_now as online_equals_historical,
)

import skewless as sk
from skewless import plugins
from skewless.adapters.alibaba.tair import TairOnlineStore, from_url, upsert_script
from skewless.errors import ConfigError, StoreUnavailable
from skewless.localcloud import redis_service


def as_tair(redis_url: str) -> str:
    return "tair://" + redis_url.split("://", 1)[1]


def admin(url: str) -> redis.Redis:
    """A plain client of the server behind a tair:// or redis:// URL (for looking, not for the store)."""
    return redis.Redis.from_url("redis://" + url.split("://", 1)[1])


@pytest.fixture
def plain_store(redis_url):
    s = from_url(as_tair(redis_url), None, {"key_prefix": prefix()})
    yield s
    s.close()


@pytest.fixture
def tairhash_store(tair_url):
    s = from_url(tair_url, None, {"key_prefix": prefix()})
    yield s
    s.close()


class TestTairPlainPath(OnlineStoreConformance):
    """A server without TairHash (a real redis-server): exactly the Redis store's behaviour."""

    @pytest.fixture
    def store(self, plain_store):
        assert not plain_store.uses_tairhash
        return plain_store


class TestTairHashPath(OnlineStoreConformance):
    """TairHash, on the emulator: newest-wins in the TairHash script, per-field TTL, EXHMGET reads."""

    @pytest.fixture
    def store(self, tairhash_store):
        assert tairhash_store.uses_tairhash
        return tairhash_store


# -- the probe -------------------------------------------------------------------------------------------------
def test_probe_picks_the_path_and_the_option_overrides_it(redis_url, tair_url):
    plain = from_url(as_tair(redis_url), None, {})
    assert plain.uses_tairhash is False and plain.supports_per_field_ttl is False
    tairhash = from_url(tair_url, None, {})
    assert tairhash.uses_tairhash is True and tairhash.supports_per_field_ttl is True
    assert isinstance(plugins.load("online", tair_url)(tair_url, None, {}), TairOnlineStore)
    with pytest.raises(ConfigError, match="no TairHash"):
        from_url(as_tair(redis_url), None, {"tairhash": True}).uses_tairhash  # noqa: B018
    # forced plain on a TairHash server: the Redis layout (a string per row, key TTL) through the emulator
    p = prefix()
    forced = from_url(tair_url, None, {"key_prefix": p, "tairhash": False})
    v = view("forced", ttl=timedelta(hours=1))
    forced.write(v, rows(v, [{"k": 1, "ev": wall_now(), "x": 1.0}]))
    assert forced.uses_tairhash is False and forced.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0]
    key = f"{p}:forced:{{1}}"
    assert admin(tair_url).type(key) == b"string" and 0 < admin(tair_url).pttl(key) <= 3_600_000
    # the two layouts do not mix: TairHash reads of a plain-path key are WRONGTYPE, not silently wrong
    mixed = from_url(tair_url, None, {"key_prefix": p})
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        mixed.read_raw([(v, ["x"], [(1,)])])


def test_options_and_urls(tair_url):
    with pytest.raises(ConfigError, match="tairhash must be"):
        from_url(tair_url, None, {"tairhash": "yes"})
    with pytest.raises(ConfigError, match="not a Tair URL"):
        TairOnlineStore("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="unknown Redis online store options"):
        from_url(tair_url, None, {"prefix": "x"})
    s = from_url("tair://u:hunter2@127.0.0.1:1/0", None, {"tls": True})
    assert s.url == "tair://u:***@127.0.0.1:1/0" and s._pool.connection_class is redis.SSLConnection
    assert from_url("tairs://127.0.0.1:1/0", None, {})._pool.connection_class is redis.SSLConnection
    assert from_url("tair://127.0.0.1:1/0", None, {})._pool.connection_class is redis.Connection
    assert plugins.load("online", "tairs://127.0.0.1:1/0") is from_url


def test_building_the_store_touches_no_network():
    s = from_url(f"tair://127.0.0.1:{free_port()}/0", None, {})  # nothing listens there
    assert s._tairhash is None


def test_unreachable_server_is_store_unavailable_naming_the_endpoint():
    port = free_port()
    s = from_url(f"tair://:hunter2@127.0.0.1:{port}/0", None, {"retries": 1})
    v = view()
    for op in (lambda: s.read([(v, ["x"], [(1,)])], T0), lambda: s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}])),
               lambda: s.uses_tairhash):
        with pytest.raises(StoreUnavailable) as err:
            op()
        assert err.value.endpoint == f"127.0.0.1:{port}" and f"127.0.0.1:{port}" in str(err.value)
        assert "hunter2" not in str(err.value) and "tair://:***@" in str(err.value)
    assert s._tairhash is None  # nothing decided: the next call asks again


# -- what the TairHash path sends --------------------------------------------------------------------------------
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Monitor:
    """MONITOR on the emulator: every command clients sent it, as it received them."""

    def __init__(self, url: str):
        host, port = url.split("://", 1)[1].split("/")[0].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        assert self.sock.recv(5) == b"+OK\r\n"
        self.buf = b""
        self.url = url

    def until_marker(self) -> list[list[str]]:
        """The commands seen up to a marker sent now (MONITOR lines arrive asynchronously)."""
        marker = uuid.uuid4().hex
        admin(self.url).echo(marker)
        while marker.encode() not in self.buf:
            self.buf += self.sock.recv(1 << 20)
        self.sock.close()
        lines = self.buf.split(b"\r\n")
        cmds = [_ARG.findall(line.decode("latin-1")) for line in lines if line.startswith(b"+")]
        return [c for c in cmds if c and marker not in c]


def test_tairhash_path_sends_exhash_commands_only(tair_url):
    p = prefix()
    admin(tair_url).script_flush()  # so that this store's script is loaded (SCRIPT LOAD) while we watch
    mon = Monitor(tair_url)
    s = from_url(tair_url, None, {"key_prefix": p})
    views = [view(f"w{i}", ttl=timedelta(days=1)) for i in range(3)]
    now = wall_now()
    for v in views:
        s.write(v, rows(v, [{"k": k, "ev": now, "x": float(k), "y": None if k % 2 else "s"} for k in range(40)]))
    reqs = [(v, ["x", "y"], [(k,) for k in range(50)]) for v in views]
    got = s.read_raw(reqs)
    s.read_raw(reqs[:1])
    cmds = mon.until_marker()
    mine = [c for c in cmds if any(p in a for a in c)]
    names = [c[0].upper() for c in mine]
    assert names.count("EXHGET") == 1 and mine[names.index("EXHGET")][1] == f"{p}:__tairhash_probe"  # probed once
    assert names.count("EXHMGET") == 4 * 50 and names.count("EVALSHA") >= 3
    assert set(names) == {"EXHGET", "EXHMGET", "EVALSHA"}  # no HMGET/HSET/PEXPIREAT: nothing of the plain layout
    reads = [c for c in mine if c[0].upper() == "EXHMGET"]
    assert reads[0] == ["EXHMGET", f"{p}:w0:{{0}}", "__e", "x", "y"]
    loaded = [c[2] for c in cmds if c[:2] == ["SCRIPT", "LOAD"] and "TairHash" in c[2]]
    assert loaded and all("EXHSET" in src and "'PXAT'" in src and "EXHDEL" in src for src in loaded)
    assert not re.search(r"'(HSET|HMGET|HDEL|PEXPIREAT|PERSIST)'", loaded[0])
    assert [r[1] for r in got[0][:40]] == [[float(k), None if k % 2 else "s"] for k in range(40)]


def test_script_writes_only_winning_rows_and_deletes_nulls(tairhash_store, tair_url):
    """Each EXHSET bumps a field's version: the versions count the writes the script made."""
    s, a = tairhash_store, admin(tair_url)
    v = view("ver")
    key = f"{s.prefix.decode()}:ver:{{1}}"
    s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0, "y": "a"}]))
    assert [a.execute_command("EXHVER", key, f) for f in ("__e", "__o", "x", "y")] == [1, 1, 1, 1]
    s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0, "y": "a"}]))  # the same row again: not newer, not written
    s.write(v, rows(v, [{"k": 1, "ev": T0 - timedelta(hours=1), "x": 9.0, "wb": 99}]))  # older: not written
    assert [a.execute_command("EXHVER", key, f) for f in ("__e", "x", "y")] == [1, 1, 1]
    s.write(v, rows(v, [{"k": 1, "ev": T0 + timedelta(hours=1), "x": 2.0, "y": None}]))
    assert [a.execute_command("EXHVER", key, f) for f in ("__e", "x", "y")] == [2, 2, -2]  # y: EXHDEL
    assert a.execute_command("EXHPTTL", key, "x") == -1  # a view without TTL: fields never expire
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        a.hgetall(key)  # an exhash, not a hash


# -- per-field TTL -------------------------------------------------------------------------------------------
def test_fields_expire_at_event_time_plus_ttl_and_are_evicted(tairhash_store, tair_url):
    s, a = tairhash_store, admin(tair_url)
    v = view("short", ttl=timedelta(seconds=1))
    t = wall_now()
    s.write(v, rows(v, [{"k": k, "ev": t, "x": 1.0, "y": "a"} for k in (1, 2)]))
    k1, k2 = (f"{s.prefix.decode()}:short:{{{k}}}" for k in (1, 2))
    left = [a.execute_command("EXHPTTL", k1, f) for f in ("__e", "__o", "x", "y")]
    assert all(0 < x <= 1002 for x in left) and a.pttl(k1) == -1  # per field; the key has no TTL of its own
    time.sleep(max(0.0, (t + timedelta(seconds=1.05) - wall_now()).total_seconds()))
    assert s.read_raw([(v, ["x"], [(1,)])])[0] == [None]  # expired fields read as absent (passive)
    deadline = time.monotonic() + 5
    while a.exists(k2) and time.monotonic() < deadline:  # k2 is never touched: the active expiry deletes it
        time.sleep(0.1)
    assert not a.exists(k2) and not a.exists(k1)


def test_each_row_carries_its_own_ttl_and_a_view_losing_its_ttl_clears_it(tairhash_store, tair_url):
    s, a = tairhash_store, admin(tair_url)
    key = f"{s.prefix.decode()}:life:{{1}}"
    day = view("life", ttl=timedelta(days=1))
    t = wall_now()
    s.write(day, rows(day, [{"k": 1, "ev": t - timedelta(hours=23), "x": 1.0, "y": "old"}]))
    assert 3_500_000 < a.execute_command("EXHPTTL", key, "x") <= 3_600_002  # 1 h left of the day
    wide = view("life", ttl=timedelta(days=1), fields=[sk.Field("x", sk.Float64)])  # y no longer written
    s.write(wide, rows(wide, [{"k": 1, "ev": t, "x": 2.0}]))
    assert a.execute_command("EXHPTTL", key, "x") > 86_000_000  # the newer row's TTL
    assert a.execute_command("EXHPTTL", key, "y") <= 3_600_002  # a field of the older row keeps its own
    forever = view("life", ttl=None)
    s.write(forever, rows(forever, [{"k": 1, "ev": t + timedelta(seconds=1), "x": 3.0, "y": "new"}]))
    assert [a.execute_command("EXHPTTL", key, f) for f in ("__e", "x", "y")] == [-1, -1, -1]


# -- concurrency, TLS, plugins -------------------------------------------------------------------------------------
def test_concurrent_writers_of_one_entity_converge_on_the_newest(tairhash_store):
    v = view("race")
    errors = []

    def writer(i):
        try:
            for j in range(5):
                ev = T0 + timedelta(seconds=i * 5 + j)
                tairhash_store.write(v, rows(v, [{"k": 1, "ev": ev, "x": float(i * 5 + j), "wb": i}]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and tairhash_store.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [29.0]


def test_tls_on_a_plain_redis_server(tmp_path):
    ca, cert, key = _certificates(tmp_path)
    port, tls_port = free_port(), free_port()
    svc = redis_service("tair-tls", port, ["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                                            "--tls-auth-clients", "no", "--requirepass", "tlspw"], state=tmp_path)
    svc.start(tmp_path)
    try:
        v = view()
        for url, opts in ((f"tairs://:tlspw@127.0.0.1:{tls_port}/0", {}),
                          (f"tair://:tlspw@127.0.0.1:{tls_port}/0", {"tls": True})):
            s = from_url(url, tmp_path, {"key_prefix": prefix(), "ssl_ca_certs": "ca.pem", **opts})
            s.write(v, rows(v, [{"k": 1, "ev": T0, "x": 1.0}]))
            assert s.read_raw([(v, ["x"], [(1,)])])[0][0][1] == [1.0] and not s.uses_tairhash
            s.close()
        no_tls = from_url(f"tair://:tlspw@127.0.0.1:{tls_port}/0", None, {"retries": 0, "socket_timeout": 1})
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{tls_port}"):
            no_tls.get_meta("x")
    finally:
        svc.stop(tmp_path)


def test_feature_store_online_equals_historical_at_now_on_tairhash(tmp_path, tair_url):
    """The Redis store's end-to-end invariant (ingest, materialize twice, online vs training-set path at now),
    on the TairHash path: skewless.yaml with a tair:// URL."""
    online_equals_historical(tmp_path, tair_url)


def test_the_script_is_the_redis_scripts_shape_with_tairhash_commands():
    src = upsert_script(3)
    assert "redis.call('EXHMGET', k, '__e', '__o')" in src and "'HMGET'" not in src
    assert "local nf = 3" in src and "local function newer(o, stored)" in src


def test_tairhash_tiles_expire_field_by_field(tairhash_store):
    """Aggregation tiles in a TairHash: each field expires once no window can read its tile (tile end + longest
    window + hop), so an entity's old tiles go while its newer ones stay."""
    from skewless.aggregation.tiles import tile_range
    from skewless.online.base import to_us

    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    v = sk.AggregatedView("aggx", [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                          [sk.Aggregation("x", "sum", timedelta(hours=1))], hop=timedelta(hours=1))
    hop = v.hop_us
    current = to_us(wall_now()) // hop
    old = current - 5
    tairhash_store.write_tiles(v, [((1,), 0, old, b"old"), ((1,), 0, current, b"cur")], 1)
    assert tairhash_store.read_tiles(v, [(1,)], [(0, old), (0, current)]) == [{(0, current): b"cur"}]
    key = tairhash_store._tile_key(v, (1,))
    ttl_ms = tairhash_store.client.execute_command("EXHPTTL", key, b"0:%d" % current)
    want_ms = (tile_range(0, current, hop)[1] + 2 * hop) // 1000 - to_us(wall_now()) // 1000
    assert abs(ttl_ms - want_ms) < 5_000
    tairhash_store.write_tiles(v, [((1,), 0, current, b"older version")], 0)  # an older history version loses
    assert tairhash_store.read_tiles(v, [(1,)], [(0, current)]) == [{(0, current): b"cur"}]
