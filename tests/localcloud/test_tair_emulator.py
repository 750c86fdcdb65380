"""The Tair emulator's TairHash subset against the module's documented behaviour (``tair_emulator``'s docstring),
through redis-py on the local cloud's emulator (backed by the local cloud's real redis-server)."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid

import pytest
import redis

from skewless.localcloud.tair_emulator import _scan


@pytest.fixture
def r(tair_url):
    c = redis.Redis.from_url("redis://" + tair_url.split("://", 1)[1])
    yield c
    c.close()


@pytest.fixture
def k():
    return "emu:" + uuid.uuid4().hex[:12]


def cmd(r, *args):
    return r.execute_command(*args)


def err(r, *args) -> str:
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    return str(e.value)


def test_exhset_versions_nx_xx(r, k):
    assert cmd(r, "EXHSET", k, "f", "a") == 1 and cmd(r, "EXHSET", k, "f", "b") == 0
    assert cmd(r, "EXHVER", k, "f") == 2 and cmd(r, "EXHGET", k, "f") == b"b"
    assert err(r, "EXHSET", k, "f", "c", "VER", "1") == "update version is stale"
    assert cmd(r, "EXHSET", k, "f", "c", "ver", "2") == 0 and cmd(r, "EXHVER", k, "f") == 3  # case-insensitive
    assert cmd(r, "EXHSET", k, "f", "d", "VER", "0") == 0 and cmd(r, "EXHVER", k, "f") == 4  # 0: no check
    assert cmd(r, "EXHSET", k, "f", "e", "ABS", "100") == 0 and cmd(r, "EXHVER", k, "f") == 100
    assert cmd(r, "EXHSET", k, "g", "x", "VER", "7") == 1 and cmd(r, "EXHVER", k, "g") == 1  # new field: no check
    assert cmd(r, "EXHSET", k, "f", "z", "NX") == -1 and cmd(r, "EXHGET", k, "f") == b"e"
    assert cmd(r, "EXHSET", k, "h", "z", "XX") == -1 and cmd(r, "EXHGET", k, "h") is None
    missing = k + ":none"
    assert cmd(r, "EXHSET", missing, "f", "v", "XX") == -1 and r.exists(missing) == 0
    assert cmd(r, "EXHVER", missing, "f") == -1 and cmd(r, "EXHVER", k, "nope") == -2
    assert cmd(r, "EXHSET", k, "big", "v", "ABS", "9223372036854775807") == 1


def test_exhset_rejects_bad_options_with_the_modules_errors(r, k):
    for bad in (["FOO"], ["EX", "1", "KEEPTTL"], ["KEEPTTL", "PX", "5"], ["EX", "1", "PX", "1"], ["ABS", "0"],
                ["VER", "1", "ABS", "2"], ["NX", "XX"], ["EX", "-1"], ["EX", "x"], ["VER", "01"], ["VER", "-1"],
                ["VER"], ["ABS", "9223372036854775808"]):
        assert err(r, "EXHSET", k, "f", "v", *bad) == "syntax error", bad
    assert r.exists(k) == 0  # nothing written by a refused command
    assert err(r, "EXHSET", k, "f") == "wrong number of arguments for 'EXHSET' command"
    assert err(r, "exhmget", k) == "wrong number of arguments for 'exhmget' command"
    r.set(k, "a string")
    for c in (["EXHSET", k, "f", "v"], ["EXHGET", k, "f"], ["EXHMGET", k, "f"], ["EXHDEL", k, "f"], ["EXHLEN", k],
              ["EXHVER", k, "f"], ["EXHGETALL", k], ["EXHPEXPIREAT", k, "f", "1"]):
        assert err(r, *c).startswith("WRONGTYPE"), c


def test_expiry_options_and_keepttl(r, k):
    now = int(time.time() * 1000)
    cmd(r, "EXHSET", k, "px", "v", "PX", "60000")
    cmd(r, "EXHSET", k, "pxat", "v", "PXAT", str(now + 120_000))
    cmd(r, "EXHSET", k, "ex", "v", "EX", "30")
    cmd(r, "EXHSET", k, "exat", "v", "EXAT", str(now // 1000 + 90))
    assert 59_000 < cmd(r, "EXHPTTL", k, "px") <= 60_000 and 118_000 < cmd(r, "EXHPTTL", k, "pxat") <= 120_000
    assert cmd(r, "EXHTTL", k, "ex") == 30 and 88 <= cmd(r, "EXHTTL", k, "exat") <= 90
    cmd(r, "EXHSET", k, "px", "w", "KEEPTTL")
    assert 58_000 < cmd(r, "EXHPTTL", k, "px") <= 60_000 and cmd(r, "EXHGET", k, "px") == b"w"
    cmd(r, "EXHSET", k, "px", "x")  # no expire option: the field's expire time is cleared
    assert cmd(r, "EXHPTTL", k, "px") == -1
    cmd(r, "EXHSET", k, "now", "v", "EX", "0")  # 0: expired at once
    assert cmd(r, "EXHGET", k, "now") is None and cmd(r, "EXHPTTL", k, "now") == -3
    assert cmd(r, "EXHPTTL", k + ":none", "f") == -2


def test_exhpexpireat_family(r, k):
    now = int(time.time() * 1000)
    assert cmd(r, "EXHPEXPIREAT", k, "f", str(now + 5000)) == 0  # no key
    cmd(r, "EXHSET", k, "f", "v")
    assert cmd(r, "EXHPEXPIREAT", k, "nope", str(now + 5000)) == 0
    assert cmd(r, "EXHPEXPIREAT", k, "f", str(now + 5000)) == 1 and cmd(r, "EXHVER", k, "f") == 2  # bumps the version
    assert 4000 < cmd(r, "EXHPTTL", k, "f") <= 5000
    assert err(r, "EXHPEXPIREAT", k, "f", str(now + 5000), "VER", "1") == "update version is stale"
    assert cmd(r, "EXHPEXPIREAT", k, "f", str(now + 6000), "ABS", "9") == 1 and cmd(r, "EXHVER", k, "f") == 9
    assert cmd(r, "EXHPEXPIRE", k, "f", "7000") == 1 and 6000 < cmd(r, "EXHPTTL", k, "f") <= 7000
    assert cmd(r, "EXHEXPIRE", k, "f", "8") == 1 and cmd(r, "EXHTTL", k, "f") == 8
    assert cmd(r, "EXHEXPIREAT", k, "f", str(now // 1000 + 20)) == 1 and 18 <= cmd(r, "EXHTTL", k, "f") <= 20
    assert err(r, "EXHPEXPIREAT", k, "f", "1", "VER") == "syntax error"
    assert err(r, "EXHPEXPIREAT", k, "f", "-1") == "syntax error"
    assert err(r, "EXHPEXPIREAT", k, "f", "1", "FOO", "1") == "syntax error"
    assert err(r, "EXHPEXPIREAT", k, "f") == "wrong number of arguments for 'EXHPEXPIREAT' command"
    assert cmd(r, "EXHPEXPIREAT", k, "f", "0") == 1 and cmd(r, "EXHGET", k, "f") is None  # 0: expired at once
    assert r.exists(k) == 0  # its last field gone: the key is deleted


def test_reads_delete_len_getall_and_expiry(r, k):
    cmd(r, "EXHSET", k, "a", "1")
    cmd(r, "EXHSET", k, "b", "")
    cmd(r, "EXHSET", k, "c", "3", "PX", "50")
    cmd(r, "EXHSET", k, "d:x", "\x00\xff\n\"")
    assert cmd(r, "EXHMGET", k, "a", "b", "zz", "d:x") == [b"1", b"", None, b"\x00\xc3\xbf\n\""]
    assert cmd(r, "EXHMGET", k + ":none", "a", "b") == [None, None]
    time.sleep(0.07)
    # Without NOEXP the expired field counts until it is deleted: by a read (below) or by the active expiry cycle,
    # which may already have run (a race the test cannot order, as on Tair); NOEXP never counts it.
    assert cmd(r, "EXHLEN", k) in (3, 4) and cmd(r, "EXHLEN", k, "NOEXP") == 3
    assert err(r, "EXHLEN", k, "FOO") == "syntax error"
    assert sorted(zip(*[iter(cmd(r, "EXHGETALL", k))] * 2)) == [(b"a", b"1"), (b"b", b""),
                                                                  (b"d:x", b"\x00\xc3\xbf\n\"")]
    assert cmd(r, "EXHLEN", k) == 3  # EXHGETALL deleted the expired field
    assert cmd(r, "EXHDEL", k, "a", "zz", "a") == 1 and cmd(r, "EXHDEL", k + ":none", "a") == 0
    assert cmd(r, "EXHDEL", k, "b", "d:x") == 2 and r.exists(k) == 0
    assert cmd(r, "EXHGETALL", k) == [] and cmd(r, "EXHLEN", k) == 0


def test_active_expiry_deletes_untouched_keys(r, k):
    cmd(r, "EXHSET", k, "a", "1", "PX", "100")
    cmd(r, "EXHSET", k, "b", "2", "PX", "150")
    deadline = time.monotonic() + 5
    while r.exists(k) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.exists(k) == 0


def test_plain_hash_commands_and_other_exh_commands(r, k):
    cmd(r, "EXHSET", k, "f", "v")
    for c in (["HGET", k, "f"], ["HMGET", k, "f"], ["HSET", k, "f", "v"], ["HGETALL", k]):
        assert err(r, *c).startswith("WRONGTYPE"), c
    assert "not implemented by the skewless Tair emulator" in err(r, "EXHINCRBY", k, "f", "1")
    assert "Pub/Sub is not supported" in err(r, "SUBSCRIBE", k)
    assert r.delete(k) == 1 and cmd(r, "EXHGET", k, "f") is None  # key commands pass through


def test_transactions_and_watch(r, tair_url, k):
    p = r.pipeline(transaction=True)
    p.execute_command("EXHSET", k, "a", "1")
    p.execute_command("EXHSET", k, "a", "2", "VER", "5")  # fails inside EXEC, the others still run
    p.execute_command("EXHMGET", k, "a")
    assert [type(x) if isinstance(x, Exception) else x for x in p.execute(raise_on_error=False)] == [
        1, redis.ResponseError, [b"1"]]
    other = redis.Redis.from_url("redis://" + tair_url.split("://", 1)[1])
    with r.pipeline(transaction=True) as w:
        w.watch(k)
        other.execute_command("EXHSET", k, "a", "3")  # a change by another client
        w.multi()
        w.execute_command("EXHSET", k, "a", "4")
        with pytest.raises(redis.WatchError):
            w.execute()
    assert cmd(r, "EXHGET", k, "a") == b"3"
    other.close()


def test_scripts_call_tairhash_and_keep_their_own_sha(r, k):
    src = "redis.call('EXHSET', KEYS[1], 'a', ARGV[1], 'PX', 60000)\nreturn redis.call('EXHMGET', KEYS[1], 'a', 'b')"
    assert r.eval(src, 1, k, "v") == [b"v", None]
    sha = r.script_load(src)
    assert sha == hashlib.sha1(src.encode()).hexdigest() and r.script_exists(sha, "0" * 40) == [True, False]
    assert r.evalsha(sha, 1, k, "w") == [b"w", None] and cmd(r, "EXHVER", k, "a") == 2
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.eval("return redis.call('EXHSET', KEYS[1], 'a', 'x', 'BAD')", 1, k)
    assert r.eval("return redis.pcall('EXHSET', KEYS[1], 'a', 'x', 'BAD')['err']", 1, k) == b"ERR syntax error"
    assert r.eval("return redis.call('EXHSET', KEYS[1], 'n', 'x', 'PX', 60000)", 1, k) == 1  # numbers as Redis
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("0" * 40, 0)
    with pytest.raises(redis.ResponseError, match="read-only scripts"):
        r.evalsha_ro(sha, 1, k, "x")


def test_databases_are_separate(tair_url, k):
    base = "redis://" + tair_url.split("://", 1)[1].rsplit("/", 1)[0]
    one, zero = redis.Redis.from_url(base + "/1"), redis.Redis.from_url(base + "/0")
    cmd(one, "EXHSET", k, "a", "1", "PX", "100")
    assert cmd(zero, "EXHGET", k, "a") is None and cmd(one, "EXHGET", k, "a") == b"1"
    deadline = time.monotonic() + 5  # the active expiry sweeps db 1 too
    while one.exists(k) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert one.exists(k) == 0


def test_inline_commands_are_a_protocol_error(tair_url):
    host, port = tair_url.split("://", 1)[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(200).startswith(b"-ERR Protocol error")


def test_reply_scanner_handles_resp2_and_resp3():
    cases = [b"+OK\r\n", b"-ERR x\r\n", b":5\r\n", b"$3\r\nabc\r\n", b"$-1\r\n", b"*-1\r\n", b"_\r\n", b",1.5\r\n",
             b"#t\r\n", b"(12\r\n", b"=7\r\ntxt:abc\r\n", b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
             b"%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n", b"|1\r\n+a\r\n:1\r\n:7\r\n"]
    for c in cases:
        buf = bytearray(c + b"+NEXT\r\n")
        assert _scan(buf, 0) == len(c), c
        assert _scan(bytearray(c[:-1]), 0) is None, c
