"""The Redis store's server-side Lua: the newest-wins upsert (one call applies a batch of rows atomically), and
``script_sha`` (the SHA1 that EVALSHA names a script by; public, for stores that bring scripts of their own).

It is the slow path of a write (``row_writes.py``): a row whose key is new is stored by a plain ``SET ... NX``; only the
rows whose key already exists come here, to be compared with the stored row's order tuple (and the rows of a write
small enough for one call, new keys or not: one round trip instead of two).

Why numbers and not strings: Lua's string ``<`` uses strcoll (the server's locale), so the order tuple is compared
as numbers, unpacked by Redis's ``struct`` library from the value's 32-byte header (``row_layout``). Lua numbers are
doubles, exact for integers below 2^53: event and created times in µs are (years 1685..2255), the write row is; the
write batch (nanoseconds since the epoch, ~2^60) is stored split into its high and low 32 bits.
"""

from __future__ import annotations

import hashlib

ROW_UPSERT = """-- skewless newest-wins upsert of row strings (row_layout)
-- KEYS: one per row (a key may repeat: rows apply in order). ARGV: has_exp ('1'|'0'), then per row its value and,
-- when has_exp, its expire time (ms). The stored row is replaced only when the new order tuple is strictly greater:
-- replaying a write changes nothing. A key holding something that is not a row (another type, a foreign value) is
-- replaced. The stored rows are read by one MGET (per 512 keys) before any write, not one read per row; without
-- expire times the winners are written by one MSET (per 512 rows, in row order) at the end, not one SET each:
-- Redis spends ~20-30% less per call. tests/adapters/redis/test_redis_row_script.py checks the stored state is
-- the per-row script's. A key met again in this call compares with the row written for it earlier in the call
-- (with expire times: read again, as that SET may have expired it at once).
local has_exp = ARGV[1] == '1'
local stride = has_exp and 2 or 1
local n = #KEYS
local stored
if n <= 512 then
  stored = redis.call('MGET', unpack(KEYS))
else
  stored = {}
  for i = 1, n, 512 do
    local got = redis.call('MGET', unpack(KEYS, i, math.min(i + 511, n)))
    for j = 1, #got do stored[i + j - 1] = got[j] end
  end
end
local seen = {}  -- key -> true, or (no expire times) the value this call wrote for it
local out, m = {}, 0
local a = 2
local written = 0
for i = 1, n do
  local k, v = KEYS[i], ARGV[a]
  local cur = stored[i]
  local s = seen[k]
  if s ~= nil then
    if has_exp then cur = redis.call('MGET', k)[1] elseif s ~= true then cur = s end
  end
  local win = true
  if type(cur) == 'string' and #cur >= 32 then
    local a1, a2, a3, a4, a5 = struct.unpack('<i8<i8<i4<I4<i8', v)
    local b1, b2, b3, b4, b5 = struct.unpack('<i8<i8<i4<I4<i8', cur)
    if a1 ~= b1 then win = a1 > b1
    elseif a2 ~= b2 then win = a2 > b2
    elseif a3 ~= b3 then win = a3 > b3
    elseif a4 ~= b4 then win = a4 > b4
    else win = a5 > b5 end
  end
  if win then
    written = written + 1
    if has_exp then
      redis.call('SET', k, v, 'PXAT', ARGV[a + 1])
      seen[k] = true
    else
      out[m + 1], out[m + 2] = k, v
      m = m + 2
      seen[k] = v
    end
  elseif s == nil then
    seen[k] = true
  end
  a = a + stride
end
for j = 1, m, 1024 do redis.call('MSET', unpack(out, j, math.min(j + 1023, m))) end
return written
"""


def script_sha(source: str) -> str:
    """The SHA1 hex digest EVALSHA calls ``source`` by."""
    return hashlib.sha1(source.encode()).hexdigest()


__all__ = ["ROW_UPSERT", "script_sha"]
