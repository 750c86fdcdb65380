"""The row script (``adapters/redis/scripts.ROW_UPSERT``) reads the stored rows by one MGET: the stored state it
leaves must be the per-row GETRANGE script's (the script up to this change), byte for byte, over absent,
older, newer, equal and tied rows, keys of another type, short and foreign values, keys repeated in one call, expire
times, and calls larger than one MGET. Both run on a real redis-server, on twin key sets."""

from __future__ import annotations

import random
import struct
import uuid
import zlib

import redis

from skewless.adapters.redis.scripts import ROW_UPSERT

# The row script as it was up to this change: one GETRANGE per row. The reference the new one is checked against.
PER_ROW_READ = """-- skewless newest-wins upsert of row strings (row_layout)
-- KEYS: one per row (a key may repeat: rows apply in order). ARGV: has_exp ('1'|'0'), then per row its value and,
-- when has_exp, its expire time (ms). The stored row is replaced only when the new order tuple is strictly greater:
-- replaying a write changes nothing. A key holding something that is not a row (another type, a foreign value) is
-- replaced.
local has_exp = ARGV[1] == '1'
local stride = has_exp and 2 or 1
local a = 2
local written = 0
for i = 1, #KEYS do
  local k, v = KEYS[i], ARGV[a]
  local cur = redis.pcall('GETRANGE', k, 0, 31)
  local win = true
  if type(cur) == 'string' and #cur == 32 then
    local a1, a2, a3, a4, a5 = struct.unpack('<i8<i8<i4<I4<i8', v)
    local b1, b2, b3, b4, b5 = struct.unpack('<i8<i8<i4<I4<i8', cur)
    if a1 ~= b1 then win = a1 > b1
    elseif a2 ~= b2 then win = a2 > b2
    elseif a3 ~= b3 then win = a3 > b3
    elseif a4 ~= b4 then win = a4 > b4
    else win = a5 > b5 end
  end
  if win then
    if has_exp then redis.call('SET', k, v, 'PXAT', ARGV[a + 1]) else redis.call('SET', k, v) end
    written = written + 1
  end
  a = a + stride
end
return written
"""


def _value(rnd: random.Random, tuple_: tuple, tail: bytes) -> bytes:
    return struct.pack("<qqiIq", *tuple_) + tail


def _tuple(rnd: random.Random) -> tuple:
    # a small domain per part: many ties, and every part decides some comparisons
    return (rnd.choice([1_700_000_000_000_000, 1_700_000_000_000_001, -5]), rnd.choice([0, 7]),
            rnd.choice([0, 1, -1]), rnd.choice([0, 1, 0xFFFFFFFF]), rnd.choice([0, 3]))


def _state(r: redis.Redis, keys: list[bytes]) -> list:
    """Per key: its type, its value (a string) or its content (a hash), and whether and when it expires."""
    out = []
    for k in keys:
        t = r.type(k)
        if t == b"string":
            content = r.get(k)
        elif t == b"hash":
            content = sorted(r.hgetall(k).items())
        elif t == b"list":
            content = r.lrange(k, 0, -1)
        else:
            content = None
        out.append((t, content, r.pexpiretime(k)))
    return out


def _setup(r: redis.Redis, rnd: random.Random, keys: list[bytes], twin: dict) -> None:
    """The same starting state under both key sets: absent, a row (tuple drawn), a short or foreign string, a hash,
    a list, some with an expire time."""
    for k in keys:
        kind = rnd.choice(["absent", "row", "row", "row", "short", "hash", "list", "header_only"])
        for kk in (k, twin[k]):
            if kind == "row":
                r.set(kk, _value(rnd, _tuple(random.Random(zlib.crc32(k))), b"L" * 8 + b"payload-" + k[-3:]))
            elif kind == "short":
                r.set(kk, b"short")
            elif kind == "header_only":
                r.set(kk, _value(rnd, _tuple(random.Random(zlib.crc32(k) + 1)), b""))  # exactly the 32 bytes
            elif kind == "hash":
                r.hset(kk, "f", "1")
            elif kind == "list":
                r.rpush(kk, "a")
        if kind != "absent" and rnd.random() < 0.3:
            for kk in (k, twin[k]):
                r.pexpireat(kk, 4_000_000_000_000)


def test_mget_script_leaves_the_per_row_scripts_state(redis_url):
    r = redis.Redis.from_url(redis_url)
    new_sha, old_sha = r.script_load(ROW_UPSERT), r.script_load(PER_ROW_READ)
    rnd = random.Random(16)
    for trial in range(40):
        p = "t" + uuid.uuid4().hex[:10]
        n_keys = rnd.choice([1, 5, 40, 600])  # 600: more than one MGET's 512 keys
        base = [f"{p}:v:{{{i}}}".encode() for i in range(n_keys)]
        twin = {k: k.replace(b":v:", b":w:") for k in base}
        _setup(r, rnd, base, twin)
        has_exp = rnd.random() < 0.5
        for _call in range(3):
            n_rows = rnd.choice([1, 3, 50, 700]) if n_keys > 5 else rnd.choice([1, 3, 8])
            # keys drawn with repeats: a key written twice in one call sees its first row
            picks = [rnd.choice(base) for _ in range(n_rows)]
            argv: list = [b"1" if has_exp else b"0"]
            for i in range(n_rows):
                argv.append(_value(rnd, _tuple(rnd), b"L" * 8 + b"new-%d" % i))
                if has_exp:  # some already past: the SET deletes the key at once
                    argv.append(rnd.choice([b"4100000000000", b"1000"]))
            got_new = r.evalsha(new_sha, n_rows, *picks, *argv)
            got_old = r.evalsha(old_sha, n_rows, *[twin[k] for k in picks], *argv)
            assert got_new == got_old, trial
            assert _state(r, base) == _state(r, [twin[k] for k in base]), trial
        r.delete(*base, *twin.values())
