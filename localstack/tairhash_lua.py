"""The TairHash subset of the Tair emulator (``tair_emulator``), as Lua that runs inside the backing redis-server.

Every TairHash command the emulator accepts becomes one ``FCALL tairhash_emulator 0 <command> <args...>`` on the
backing server, so it is atomic, it takes part in MULTI/EXEC and WATCH exactly like any other command, and keys
stay ordinary Redis keys (DEL, UNLINK, SCAN, EXISTS, key-level PEXPIREAT act on them unchanged). A client's own Lua
script gets the same code prepended (``script_prelude``), its ``redis.call``/``redis.pcall`` routed through it, so
EXH* commands inside scripts run in the script's atomic step as they do on Tair.

Layout of one exhash key in the backing server: a sorted set, every member with score 0 so they sort by bytes:

    ""                                      the type marker (sorts first; no field member is empty)
    "<len(field)>:<field>:<version>:<expire ms, 0 = none>:<value>"    one member per field

A sorted set, not a hash, so that plain hash commands (HGET, HMGET, HSET ... also inside scripts) answer WRONGTYPE on
an exhash key as they do on Tair, with no command of the emulator's in between. A field is found by a lex range on
its length-prefixed name (two names never share a prefix). ``__tairhash_emulator__:expires`` (one per db) is a
sorted set of exhash keys scored by (at most) their earliest field expiry: the active expiry's index.

Semantics follow the TairHash module's source (github.com/tair-opensource/TairHash, src/tairhash.c, master) and
Alibaba's exHash command reference (help.aliyun.com "exHash"), cited per command in ``tair_emulator``'s docstring.
The Lua has no ``--`` comments so that it can be folded onto one line (``script_prelude``): a client script keeps
its line numbers in error messages. The notes on each function are here instead:

- ``rcall`` looks ``redis.call`` up when called: a function library's top level may not touch it.
- ``kind``: 0 no key, 1 exhash, -1 another type (WRONGTYPE).
- ``live``: passive expiry, as ``expireTairHashObjIfNeeded``: a field whose expire time has come (now >= expire)
  is deleted when a command touches it, and reads as absent.
- ``drop_empty``: ``delEmptyTairHashIfNeeded``: a key left without fields is deleted.
- ``ll``: ``RedisModule_StringToLongLong`` (Redis's string2ll): canonical decimal, no sign "+", no leading zeros.
- versions are kept as decimal strings (a Lua number is exact only below 2^53; ABS may set up to 2^63-1).
- ``exhset``: option parsing mirrors TairHashTypeHset_RedisCommand clause by clause (which combinations are a
  syntax error, and in which order errors are checked: arity, WRONGTYPE, options, expire, version).
- ``expire_generic``: EXHPEXPIREAT/EXHPEXPIRE/EXHEXPIREAT/EXHEXPIRE. The module accepts 4 or 6 arguments
  (``[VER|ABS version]``); 5 or 7 are a syntax error, fewer or more an arity error. Like the module, a successful
  call bumps the field's version (or sets it with ABS), and an expire time of 0 means "expired now".
- ``sweep``: the active expiry (the module's timer): fields past their time in keys due in the index are deleted.
"""

from __future__ import annotations

import re

LIBRARY = "tairhash_emulator"
EXPIRES_KEY = "__tairhash_emulator__:expires"

_BODY = r"""
local function rcall(...) return redis.call(...) end
local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'
local SYNTAX = 'ERR syntax error'
local STALE = 'ERR update version is stale'
local INDEX = '@INDEX@'
local function err(m) return {err = m} end
local function arity(name) return err("ERR wrong number of arguments for '" .. name .. "' command") end
local function now_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function kind(key)
  local t = rcall('TYPE', key)['ok']
  if t == 'none' then return 0 end
  if t == 'zset' and rcall('ZSCORE', key, '') then return 1 end
  return -1
end
local function prefix(f) return #f .. ':' .. f .. ':' end
local function open(a, ok)
  if not ok then return nil, arity(a[1]) end
  local t = kind(a[2])
  if t < 0 then return nil, err(WRONGTYPE) end
  return t
end
local function decode(m)
  local c = string.find(m, ':', 1, true)
  local n = tonumber(string.sub(m, 1, c - 1))
  local f = string.sub(m, c + 1, c + n)
  local i = string.find(m, ':', c + n + 2, true)
  local j = string.find(m, ':', i + 1, true)
  return {m = m, f = f, ver = string.sub(m, c + n + 2, i - 1), exp = tonumber(string.sub(m, i + 1, j - 1)),
          val = string.sub(m, j + 1)}
end
local function find(key, f)
  local p = prefix(f)
  local m = rcall('ZRANGEBYLEX', key, '[' .. p, '(' .. string.sub(p, 1, -2) .. ';', 'LIMIT', 0, 1)[1]
  if not m then return nil end
  return decode(m)
end
local function live(key, f, now)
  local e = find(key, f)
  if e and e.exp > 0 and now >= e.exp then
    rcall('ZREM', key, e.m)
    return nil
  end
  return e
end
local function drop_empty(key)
  if rcall('ZCARD', key) <= 1 then rcall('DEL', key) end
end
local function store(key, f, ver, exp, val, old)
  if old then rcall('ZREM', key, old.m) end
  rcall('ZADD', key, 0, prefix(f) .. ver .. ':' .. string.format('%.0f', exp) .. ':' .. val)
  if exp > 0 then rcall('ZADD', INDEX, 'LT', exp, key) end
end
local function ll(s)
  if s == '0' then return 0 end
  if not string.find(s, '^%-?[1-9]%d*$') then return nil end
  local neg = string.sub(s, 1, 1) == '-'
  local d = neg and string.sub(s, 2) or s
  if #d > 19 or (#d == 19 and d > (neg and '9223372036854775808' or '9223372036854775807')) then return nil end
  return tonumber(s)
end
local function incr(v)
  local n = tonumber(v)
  if n < 9007199254740991 then return string.format('%.0f', n + 1) end
  local i = #v
  while i > 0 and string.sub(v, i, i) == '9' do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #v) end
  return string.sub(v, 1, i - 1) .. string.char(string.byte(v, i) + 1) .. string.rep('0', #v - i)
end
local function exhset(a)
  if #a < 4 then return arity(a[1]) end
  local key, field, value = a[2], a[3], a[4]
  local t = kind(key)
  if t < 0 then return err(WRONGTYPE) end
  local nx, xx, ex, px, at, ver, abs, keep = false, false, false, false, false, false, false, false
  local expire_p, version_p = nil, nil
  local j = 5
  while j <= #a do
    local o, nxt = string.lower(a[j]), a[j + 1]
    if o == 'nx' and not xx then nx = true
    elseif o == 'xx' and not nx then xx = true
    elseif (o == 'ex' or o == 'exat' or o == 'px' or o == 'pxat') and not ex and not px and not keep and nxt then
      if o == 'ex' or o == 'exat' then ex = true else px = true end
      at = at or o == 'exat' or o == 'pxat'
      expire_p = nxt
      j = j + 1
    elseif o == 'ver' and not abs and nxt then ver = true; version_p = nxt; j = j + 1
    elseif o == 'abs' and not ver and nxt then abs = true; version_p = nxt; j = j + 1
    elseif o == 'keepttl' and not ex and not px then keep = true
    else return err(SYNTAX) end
    j = j + 1
  end
  local expire, version = 0, '0'
  if expire_p then
    expire = ll(expire_p)
    if not expire or expire < 0 then return err(SYNTAX) end
  end
  if version_p then
    local v = ll(version_p)
    if not v or v < 0 or (abs and v == 0) then return err(SYNTAX) end
    version = version_p
  end
  if t == 0 and xx then return -1 end
  local now = now_ms()
  local cur = nil
  if t == 1 then cur = live(key, field, now) end
  if cur then
    if nx then return -1 end
    if ver and version ~= '0' and version ~= cur.ver then return err(STALE) end
  elseif xx then
    drop_empty(key)
    return -1
  end
  if t == 0 then rcall('ZADD', key, 0, '') end
  local newver = abs and version or incr(cur and cur.ver or '0')
  local ms = 0
  if expire > 0 then
    if ex then expire = expire * 1000 end
    if at then ms = expire else ms = now + expire end
  elseif expire_p then
    ms = 1
  end
  local exp = ms
  if ms == 0 and keep and cur then exp = cur.exp end
  store(key, field, newver, exp, value, cur)
  if cur then return 0 end
  return 1
end
local function exhget(a)
  local t, e = open(a, #a == 3)
  if e then return e end
  if t == 0 then return false end
  local e = live(a[2], a[3], now_ms())
  drop_empty(a[2])
  if e then return e.val end
  return false
end
local function exhmget(a)
  local t, e = open(a, #a >= 3)
  if e then return e end
  local out, now = {}, now_ms()
  for i = 3, #a do
    local e = nil
    if t == 1 then e = live(a[2], a[i], now) end
    out[#out + 1] = e and e.val or false
  end
  if t == 1 then drop_empty(a[2]) end
  return out
end
local function exhdel(a)
  local t, e = open(a, #a >= 3)
  if e then return e end
  if t == 0 then return 0 end
  local n, now = 0, now_ms()
  for i = 3, #a do
    local e = live(a[2], a[i], now)
    if e then
      rcall('ZREM', a[2], e.m)
      n = n + 1
    end
  end
  drop_empty(a[2])
  return n
end
local function expire_generic(a, relative, seconds)
  if #a < 4 or #a > 7 then return arity(a[1]) end
  local ms = ll(a[4])
  if not ms or ms < 0 then return err(SYNTAX) end
  if #a == 5 or #a == 7 then return err(SYNTAX) end
  local ver, abs, version = false, false, '0'
  if #a == 6 then
    local o = string.lower(a[5])
    if o == 'ver' then ver = true elseif o == 'abs' then abs = true else return err(SYNTAX) end
    local v = ll(a[6])
    if not v or v < 0 or (abs and v == 0) then return err(SYNTAX) end
    version = a[6]
  end
  local t = kind(a[2])
  if t < 0 then return err(WRONGTYPE) end
  if t == 0 then return 0 end
  local now = now_ms()
  local cur = live(a[2], a[3], now)
  if not cur then
    drop_empty(a[2])
    return 0
  end
  if ver and version ~= '0' and version ~= cur.ver then return err(STALE) end
  if ms == 0 then
    ms = 1
  else
    if seconds then ms = ms * 1000 end
    if relative then ms = ms + now end
  end
  store(a[2], a[3], abs and version or incr(cur.ver), ms, cur.val, cur)
  return 1
end
local function ttl_generic(a, seconds)
  local t, e = open(a, #a == 3)
  if e then return e end
  if t == 0 then return -2 end
  local now = now_ms()
  local e = live(a[2], a[3], now)
  drop_empty(a[2])
  if not e then return -3 end
  if e.exp == 0 then return -1 end
  local left = math.max(e.exp - now, 0)
  if seconds then return math.floor((left + 500) / 1000) end
  return left
end
local function exhver(a)
  local t, e = open(a, #a == 3)
  if e then return e end
  if t == 0 then return -1 end
  local e = live(a[2], a[3], now_ms())
  drop_empty(a[2])
  if not e then return -2 end
  return tonumber(e.ver)
end
local function exhlen(a)
  if #a ~= 2 and #a ~= 3 then return arity(a[1]) end
  if #a == 3 and string.lower(a[3]) ~= 'noexp' then return err(SYNTAX) end
  local t = kind(a[2])
  if t < 0 then return err(WRONGTYPE) end
  if t == 0 then return 0 end
  if #a == 2 then return rcall('ZCARD', a[2]) - 1 end
  local n, now = 0, now_ms()
  for _, m in ipairs(rcall('ZRANGE', a[2], 1, -1)) do
    local e = decode(m)
    if e.exp == 0 or now <= e.exp then n = n + 1 end
  end
  return n
end
local function exhgetall(a)
  local t, e = open(a, #a == 2)
  if e then return e end
  if t == 0 then return {} end
  local out, now = {}, now_ms()
  for _, m in ipairs(rcall('ZRANGE', a[2], 1, -1)) do
    local e = decode(m)
    if e.exp > 0 and now >= e.exp then
      rcall('ZREM', a[2], m)
    else
      out[#out + 1] = e.f
      out[#out + 1] = e.val
    end
  end
  drop_empty(a[2])
  return out
end
local function sweep(a)
  local now = now_ms()
  local due = rcall('ZRANGEBYSCORE', INDEX, '-inf', now, 'LIMIT', 0, tonumber(a[2]))
  for _, key in ipairs(due) do
    local nxt = nil
    if kind(key) == 1 then
      for _, m in ipairs(rcall('ZRANGE', key, 1, -1)) do
        local e = decode(m)
        if e.exp > 0 then
          if now >= e.exp then rcall('ZREM', key, m) elseif not nxt or e.exp < nxt then nxt = e.exp end
        end
      end
      drop_empty(key)
    end
    if nxt then rcall('ZADD', INDEX, nxt, key) else rcall('ZREM', INDEX, key) end
  end
  return #due
end
local CMDS = {
  exhset = exhset, exhget = exhget, exhmget = exhmget, exhdel = exhdel,
  exhpexpireat = function(a) return expire_generic(a, false, false) end,
  exhpexpire = function(a) return expire_generic(a, true, false) end,
  exhexpireat = function(a) return expire_generic(a, false, true) end,
  exhexpire = function(a) return expire_generic(a, true, true) end,
  exhpttl = function(a) return ttl_generic(a, false) end,
  exhttl = function(a) return ttl_generic(a, true) end,
  exhver = exhver, exhlen = exhlen, exhgetall = exhgetall,
}
"""

# Commands routed by ``FCALL tairhash_emulator 0 <name> <args...>``, in the order the docstrings list them.
COMMANDS = ("EXHSET", "EXHGET", "EXHMGET", "EXHDEL", "EXHPEXPIREAT", "EXHPEXPIRE", "EXHEXPIREAT", "EXHEXPIRE",
            "EXHPTTL", "EXHTTL", "EXHVER", "EXHLEN", "EXHGETALL")
SWEEP = "__sweep"  # the active-expiry pass, called by the emulator itself (not a Tair command)

_FUNCTION = r"""
redis.register_function('@LIB@', function(keys, args)
  if args[1] == '@SWEEP@' then return sweep(args) end
  return CMDS[string.lower(args[1])](args)
end)
"""

# In a client's script: ``redis.call('EXHSET', ...)`` behaves like Tair's (an error reply raises), anything else is
# the real redis.call. Redis hands a script's number arguments on as "%.17g" text; so does this.
_SCRIPT_API = r"""
local function tair_call(raise, cmd, ...)
  local h = CMDS[string.lower(cmd)]
  if not h then
    if raise then return rcall(cmd, ...) end
    return redis.pcall(cmd, ...)
  end
  local a = {cmd, ...}
  for i = 2, #a do
    if type(a[i]) == 'number' then a[i] = string.format('%.17g', a[i]) end
  end
  local r = h(a)
  if raise and type(r) == 'table' and r.err then error(r) end
  return r
end
"""


def _fold(lua: str) -> str:
    """One line: statements need no newlines in Lua (the body has no ``--`` comments or long strings)."""
    return " ".join(line.strip() for line in lua.strip().splitlines() if line.strip())


def _body() -> str:
    return _BODY.replace("@INDEX@", EXPIRES_KEY)


def function_library() -> str:
    """The source for ``FUNCTION LOAD REPLACE``."""
    return (f"#!lua name={LIBRARY}\n" + _body()
            + _FUNCTION.replace("@LIB@", LIBRARY).replace("@SWEEP@", SWEEP))


_PRELUDE = ("local __tair = (function() " + _fold(_body() + _SCRIPT_API)
            + " return {call = function(...) return tair_call(true, ...) end, "
              "pcall = function(...) return tair_call(false, ...) end} end)() ")
_CALLS = re.compile(rb"\bredis\s*\.\s*(p?call)\s*\(")


def script_prelude(source: bytes) -> bytes:
    """A client's script with TairHash available to it: the prelude goes in front of its first line (after a
    ``#!`` shebang line), on that same line, and ``redis.call(`` / ``redis.pcall(`` become the prelude's."""
    body = _CALLS.sub(rb"__tair.\1(", source)
    if body.startswith(b"#!"):
        first, nl, rest = body.partition(b"\n")
        return first + nl + _PRELUDE.encode() + rest
    return _PRELUDE.encode() + body


__all__ = ["COMMANDS", "EXPIRES_KEY", "LIBRARY", "SWEEP", "function_library", "script_prelude"]
