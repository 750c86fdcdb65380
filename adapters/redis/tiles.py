"""Aggregation tiles in Redis: one hash per (view, entity), one field per tile (``<level>:<tile>``).

A field holds the partial's history version as 20 decimal digits, then the encoded partial (skewless.aggregation
decides what it holds; nothing after the version: the tile is empty now, a tombstone an older writer cannot undo).
Writes go through ``TILE_UPSERT`` (one EVALSHA per entity, framed here and pipelined in one round trip): a field is
replaced unless it holds a later version. Reads are one HMGET per entity of the tiles ``now`` needs (the same fields for every entity), all sent at
once and answered in one round trip. The Tair store puts them in a TairHash instead (``tiles_in_exhash``): the same
fields with a per-field expire, read by EXHMGET.

Eviction (transformations.md: tiles older than ``now - longest window - hop`` may go): the hash expires at its
newest tile's end + the longest window + the hop, so an entity without recent events frees its key; the expire time
only ever moves later.
"""

from __future__ import annotations

from typing import Sequence

from redis.exceptions import NoScriptError, ResponseError

from skewless.aggregation.tiles import FANOUT
from skewless.online.base import Key

from . import codec, resp
from .scripts import script_sha
from .wire import SPIN_KEYS

TILE_UPSERT = """-- skewless aggregation tiles: keep the partial of the latest history version per field
local ver = tonumber(ARGV[1])
-- one HMGET and one HSET per slice of fields (not two calls per field); slices keep unpack under Lua's stack limit
for lo = 3, #ARGV, 1000 do
  local hi = math.min(lo + 999, #ARGV)
  local fields = {}
  for i = lo, hi, 2 do fields[#fields + 1] = ARGV[i] end
  local cur = redis.call('HMGET', KEYS[1], unpack(fields))
  local set = {}
  for j = 1, #fields do
    local c = cur[j]
    if (not c) or tonumber(string.sub(c, 1, 20)) <= ver then
      set[#set + 1] = ARGV[lo + 2 * j - 2]
      set[#set + 1] = ARGV[lo + 2 * j - 1]
    end
  end
  if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
end
if ARGV[2] ~= '' then
  local at = tonumber(ARGV[2])
  local cur = redis.call('PEXPIRETIME', KEYS[1])
  if cur == -1 or cur < at then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
end
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
_SHA = script_sha(TILE_UPSERT)
_SHA_EXHASH = script_sha(TILE_UPSERT_EXHASH)
_VER = 20  # digits of the version prefix


def field(level: int, tile: int) -> bytes:
    return b"%d:%d" % (level, tile)


class RedisTiles:
    """``write_tiles`` / ``read_tiles`` of ``RedisOnlineStore`` (mixed into it; uses its ``call``, ``client``,
    ``exchange``, ``key_head``, ``cluster``)."""

    supports_tiles = True

    @property
    def tiles_in_exhash(self) -> bool:
        """Whether tiles go to a TairHash (per-field expire) instead of a hash; the Tair store overrides it."""
        return False

    def _tile_key(self, view, key: tuple) -> bytes:
        return b"%b%b}" % (self.key_head(view.name), codec.entity_py(view)(key))

    def write_tiles(self, view, tiles, version: int) -> int:
        if not tiles:
            return 0
        keep_ms = (view.longest_window_us + view.hop_us) // 1000
        exhash = self.tiles_in_exhash
        by_key: dict[tuple, list] = {}
        for key, lv, t, st in tiles:
            got = by_key.get(key)
            if got is None:
                got = by_key[key] = []
            got.append((lv, t, st))
        head = b"%0*d" % (_VER, version)
        sizes = [FANOUT ** lv * view.hop_us for lv in range(1 + max(lv for _, lv, _, _ in tiles))]
        calls = []  # (key, RESP of the arguments after it, their count)
        for key, items in by_key.items():
            parts: list[bytes] = []
            newest = None
            for lv, t, st in items:
                f = b"%d:%d" % (lv, t)  # field(lv, t), inline: this loop runs per tile
                st = st or b""
                parts.append(b"$%d\r\n%b\r\n$%d\r\n%b%b\r\n" % (len(f), f, _VER + len(st), head, st))
                end_ms = -(-(t + 1) * sizes[lv] // 1000)  # tile_range(lv, t)'s end, in ms rounded up
                if exhash:
                    parts.append(resp.bulk(b"%d" % max(end_ms + keep_ms, 1)))  # TairHash refuses PXAT <= 0
                elif st:
                    newest = end_ms if newest is None or end_ms > newest else newest
            if exhash:
                pre = [b"%d" % version]
            else:
                pre = [b"%d" % version, b"" if newest is None else b"%d" % (newest + keep_ms)]
            calls.append((self._tile_key(view, key), b"".join(map(resp.bulk, pre)) + b"".join(parts),
                          len(pre) + len(items) * (3 if exhash else 2)))
        sha, script = (_SHA_EXHASH, TILE_UPSERT_EXHASH) if exhash else (_SHA, TILE_UPSERT)
        run = (lambda: self._upsert_cluster(sha, calls)) if self.cluster else (lambda: self._upsert_raw(sha, calls))
        for attempt in (0, 1):
            errors = [r for r in self.call("write tiles", run) if isinstance(r, Exception)]
            if not errors:
                return len(tiles)
            if attempt == 0 and all(isinstance(e, NoScriptError) or str(e).startswith("NOSCRIPT") for e in errors):
                self.call("script load", lambda: self.client.script_load(script))
                continue
            raise self.unavailable(f"write tiles of view {view.name!r}", errors[0]) from errors[0]
        raise AssertionError("unreachable")

    def _upsert_raw(self, sha: str, calls: list) -> list:
        """One pipelined round trip of EVALSHA calls framed here (no per-argument work in redis-py)."""
        head = resp.evalsha_head(sha.encode())

        def send(conn) -> int:
            conn.send_packed_command([b"".join(head % (n + 4) + b"$1\r\n1\r\n" + resp.bulk(k) + body
                                               for k, body, n in calls)], check_health=False)
            return len(calls)
        return self.exchange(send)

    def _upsert_cluster(self, sha: str, calls: list) -> list:
        pipe = self.client.pipeline(transaction=False)
        for k, body, _ in calls:
            pipe.execute_command("EVALSHA", sha, 1, k, *_unframe(body))  # (cluster pipelines refuse .evalsha)
        return pipe.execute(raise_on_error=False)

    def _fields(self, tiles: Sequence[tuple[int, int]]) -> tuple[list[bytes], bytes]:
        """The fields of ``tiles`` and their RESP encoding; a reader passes the same list while ``now`` stays in
        one hop tile, so the last one is kept (with the list, so its id cannot be reused)."""
        hit = getattr(self, "_tile_fields", None)
        if hit is not None and hit[0] is tiles:
            return hit[1], hit[2]
        fields = [field(lv, t) for lv, t in tiles]
        packed = b"".join(map(resp.bulk, fields))
        self._tile_fields = (tiles, fields, packed)
        return fields, packed

    def read_tiles(self, view, keys: list[Key], tiles: Sequence[tuple[int, int]]) -> list[dict]:
        out: list[dict] = [{} for _ in keys]
        live = [i for i, k in enumerate(keys) if None not in k]
        if not live or not tiles:
            return out
        fields, packed = self._fields(tiles)
        command = b"EXHMGET" if self.tiles_in_exhash else b"HMGET"
        rkeys = [self._tile_key(view, keys[i]) for i in live]
        if self.cluster:
            def run():
                pipe = self.client.pipeline(transaction=False)
                for k in rkeys:
                    pipe.execute_command(command.decode(), k, *fields)  # (cluster routing wants a str)
                return pipe.execute()
            replies = self.call("read tiles", run)
        else:
            cmd = b"*%d\r\n%b" % (len(fields) + 2, resp.bulk(command))

            def send(conn) -> int:
                conn.send_packed_command([b"".join(cmd + resp.bulk(k) + packed for k in rkeys)], check_health=False)
                return len(rkeys)
            # busy-poll for small reads first, as row reads do (wire.SpinPolicy)
            spin = len(rkeys) if len(rkeys) <= SPIN_KEYS else 0
            replies = self.call("read tiles", lambda: self.exchange(send, spin=spin))
            err = next((r for r in replies if isinstance(r, Exception)), None)
            if err is not None:
                if isinstance(err, ResponseError) and "WRONGTYPE" in str(err):
                    return out  # not a hash: the view was a plain view under this name; nothing of it is a tile
                raise self.unavailable("read tiles", err) from err
        for i, vals in zip(live, replies):
            out[i] = {t: v[_VER:] for t, v in zip(tiles, vals) if v is not None and len(v) > _VER}
        return out


def _unframe(body: bytes) -> list[bytes]:
    """The arguments of RESP bulk strings ``body`` (the cluster path hands redis-py arguments, not frames)."""
    out, i = [], 0
    while i < len(body):
        j = body.index(b"\r\n", i)
        n = int(body[i + 1:j])
        out.append(body[j + 2:j + 2 + n])
        i = j + 4 + n
    return out
