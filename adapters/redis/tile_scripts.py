"""The Lua of the Redis store's aggregation tiles (``tiles.py``): the newest-wins upsert of a hash's fields, the pair
of scripts that let a transaction of plain ``HSET``s write them instead, and the TairHash upsert.

A tile hash's field ``~v`` holds the newest history version written to it; every write raises it. So when it is not
later than a write's version, no field of the hash is, and the write may set its fields without reading them; only
a hash whose ``~v`` is later (a newer writer came first) or that has none (written before ``~v`` was kept) needs
the field-by-field comparison.
"""

from __future__ import annotations

# The newest-wins write of one hash's fields (A[first..last]: field/value pairs), shared by both scripts below.
_UPSERT_FN = """-- Field '~v' holds the newest version written to the hash: when it is not later than ours,
-- no field is (every write raises it), so the fields are set without reading them.
local function upsert(key, ver, sver, A, first, last, at)
  local hv = redis.call('HGET', key, '~v')
  local top = nil
  if hv then
    top = tonumber(hv)
  elseif redis.call('EXISTS', key) == 1 then
    top = 0  -- written before '~v' was kept: the newest version of its fields
    for _, v in ipairs(redis.call('HVALS', key)) do
      local x = tonumber(string.sub(v, 1, 20)) or 0
      if x > top then top = x end
    end
    redis.call('HSET', key, '~v', string.format('%.0f', top))
  end
  if top == nil or top <= ver then
    redis.call('HSET', key, '~v', sver)
    -- slices keep unpack under Lua's stack limit
    for lo = first, last, 1000 do redis.call('HSET', key, unpack(A, lo, math.min(lo + 999, last))) end
  else
    for lo = first, last, 1000 do
      local hi = math.min(lo + 999, last)
      local fields = {}
      for i = lo, hi, 2 do fields[#fields + 1] = A[i] end
      local cur = redis.call('HMGET', key, unpack(fields))
      local set = {}
      for j = 1, #fields do
        local c = cur[j]
        if (not c) or tonumber(string.sub(c, 1, 20)) <= ver then
          set[#set + 1] = A[lo + 2 * j - 2]
          set[#set + 1] = A[lo + 2 * j - 1]
        end
      end
      if #set > 0 then redis.call('HSET', key, unpack(set)) end
    end
  end
  if at ~= '' then
    local cur = redis.call('PEXPIRETIME', key)
    if cur == -1 or cur < tonumber(at) then redis.call('PEXPIREAT', key, at) end
  end
end
"""
TILE_UPSERT = """-- skewless aggregation tiles: keep the partial of the latest history version per field
-- KEYS: one hash per entity. ARGV: the version, then per key: its field count n, the expire time ('' for none),
-- n field/value pairs.
""" + _UPSERT_FN + """
local ver = tonumber(ARGV[1])
local a = 2
for k = 1, #KEYS do
  local first, last = a + 2, a + 1 + 2 * tonumber(ARGV[a])
  local at = ARGV[a + 1]
  a = last + 1
  upsert(KEYS[k], ver, ARGV[1], ARGV, first, last, at)
end
return 0
"""
# Tiles written by plain HSETs (``RedisTiles._guarded``): per 100 entities one transaction, MULTI, TILE_OPEN, per
# entity an HSET of its fields and '~v' into its work hash, TILE_SETTLE, EXEC. TILE_UPSERT takes one Lua argument per
# field and value, and building them and turning them back into Redis strings is most of its cost (a script that
# returns at once costs half of it); here the fields go through Redis's own HSET and the scripts take only the keys.
# Work hashes are named for the write (random), exist only inside its transaction and are never read by anyone else.
TILE_OPEN = """-- skewless aggregation tiles: open the tile hashes a transaction's HSETs may write over
-- KEYS: n tile hashes, then their n work hashes. ARGV: the version.
-- A hash whose '~v' is not later than ours holds no later field: renamed to its work hash, so the HSET that follows
-- writes our fields over its own (as TILE_UPSERT would). Any other key (absent, newer, without '~v', not a hash)
-- stays where it is: the HSET then makes a work hash of our fields alone, and TILE_SETTLE merges it field by field.
-- (If this script did not run at all, every key would be such a key: slower, never wrong.)
local ver = tonumber(ARGV[1])
local n = #KEYS / 2
for k = 1, n do
  local hv = redis.pcall('HGET', KEYS[k], '~v')
  if type(hv) == 'string' and tonumber(hv) <= ver then redis.call('RENAME', KEYS[k], KEYS[n + k]) end
end
return 0
"""
TILE_SETTLE = """-- skewless aggregation tiles: the work hashes of a transaction become tile hashes again
-- KEYS: n tile hashes, then their n work hashes. ARGV: the version, then each tile hash's expire time ('' for none).
-- A work hash whose tile hash is absent is renamed onto it (the opened hash with our fields, or ours alone); else it
-- is merged into the tile hash by the upsert and dropped. An error of one merge (not a hash) is returned after all
-- the others are settled, so no work hash is left behind. No command here is refused for memory (OOM), but the
-- merge's HSET; settling twice changes nothing (a work hash no longer there is skipped).
""" + _UPSERT_FN + """
local ver = tonumber(ARGV[1])
local n = #KEYS / 2
local failed = nil
for k = 1, n do
  local key, w, at = KEYS[k], KEYS[n + k], ARGV[k + 1]
  if redis.call('EXISTS', w) == 1 then
    if redis.call('EXISTS', key) == 0 then
      redis.call('RENAME', w, key)
      if at ~= '' then
        local cur = redis.call('PEXPIRETIME', key)
        if cur == -1 or cur < tonumber(at) then redis.call('PEXPIREAT', key, at) end
      end
    else
      local got, pairs = redis.call('HGETALL', w), {}
      for i = 1, #got, 2 do
        if got[i] ~= '~v' then
          pairs[#pairs + 1] = got[i]
          pairs[#pairs + 1] = got[i + 1]
        end
      end
      redis.call('DEL', w)
      local ok, err = pcall(upsert, key, ver, ARGV[1], pairs, 1, #pairs, at)
      if not ok and not failed then failed = type(err) == 'table' and err.err or tostring(err) end
    end
  end
end
if failed then return redis.error_reply(failed) end
return 0
"""
# TairHash (Tair's store, when the server has it): every field expires on its own, once no window can read its tile
# any more (tile end + longest window + hop), so old tiles go while the entity's newer ones stay.
TILE_UPSERT_EXHASH = """-- skewless aggregation tiles in TairHash: latest history version per field, per-field expire
local ver = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local cur = redis.call('EXHGET', KEYS[1], ARGV[i])
  if (not cur) or tonumber(string.sub(cur, 1, 20)) <= ver then
    redis.call('EXHSET', KEYS[1], ARGV[i], ARGV[i + 1], 'PXAT', ARGV[i + 2])
  end
end
return 0
"""

__all__ = ["TILE_OPEN", "TILE_SETTLE", "TILE_UPSERT", "TILE_UPSERT_EXHASH"]
