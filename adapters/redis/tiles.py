"""Aggregation tiles in Redis: one hash per (view, entity), one field per tile (``<level>:<tile>``).

A field holds the partial's history version as 20 decimal digits, then the encoded partial (skewless.aggregation
decides what it holds; nothing after the version: the tile is empty now, a tombstone an older writer cannot undo).
Writes keep the partial of the latest history version per field (``tile_scripts``): an ingest's or a refresh's
chunks as transactions of plain ``HSET``s between two scripts that take only the keys (``_guarded``), anything else
(the synchronous path, tiles given as tuples, a cluster, states not packed here) through ``TILE_UPSERT``, 100
entities per EVALSHA; framed here and pipelined. Reads are one HMGET per entity of the tiles ``now`` needs (the same
fields for every entity), all sent at once and answered in one round trip. The Tair store puts them in a TairHash
instead (``tiles_in_exhash``): the same fields with a per-field expire, read by EXHMGET.

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
from .tile_scripts import TILE_OPEN, TILE_SETTLE, TILE_UPSERT, TILE_UPSERT_EXHASH
from .wire import SPIN_KEYS

_SHA = script_sha(TILE_UPSERT)
_SHA_EXHASH = script_sha(TILE_UPSERT_EXHASH)
_VER = 20  # digits of the version prefix
KEYS_PER_CALL = 100  # entities per EVALSHA: the script's call overhead shared, a call still short
_MULTI, _EXEC = b"*1\r\n$5\r\nMULTI\r\n", b"*1\r\n$4\r\nEXEC\r\n"
# EVAL with the script's text, not EVALSHA: a script missing from the server's cache (a restart, SCRIPT FLUSH) is then
# no NOSCRIPT error inside the transaction, where the commands after it would run regardless
_OPEN, _SETTLE = (b"$4\r\nEVAL\r\n" + resp.bulk(x.encode()) for x in (TILE_OPEN, TILE_SETTLE))
_NONE = np.iinfo(np.int64).min
_STREAMS_LOCK = threading.Lock()
_EMPTY, _DOLLAR, _CRLF = (pa.scalar(x, resp.BIN) for x in (b"", b"$", b"\r\n"))


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
        try:
            packed, ncalls, work = self._frame_batch(view, tiles, version, guarded=True)
            ticket = self._tile_streams().get().send(packed)
        except (RedisError, OSError):  # no stream (cannot connect): the synchronous path retries and raises typed
            n = self.write_tiles(view, tiles, version)
            return lambda: n

        def finish() -> int:
            replies = ticket.replies(ncalls)
            # (a guarded chunk's EXEC answers an array: its commands' errors are in it)
            errors = None if replies is None else [x for r in replies for x in (r if isinstance(r, list) else (r,))
                                                   if isinstance(x, Exception)]
            if errors is None or errors:
                if any(str(x).startswith("NOSCRIPT") for x in errors or ()):  # for the chunks after this one too
                    self.call("script load", lambda: self.client.script_load(TILE_UPSERT))
                self._settle_again(work, version)
                return self.write_tiles(view, tiles, version)  # (every field through TILE_UPSERT)
            return len(tiles)
        return finish

    def _settle_again(self, work: list, version: int) -> None:
        """After a guarded chunk failed: ``TILE_SETTLE`` once more over its keys, so that no work hash is left
        holding a tile hash's fields whatever went wrong (each transaction settles its own; this only matters if
        that failed as a whole). Idempotent: a work hash no longer there is skipped."""
        ver = b"%d" % version
        for key_head, entity, tail, exp in work:
            for lo in range(0, len(entity), KEYS_PER_CALL):
                ent = entity.slice(lo, KEYS_PER_CALL).to_pylist()
                keys = [b"%b%b}" % (key_head, x) for x in ent]
                args = [*keys, *(k + tail for k in keys), ver, *(b"%d" % x for x in exp[lo:lo + KEYS_PER_CALL])]
                self.call("settle tiles", lambda args=args, n=len(keys): self._settle(n, args))

    def _settle(self, n: int, args: list) -> None:
        try:
            self.client.eval(TILE_SETTLE, 2 * n, *args)
        except ResponseError:  # a merge refused (not a hash), returned once every key was settled: write_tiles
            pass  # meets it again and raises it

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

    def _frame_batch(self, view, b: TileBatch, version: int, guarded: bool = False) -> tuple[list, int, list]:
        """The EVALSHA calls of a batch, part by part (``TileBatch.parts``), ``KEYS_PER_CALL`` entities each, framed
        as RESP with numpy and Arrow (no Python object per tile): the buffers to send in turn (the tiles' frames
        as views of one buffer per part, never joined) and the number of replies. An entity with tiles in two
        parts is in two calls; each keeps the newest version per field, so that is one write. ``guarded``: parts
        of packable states go as transactions of ``HSET``s (``_guarded``); the third value says how to name their
        work hashes, per part."""
        out, ncalls, work = [], 0, []
        for e, lv, tile, states in b.parts:
            if guarded and isinstance(states, state_bytes.Rows) and states.packable:
                ncalls += self._guarded(view, b.keys, e, lv, tile, states, version, out, work)
                continue
            if isinstance(states, state_bytes.Rows) and states.packable:
                frames = self._frames_packed(view, e, lv, tile, states, version)
            else:
                frames = self._frames_arrow(view, e, lv, tile, states, version)
            ncalls += self._calls(view, b.keys, e, frames, version, out)
        return out, ncalls, work

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
        frame = state_bytes.Rows(n)
        # the entity's head before its first tile, else nothing: an Arrow piece joined row by row (a padded column
        # would make every row as wide as a head), the heads' own bytes under offsets that stand still between them
        heads = head.build()
        lens = np.zeros(n, np.int64)
        lens[starts] = np.diff(np.frombuffer(heads.buffers()[1], np.int64, len(heads) + 1, heads.offset))
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        offsets += np.frombuffer(heads.buffers()[1], np.int64, 1, heads.offset)[0]
        frame.pieces.append(pa.Array.from_buffers(state_bytes.BIN, n, [None, pa.py_buffer(offsets),
                                                                         heads.buffers()[2]]))
        names = _field_frames(lv, tile)
        if names is not None:  # "$<len>\r\n<level>:<tile>\r\n" of each distinct tile spelled once, gathered
            frame.padded(*names)
            frame.const(b"$")
        else:
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

    def _guarded(self, view, keys: pa.Table, e: np.ndarray, lv: np.ndarray, tile: np.ndarray,
                 states: state_bytes.Rows, version: int, out: list, work: list) -> int:
        """Per ``KEYS_PER_CALL`` entities one transaction: ``MULTI``, ``TILE_OPEN`` (each tile hash whose ``~v`` is
        not later than ``version`` renamed to a work hash named for this write), per entity an ``HSET`` of its fields
        and ``~v`` into its work hash, ``TILE_SETTLE`` (each work hash renamed back, or merged field by field into a
        tile hash that was not opened), ``EXEC``. The result is exactly ``TILE_UPSERT``'s whatever is stored, and
        nothing runs before ``EXEC`` arrives (a writer dying mid-way leaves nothing). The fields are not Lua
        arguments: that is most of the upsert's server CPU. Adds (key head, entities, suffix, expire times) to
        ``work`` (the work hashes' names, made only if they must be settled again); returns the number of
        replies."""
        n = len(e)
        starts, counts, exp = _entity_runs(view, e, lv, tile)
        entity = codec.entity_arrow(view, keys.take(pa.array(e[starts])))
        key_head, tail = self.key_head(view.name), b"~w" + uuid.uuid4().hex[:16].encode()
        work.append((key_head, entity, tail, exp))
        framed = resp.framed_keys(key_head, entity, tail)
        ver = resp.bulk(b"%d" % version)
        head = state_bytes.Rows(len(starts))  # HSET <work hash> ~v <version>, the fields follow
        head.const(b"*")
        head.decimal(4 + 2 * counts)
        head.const(b"\r\n$4\r\nHSET\r\n")
        head.padded(*_padded(framed))
        head.const(b"$2\r\n~v\r\n" + ver)
        frames = resp.Slicer(self._frames_packed(view, e, lv, tile, states, version, head=head))
        tmp, key = resp.Slicer(framed), resp.Slicer(resp.framed_keys(key_head, entity))
        at = resp.Slicer(resp.bulk_numbers(exp))
        tile_at = np.r_[starts, n].tolist()
        replies = 0
        for lo in range(0, len(starts), KEYS_PER_CALL):
            hi = min(lo + KEYS_PER_CALL, len(starts))
            k = hi - lo
            both = [resp.bulk(b"%d" % (2 * k)), key(lo, hi), tmp(lo, hi), ver]
            out += [b"".join([_MULTI, b"*%d\r\n" % (4 + 2 * k), _OPEN, *both]), frames(tile_at[lo], tile_at[hi]),
                    b"".join([b"*%d\r\n" % (4 + 3 * k), _SETTLE, *both, at(lo, hi), _EXEC])]
            replies += k + 4  # OK, k + 2 QUEUED, the EXEC's array
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


def _field_frames(lv: np.ndarray, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per tile, its field as a RESP bulk string (``$<len>\r\n<level>:<tile>\r\n``), as a padded byte matrix and
    lengths: each distinct (level, tile) spelled once by Python and gathered, as a level's tiles span a narrow range
    (a write's recent hours). None when they do not (few tiles, or spread over a wide range)."""
    n = len(lv)
    if n < 256 or int(lv.min()) < 0:
        return None
    levels = int(lv.max()) + 1
    lo, hi = np.zeros(levels, np.int64), np.full(levels, -1, np.int64)
    for j in range(levels):
        mine = tile[lv == j]
        if len(mine):
            lo[j], hi[j] = mine.min(), mine.max()
    sizes = hi - lo + 1
    if int(sizes.sum()) > n // 16:
        return None
    base = np.cumsum(sizes) - sizes
    names = [b"$%d\r\n%b\r\n" % (len(f), f) for j in range(levels) for f in
             (b"%d:%d" % (j, t) for t in range(int(lo[j]), int(hi[j]) + 1))]
    mat, lens = _padded(pa.array(names, resp.BIN))
    code = base[lv] + (tile - lo[lv])
    return mat[code], lens[code]


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
