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

import threading
import uuid
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from redis.exceptions import NoScriptError, RedisError, ResponseError

from skewless.aggregation import state_bytes
from skewless.aggregation.dirty import TileBatch
from skewless.aggregation.tiles import FANOUT
from skewless.online.base import Key

from . import codec, resp, tile_stream
from .scripts import script_sha
from .wire import SPIN_KEYS

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
# Tiles of entities that most likely have none stored yet (``TileBatch.fresh``): each entity's fields, '~v' included,
# are written by a plain HSET into a staging hash of this write's own (no Lua argument per field: half the server's
# CPU of the script above), then claimed here in the same MULTI/EXEC: renamed onto the tile hash when that does not
# exist (which is what ``upsert`` would write into an absent hash), else merged into it by ``upsert`` and dropped.
TILE_CLAIM = """-- skewless aggregation tiles: a staged hash becomes the tile hash if there is none, else is merged into it
-- KEYS: n staging hashes, then their n tile hashes. ARGV: the version, then each tile hash's expire time.
""" + _UPSERT_FN + """
local ver = tonumber(ARGV[1])
local n = #KEYS / 2
for k = 1, n do
  local tmp, key, at = KEYS[k], KEYS[n + k], ARGV[k + 1]
  if redis.call('EXISTS', key) == 0 then
    redis.call('RENAME', tmp, key)  -- (no staging hash: an error, and the client writes the tiles again)
    redis.call('PEXPIREAT', key, at)
  else
    local got, pairs = redis.call('HGETALL', tmp), {}
    for i = 1, #got, 2 do
      if got[i] ~= '~v' then
        pairs[#pairs + 1] = got[i]
        pairs[#pairs + 1] = got[i + 1]
      end
    end
    redis.call('DEL', tmp)
    upsert(key, ver, ARGV[1], pairs, 1, #pairs, at)
  end
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
_SHA_CLAIM = script_sha(TILE_CLAIM)
_SHA_EXHASH = script_sha(TILE_UPSERT_EXHASH)
_VER = 20  # digits of the version prefix
KEYS_PER_CALL = 100  # entities per EVALSHA: the script's call overhead shared, a call still short
_MULTI, _EXEC = b"*1\r\n$5\r\nMULTI\r\n", b"*1\r\n$4\r\nEXEC\r\n"
_NONE = np.iinfo(np.int64).min
_STREAMS_LOCK = threading.Lock()
_EMPTY, _DOLLAR, _CRLF = (pa.scalar(x, resp.BIN) for x in (b"", b"$", b"\r\n"))


def field(level: int, tile: int) -> bytes:
    return b"%d:%d" % (level, tile)


class RedisTiles:
    """``write_tiles`` / ``read_tiles`` of ``RedisOnlineStore`` (mixed into it; uses its ``call``, ``client``,
    ``exchange``, ``key_head``, ``cluster``)."""

    supports_tiles = True
    _claim_loaded = False  # TILE_CLAIM loaded on this store's server (once per store: not a NOSCRIPT per chunk)

    @property
    def tiles_in_exhash(self) -> bool:
        """Whether tiles go to a TairHash (per-field expire) instead of a hash; the Tair store overrides it."""
        return False

    def _tile_key(self, view, key: tuple) -> bytes:
        return b"%b%b}" % (self.key_head(view.name), codec.entity_py(view)(key))

    def write_tiles(self, view, tiles, version: int) -> int:
        if not len(tiles):
            return 0
        exhash = self.tiles_in_exhash
        if exhash or self.cluster or not isinstance(tiles, TileBatch):
            calls = self._calls_per_entity(view, tiles, version, exhash)
            run = (lambda: self._upsert_cluster(sha, calls)) if self.cluster else \
                (lambda: self._upsert_raw(sha, calls))
        else:
            packed, ncalls, _ = self._frame_batch(view, tiles, version)
            run = lambda: self._send_framed(packed, ncalls)  # noqa: E731
        sha, script = (_SHA_EXHASH, TILE_UPSERT_EXHASH) if exhash else (_SHA, TILE_UPSERT)
        for attempt in (0, 1):
            errors = [r for r in self.call("write tiles", run) if isinstance(r, Exception)]
            if not errors:
                return len(tiles)
            if attempt == 0 and all(isinstance(e, NoScriptError) or str(e).startswith("NOSCRIPT") for e in errors):
                self.call("script load", lambda: self.client.script_load(script))
                continue
            raise self.unavailable(f"write tiles of view {view.name!r}", errors[0]) from errors[0]
        raise AssertionError("unreachable")

    def start_write_tiles(self, view, tiles, version: int):
        """A batch framed now and queued on this thread's tile stream (``tile_stream``: one ordered, pipelined
        connection), its replies read by the function returned: the server runs it while the caller computes the
        next batch, and the next batch may be started before this one is finished (finish them in start order).
        Any failure of the deferred half (a broken connection, NOSCRIPT, an error reply) is settled by writing the
        batch again through ``write_tiles`` (idempotent), which raises the typed error if it persists."""
        if self.tiles_in_exhash or self.cluster or not isinstance(tiles, TileBatch) or not len(tiles) \
                or tile_stream.hiredis is None:
            n = self.write_tiles(view, tiles, version)
            return lambda: n
        staged = tiles.fresh
        try:
            if staged and not self._claim_loaded:
                self.client.script_load(TILE_CLAIM)
                self._claim_loaded = True
            packed, ncalls, staging = self._frame_batch(view, tiles, version, staged=staged)
            ticket = self._tile_streams().get().send(packed)
        except (RedisError, OSError):  # no stream (cannot connect): the synchronous path retries and raises typed
            n = self.write_tiles(view, tiles, version)
            return lambda: n

        def finish() -> int:
            replies = ticket.replies(ncalls)
            # (a staged chunk's EXEC answers an array: its commands' errors are in it)
            errors = None if replies is None else [x for r in replies for x in (r if isinstance(r, list) else (r,))
                                                   if isinstance(x, Exception)]
            if errors is None or errors:
                if any(str(x).startswith("NOSCRIPT") for x in errors or ()):  # both, for the chunks after this one
                    self.call("script load", lambda: [self.client.script_load(x) for x in (TILE_UPSERT, TILE_CLAIM)])
                n = self.write_tiles(view, tiles, version)  # (every field through TILE_UPSERT)
                for head, entity, tail in staging:  # what a transaction whose claim failed staged (this write's)
                    names = pc.binary_join_element_wise(pa.scalar(head, resp.BIN), entity.cast(resp.BIN),
                                                        pa.scalar(b"}" + tail, resp.BIN), _EMPTY).to_pylist()
                    self.call("drop staging hashes", lambda names=names: self.client.delete(*names))
                return n
            return len(tiles)
        return finish

    def _tile_streams(self) -> tile_stream.Streams:
        streams = self.__dict__.get("_streams")
        if streams is None:
            with _STREAMS_LOCK:
                streams = self.__dict__.setdefault("_streams", tile_stream.Streams(self.wire.new_connection))
        return streams

    def _calls_per_entity(self, view, tiles, version: int, exhash: bool) -> list:
        """One EVALSHA per entity: (key, RESP of the arguments after it, their count). Tile by tile in Python: the
        TairHash script, a cluster (each key its own slot), tiles given as tuples."""
        keep_ms = (view.longest_window_us + view.hop_us) // 1000
        by_key: dict[tuple, list] = {}
        for key, lv, t, st in tiles:
            got = by_key.get(key)
            if got is None:
                got = by_key[key] = []
            got.append((lv, t, st))
        head = b"%0*d" % (_VER, version)
        calls = []
        for key, items in by_key.items():
            parts: list[bytes] = []
            newest = None
            for lv, t, st in items:
                f = b"%d:%d" % (lv, t)  # field(lv, t), inline: this loop runs per tile
                st = st or b""
                parts.append(b"$%d\r\n%b\r\n$%d\r\n%b%b\r\n" % (len(f), f, _VER + len(st), head, st))
                end_ms = -(-(t + 1) * FANOUT ** lv * view.hop_us // 1000)  # tile_range(lv, t)'s end, ms rounded up
                if exhash:
                    parts.append(resp.bulk(b"%d" % max(end_ms + keep_ms, 1)))  # TairHash refuses PXAT <= 0
                elif st:
                    newest = end_ms if newest is None or end_ms > newest else newest
            if exhash:
                pre = [b"%d" % version]
            else:
                pre = [b"%d" % version, b"%d" % len(items), b"" if newest is None else b"%d" % (newest + keep_ms)]
            calls.append((self._tile_key(view, key), b"".join(map(resp.bulk, pre)) + b"".join(parts),
                          len(pre) + len(items) * (3 if exhash else 2)))
        return calls

    def _frame_batch(self, view, b: TileBatch, version: int, staged: bool = False) -> tuple[list, int, list]:
        """The EVALSHA calls of a batch, part by part (``TileBatch.parts``), ``KEYS_PER_CALL`` entities each, framed
        as RESP with numpy and Arrow (no Python object per tile): the buffers to send in turn (the tiles' frames
        as views of one buffer per part, never joined) and the number of calls (replies). An entity with
        tiles in two parts is in two calls; each keeps the newest version per field, so that is one write.
        ``staged``: parts of packable states go through staging hashes and ``TILE_CLAIM`` (``_staged``); the
        third value says how to name them, per part."""
        out, ncalls, staging = [], 0, []
        for e, lv, tile, states in b.parts:
            if staged and isinstance(states, state_bytes.Rows) and states.packable:
                ncalls += self._staged(view, b.keys, e, lv, tile, states, version, out, staging)
                continue
            if isinstance(states, state_bytes.Rows) and states.packable:
                frames = self._frames_packed(view, e, lv, tile, states, version)
            else:
                frames = self._frames_arrow(view, e, lv, tile, states, version)
            ncalls += self._calls(view, b.keys, e, frames, version, out)
        return out, ncalls, staging

    def _frames_arrow(self, view, e: np.ndarray, lv: np.ndarray, tile: np.ndarray, state, version: int) -> pa.Array:
        """Per tile (sorted by entity), its ARGV frames: the entity's count and expire time before its first tile,
        then the field and the versioned state as RESP bulk strings, built with Arrow."""
        if isinstance(state, state_bytes.Rows):
            state = state.build()
        n = len(e)
        keep_ms = (view.longest_window_us + view.hop_us) // 1000
        starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])  # each entity's first tile
        counts = np.diff(np.r_[starts, n])
        valid = state.is_valid().to_numpy(zero_copy_only=False)
        end_ms = -(-(tile + 1) * (FANOUT ** lv * view.hop_us) // 1000)  # tile_range's end, ms rounded up
        newest = np.maximum.reduceat(np.where(valid, end_ms, _NONE), starts)
        exp = pc.if_else(pa.array(newest != _NONE), pc.cast(pa.array(newest + keep_ms), pa.string()).cast(resp.BIN),
                         pa.scalar(b"", resp.BIN))
        heads = pc.binary_join_element_wise(resp.bulk_numbers(counts), resp.bulk_strings(exp), _EMPTY)
        first = np.full(n, len(starts), np.int64)  # the entity's head before its first tile, else nothing
        first[starts] = np.arange(len(starts))
        heads = pa.concat_arrays([heads, pa.array([b""], resp.BIN)]).take(pa.array(first))
        names = pc.binary_join_element_wise(pc.cast(pa.array(lv), pa.string()), pc.cast(pa.array(tile),
                                            pa.string()), ":").cast(resp.BIN)
        state = pc.fill_null(state, _EMPTY)
        value_len = pc.cast(pc.add(pc.binary_length(state), _VER), pa.string()).cast(resp.BIN)
        # one pass over the states: head, field, then "$<len>" + version + state as the value's bulk string
        return pc.binary_join_element_wise(
            heads, *resp.bulk_pieces(names), _DOLLAR, value_len, pa.scalar(b"\r\n%0*d" % (_VER, version), resp.BIN),
            state, _CRLF, _EMPTY)

    def _frames_packed(self, view, e: np.ndarray, lv: np.ndarray, tile: np.ndarray, states: state_bytes.Rows,
                       version: int, head: state_bytes.Rows | None = None) -> pa.Array:
        """``_frames_arrow`` for states not packed yet (every one present): the frames are pieces around the
        states' own and everything is packed in one pass of numpy over the bytes. ``head``: what goes before each
        entity's first tile (one row per entity; default its tile count and expire time, the upsert's ARGV)."""
        n = len(e)
        starts, counts, exp = _entity_runs(view, e, lv, tile)
        if head is None:
            head = state_bytes.Rows(len(starts))  # per entity: its tile count and expire time as bulk strings
            for v in (counts, exp):
                head.const(b"$")
                head.decimal(state_bytes.decimal_width(v))
                head.const(b"\r\n")
                head.decimal(v)
                head.const(b"\r\n")
        mat, lens = head.matrix()
        at = np.zeros((n, mat.shape[1]), np.uint8)
        at[starts] = mat
        width = np.zeros(n, np.int64)
        width[starts] = lens
        frame = state_bytes.Rows(n)
        frame.padded(at, width)  # the entity's head before its first tile
        frame.const(b"$")
        frame.decimal(state_bytes.decimal_width(lv) + 1 + state_bytes.decimal_width(tile))
        frame.const(b"\r\n")
        frame.decimal(lv)  # the field: field(lv, tile)
        frame.const(b":")
        frame.decimal(tile)
        frame.const(b"\r\n$")
        frame.decimal(states.lengths() + _VER)
        frame.const(b"\r\n%0*d" % (_VER, version))
        frame.extend(states)
        frame.const(b"\r\n")
        return frame.build()

    def _staged(self, view, keys: pa.Table, e: np.ndarray, lv: np.ndarray, tile: np.ndarray,
                states: state_bytes.Rows, version: int, out: list, staging: list) -> int:
        """Tiles of entities that most likely have none stored (``TileBatch.fresh``): per ``KEYS_PER_CALL`` entities
        one transaction: ``MULTI``, per entity ``HSET`` of its fields and ``~v`` into a staging hash named for this
        write (random: a concurrent writer's is never mixed in), one ``TILE_CLAIM``, ``EXEC``. Queued, nothing runs
        until ``EXEC`` arrives, so a writer dying mid-way leaves no staging hash (a claim that fails leaves them:
        the caller drops them, by the (key head, entities, suffix) added to ``staging``). Returns the number of replies."""
        n = len(e)
        starts, counts, exp = _entity_runs(view, e, lv, tile)
        entity = codec.entity_arrow(view, keys.take(pa.array(e[starts])))
        key_head, tail = self.key_head(view.name), b"~w" + uuid.uuid4().hex[:16].encode()
        staging.append((key_head, entity, tail))  # the staging hashes' names, made only if they must be dropped
        framed = resp.framed_keys(key_head, entity, tail)
        ver = resp.bulk(b"%d" % version)
        head = state_bytes.Rows(len(starts))  # HSET <staging hash> ~v <version>, the fields follow
        head.const(b"*")
        head.decimal(4 + 2 * counts)
        head.const(b"\r\n$4\r\nHSET\r\n")
        head.padded(*_padded(framed))
        head.const(b"$2\r\n~v\r\n" + ver)
        frames = resp.Slicer(self._frames_packed(view, e, lv, tile, states, version, head=head))
        tmp, key = resp.Slicer(framed), resp.Slicer(resp.framed_keys(key_head, entity))
        at = resp.Slicer(resp.bulk_numbers(exp))
        claim = resp.evalsha_head(_SHA_CLAIM.encode())
        tile_at = np.r_[starts, n].tolist()
        replies = 0
        for lo in range(0, len(starts), KEYS_PER_CALL):
            hi = min(lo + KEYS_PER_CALL, len(starts))
            k = hi - lo
            out += [_MULTI, frames(tile_at[lo], tile_at[hi]),
                    b"".join([claim % (4 + 3 * k), resp.bulk(b"%d" % (2 * k)), tmp(lo, hi), key(lo, hi), ver,
                              at(lo, hi), _EXEC])]
            replies += k + 3  # OK, k + 1 QUEUED, the EXEC's array
        return replies

    def _calls(self, view, keys: pa.Table, e: np.ndarray, frames: pa.Array, version: int, out: list) -> int:
        """The EVALSHA calls of the tiles ``frames`` (sorted by entity ``e``, rows of ``keys``), their pieces added to
        ``out``; returns their number."""
        starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
        entity = codec.entity_arrow(view, keys.take(pa.array(e[starts])))
        keys_at = resp.Slicer(resp.framed_keys(self.key_head(view.name), entity))
        at = resp.Slicer(frames)
        head, ver = resp.evalsha_head(_SHA.encode()), resp.bulk(b"%d" % version)
        ncalls = 0
        tile_at = np.r_[starts, len(e)].tolist()
        for lo in range(0, len(starts), KEYS_PER_CALL):
            hi = min(lo + KEYS_PER_CALL, len(starts))
            k, t = hi - lo, tile_at[hi] - tile_at[lo]
            out += [b"".join([head % (4 + 3 * k + 2 * t), resp.bulk(b"%d" % k), keys_at(lo, hi), ver]),
                    at(tile_at[lo], tile_at[hi])]
            ncalls += 1
        return ncalls

    def _send_framed(self, packed: list, ncalls: int) -> list:
        def send(conn) -> int:
            conn.send_packed_command(packed, check_health=False)
            return ncalls
        return self.exchange(send)

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


def _padded(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A binary array as a byte matrix, each value left-aligned in its row, and the values' lengths."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(resp.BIN)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64, len(arr) + 1, arr.offset * 8)
    lens = np.diff(offsets)
    width = int(lens.max()) if len(arr) else 0
    mat = np.zeros((len(arr), width), np.uint8)
    mat[np.arange(width) < lens[:, None]] = np.frombuffer(bufs[2], np.uint8, int(offsets[-1] - offsets[0]),
                                                          int(offsets[0]))
    return mat, lens


def _entity_runs(view, e: np.ndarray, lv: np.ndarray, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of tiles sorted by entity ``e``: each entity's first tile, its tile count and its hash's expire time (ms: its
    newest tile's end, rounded up, plus the longest window and the hop)."""
    starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
    counts = np.diff(np.r_[starts, len(e)])
    end_ms = -(-(tile + 1) * (FANOUT ** lv * view.hop_us) // 1000)  # tile_range's end, ms rounded up
    return starts, counts, np.maximum.reduceat(end_ms, starts) + (view.longest_window_us + view.hop_us) // 1000


def _unframe(body: bytes) -> list[bytes]:
    """The arguments of RESP bulk strings ``body`` (the cluster path hands redis-py arguments, not frames)."""
    out, i = [], 0
    while i < len(body):
        j = body.index(b"\r\n", i)
        n = int(body[i + 1:j])
        out.append(body[j + 2:j + 2 + n])
        i = j + 4 + n
    return out
