"""The Tair store's TairHash path: one exhash per (view, entity), one field per value, per-field expire times.

Layout (the Redis adapter's public codec, ``skewless.adapters.redis.codec``): ``__e`` event time (µs, decimal), ``__o`` "created_us:batch_hi:batch_lo:row",
one field per non-null feature. Writes: one newest-wins Lua script call per ``write_batch_rows`` rows, framed for a
whole Arrow slice at once and pipelined; the script reads ``EXHMGET key __e __o``, compares the order tuple as
numbers (Lua's string ``<`` is the server locale's strcoll) and, when the row wins, sets each field with ``EXHSET ...
PXAT`` and deletes the null ones. Reads: one ``EXHMGET`` of the event time and the features per (view, entity), all
written at once: one round trip.

Lua numbers are doubles, exact below 2^53: event and created µs and the write row are; the write batch (ns since the
epoch, ~2^60) is sent split into its high and low 32 bits.
"""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from skewless.adapters.redis import codec, resp
from skewless.definitions import FeatureView
from skewless.online.base import Key

_NEWER = """
local function parse(o)
  local a, b, c, d = string.match(o, '^(%-?%d+):(%-?%d+):(%-?%d+):(%-?%d+)$')
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d)
end
-- (created, batch_hi, batch_lo, row) of the new row strictly greater than the stored one's?
local function newer(o, stored)
  if not stored then return true end
  local a1, a2, a3, a4 = parse(o)
  local b1, b2, b3, b4 = parse(stored)
  if not b1 then return true end
  if a1 ~= b1 then return a1 > b1 end
  if a2 ~= b2 then return a2 > b2 end
  if a3 ~= b3 then return a3 > b3 end
  return a4 > b4
end
"""

# ARGV: has_exp ('1' | '0'), the nf field names, then per row: ev, ord, [expire_at_ms], nf values ('' = null)
_HEAD = """
local nf = {nf}
local has_exp = ARGV[1] == '1'
local off = has_exp and 3 or 2
local stride = nf + off
local a = 2 + nf
local written = 0
local F = {{}}
for j = 1, nf do F[j] = ARGV[j + 1] end
local function put(k, f, v, exp)
  if exp then redis.call('EXHSET', k, f, v, 'PXAT', exp) else redis.call('EXHSET', k, f, v) end
end
"""

_ROW = """
for i = 1, #KEYS do
  local k, ev, o = KEYS[i], ARGV[a], ARGV[a + 1]
  local cur = redis.call('EXHMGET', k, '__e', '__o')
  local win = true
  if cur[1] then
    local ce, ne = tonumber(cur[1]), tonumber(ev)
    if ne ~= ce then win = ne > ce else win = newer(o, cur[2]) end
  end
  if win then
    local exp = nil
    if has_exp then exp = string.format('%.0f', math.max(tonumber(ARGV[a + 2]) + 1, 1)) end
    put(k, '__e', ev, exp)
    put(k, '__o', o, exp)
    local nulls = {}
    for j = 1, nf do
      local v = ARGV[a + off - 1 + j]
      if v == '' then nulls[#nulls + 1] = F[j] else put(k, F[j], v, exp) end
    end
    if #nulls > 0 then redis.call('EXHDEL', k, unpack(nulls)) end
    written = written + 1
  end
  a = a + stride
end
return written
"""
# A row's fields expire at the codec's expire time (ms, rounded up) + 1: TairHash drops a field once now >= its time
# (Redis a key once now > its time), and the read-time TTL includes its boundary. At least 1: TairHash refuses a
# negative PXAT (an event before 1970 with a short TTL), and 1 already means "expired".


def upsert_script(nf: int) -> str:
    """The TairHash newest-wins upsert for views with ``nf`` features."""
    return f"-- skewless newest-wins upsert into TairHash, {nf} features\n" + _NEWER + _HEAD.format(nf=nf) + _ROW


class ExHashPath:
    """The write and read of the TairHash layout, mixed into the Tair store. It uses the Redis store's public hooks
    only (``RedisOnlineStore``'s docstring): ``exchange``, ``call``, ``cached_plan``, ``unavailable``, ``client``,
    ``cluster``, ``write_batch_rows``."""

    def _exh_encode(self, view: FeatureView, batch: pa.RecordBatch, keep_us: int | None):
        fields = view.features
        feats = [f.name for f in fields]
        cols = [codec.encode_value(batch.column(f.name), f.dtype) for f in fields]
        feats, cols = codec.sort_fixed_first(feats, cols)
        ev, ordr, exp = codec.order_columns(batch, keep_us)
        header = [b"1" if exp is not None else b"0"] + [f.encode() for f in feats]
        return codec.entity_arrow(view, batch), ev, ordr, exp, cols, header

    def _exh_write_standalone(self, view, rows, head, sha, keep_us) -> list:
        calls_head = resp.evalsha_head(sha)

        def send(conn) -> int:
            calls = 0
            for batch in codec.encoding_passes(rows):
                entity, ev, ordr, exp, cols, header = self._exh_encode(view, batch, keep_us)
                stride = 2 + (exp is not None) + len(cols)
                keys = resp.Slicer(resp.framed_keys(head, entity))
                argv = resp.Slicer(resp.framed_rows(ev, ordr, exp, cols))
                argv_head = b"".join(resp.bulk(h) for h in header)
                n = batch.num_rows
                for i in range(0, n, self.write_batch_rows):
                    m = min(n, i + self.write_batch_rows) - i
                    total = 3 + m + len(header) + m * stride
                    conn.send_packed_command([calls_head % total + resp.bulk(b"%d" % m), keys(i, i + m), argv_head,
                                              argv(i, i + m)], check_health=False)
                    calls += 1
            return calls
        return [r for r in self.exchange(send) if isinstance(r, Exception)]

    def _exh_write_cluster(self, view, rows, head, sha, keep_us) -> list:
        """A script may only touch keys of one slot in a cluster: rows are grouped by slot, one call per group,
        all sent through one cluster pipeline (one round trip per node)."""
        from redis.crc import key_slot

        client = self.client
        errors = []
        for batch in rows.to_batches(max_chunksize=codec.ENCODE_ROWS):
            entity, ev, ordr, exp, cols, header = self._exh_encode(view, batch, keep_us)
            keys = [head + e + b"}" for e in entity.to_pylist()]
            per_row = [c.to_pylist() for c in [ev, ordr] + ([exp] if exp is not None else [])]
            per_row += [c.raw().to_pylist() for c in cols]
            groups: dict[int, list[int]] = {}
            for i, k in enumerate(keys):
                groups.setdefault(key_slot(k), []).append(i)
            pipe = client.pipeline(transaction=False)
            for idx in groups.values():
                for start in range(0, len(idx), self.write_batch_rows):
                    part = idx[start:start + self.write_batch_rows]
                    argv = header + [col[i] for i in part for col in per_row]
                    pipe.execute_command("EVALSHA", sha, len(part), *[keys[i] for i in part], *argv)
            errors += [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
        return errors

    def _exh_plan(self, view: FeatureView, feats: list[str]) -> codec.ReadPlan:
        return self.cached_plan(self._exh_plans, view, feats, lambda head: codec.ReadPlan(view, feats, head,
                                                                                            b"EXHMGET"))

    def _exh_read_raw(self, requests: Sequence[tuple[FeatureView, list[str], list[Key]]]
                      ) -> list[list[tuple[int, list[Any]] | None]]:
        plans, spans, cmds = [], [], []
        for view, feats, keys in requests:
            plan = self._exh_plan(view, feats)
            plans.append(plan)
            nulls = [i for i, k in enumerate(keys) if None in k]  # a null key is never stored: not asked for
            live = [k for k in keys if None not in k] if nulls else keys
            start = len(cmds)
            cmds.extend(map(plan.command, live) if not self.cluster else [(plan.key(k), plan.fields) for k in live])
            spans.append((start, len(cmds), nulls))
        replies = self.call("read", lambda: self._exh_replies(cmds)) if cmds else []
        out = []
        for plan, (a, b, nulls) in zip(plans, spans):
            part = replies[a:b]
            try:
                got = list(map(plan.decode, part))
            except TypeError:  # an error reply (an exception object) in place of a list: no per-reply check
                err = next((r for r in part if isinstance(r, Exception)), None)
                if err is None:
                    raise
                raise self.unavailable("read", err) from err
            for i in nulls:  # ascending: each insert lands at its final position
                got.insert(i, None)
            out.append(got)
        return out

    def _exh_replies(self, cmds: list) -> list:
        if not self.cluster:
            def send(conn) -> int:
                conn.send_packed_command([b"".join(cmds)], check_health=False)
                return len(cmds)
            return self.exchange(send)
        pipe = self.client.pipeline(transaction=False)
        for key, fields in cmds:
            pipe.execute_command("EXHMGET", key, *fields)
        return pipe.execute(raise_on_error=False)


__all__ = ["ExHashPath", "upsert_script"]
