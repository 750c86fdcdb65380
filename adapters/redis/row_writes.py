"""The row layout's writes, newest wins on the server, in two pipelined passes (one script call for a write of at
most ``write_batch_rows`` rows).

Every row is first sent as ``SET key value NX [PXAT t]``, which stores it only when the key does not exist yet (then
nothing older or newer can be there); the rows whose key existed then go through one Lua script call per
``write_batch_rows`` rows (``scripts.ROW_UPSERT``), which replaces a stored row only when the new (event, created,
batch, row) is strictly greater. Rows are encoded for a whole Arrow slice at once (``codec.encoding_passes``) and
sent while the next slice is encoded. Any order of the commands is right: each is an insert-if-absent or a
compare-and-set. Both functions return the error replies (the store raises them, loading the script on NOSCRIPT).
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skewless.definitions import FeatureView

from . import codec, resp
from . import row_layout as rows_
from .row_small import script_call
from .wire import Wire

_SEND_ROWS = 4_096  # SET commands per socket write
_SEND_BYTES = 1 << 18  # script calls joined into one socket write up to this size


def _encoded(view, layout, rows, head, keep_us):
    """Per encoding pass: (framed keys, framed values, framed expire times or None)."""
    for batch in codec.encoding_passes(rows):
        keys = resp.framed_keys(head, codec.entity_arrow(view, batch))
        values = resp.bulk_strings(rows_.encode_values(view, layout, batch))
        exp = None if keep_us is None else resp.bulk_numbers(rows_.expire_at_ms(batch, keep_us))
        yield keys, values, exp


def write_standalone(wire: Wire, sha: bytes, batch_rows: int, view: FeatureView, layout: rows_.Layout,
                     rows: pa.Table, head: bytes, keep_us: int | None) -> list:
    """A new key takes its row by ``SET key value NX [PXAT t]``, with no script (the common case: a first
    materialization); a row whose key exists goes through the newest-wins script, ``batch_rows`` per call. A write
    of at most ``batch_rows`` rows (a push, a small micro-batch) is one script call: one round trip.
    The first short pass is sent as SET NX and its replies read: when most of its keys existed (a
    re-materialization), the rest goes straight to the script; otherwise the rest is sent as SET NX too, and the
    rows it refused go to the script at the end."""
    passes = _encoded(view, layout, rows, head, keep_us)
    if rows.num_rows <= batch_rows:
        # One script call holds them all: one round trip whether the keys exist or not, where SET NX then the
        # script is two when they do (a push updating entities already online: the freshness bench's p99 was
        # the second round trip waiting for Redis' turn on a loaded host). The common such write is framed
        # without Arrow kernels (row_small: the same bytes).
        call = script_call(view, layout, rows, head, keep_us, sha)
        if call is not None:
            return [r for r in wire.exchange(lambda conn: _send_joined(conn, [call]) or 1)
                    if isinstance(r, Exception)]
        return _send(wire, sha, batch_rows, passes, None, nx=False)[0]
    errors, refused = _send(wire, sha, batch_rows, passes, 1, nx=True)
    existing = sum(len(r[0]) for r in refused)
    first_rows = min(rows.num_rows, codec.FIRST_ROWS)
    more, later = _send(wire, sha, batch_rows, passes, None, nx=existing * 2 <= first_rows)
    rest = _send(wire, sha, batch_rows, iter(refused + later), None, nx=False)[0] if refused or later else []
    return errors + more + rest


def _send_joined(conn, pieces: list) -> None:
    """``pieces`` in one socket write: redis-py writes each piece of a packed command with a ``sendall`` of its
    own, and on a loaded host every loopback write may hand the core to Redis (a 100-row push's script call was
    4 writes taking ~3 ms under load 11, against ~1 ms of Redis' reply)."""
    conn.send_packed_command([b"".join(pieces)], check_health=False)


def _send(wire: Wire, sha: bytes, batch_rows: int, parts, limit: int | None, *, nx: bool) -> tuple[list, list]:
    """Send up to ``limit`` of ``parts`` ((framed keys, values, expire times)) in one round trip, as SET NX
    (``nx``) or as script calls. Returns (error replies, the parts' rows that SET NX refused)."""
    sent: list = []
    head_call = resp.evalsha_head(sha) + b"%b"

    def send(conn) -> int:
        replies = 0
        for keys, values, exp in itertools.islice(parts, limit):
            n = len(keys)
            if nx:
                cmds = resp.Slicer(resp.set_nx_commands(keys, values, exp))
                for i in range(0, n, _SEND_ROWS):
                    conn.send_packed_command([cmds(i, min(n, i + _SEND_ROWS))], check_health=False)
                replies += n
            else:
                argv = resp.Slicer(values if exp is None else
                                   pc.binary_join_element_wise(values, exp, pa.scalar(b"", resp.BIN)))
                ks, stride, flag = resp.Slicer(keys), 1 if exp is None else 2, b"$1\r\n%d\r\n" % (exp is not None)
                out, size = [], 0
                for i in range(0, n, batch_rows):
                    m = min(n, i + batch_rows) - i
                    out += [head_call % (4 + m + m * stride, resp.bulk(b"%d" % m)), ks(i, i + m), flag,
                            argv(i, i + m)]
                    size += len(out[-1]) + len(out[-3])
                    replies += 1
                    if size >= _SEND_BYTES:
                        _send_joined(conn, out)
                        out, size = [], 0
                if out:
                    _send_joined(conn, out)
            sent.append((keys, values, exp))
        return replies
    replies = wire.exchange(send)
    errors = [r for r in replies if isinstance(r, Exception)]
    if not nx or errors:
        return errors, []
    refused, pos = [], 0
    for keys, values, exp in sent:
        mine = replies[pos:pos + len(keys)]
        pos += len(keys)
        if None in mine:
            idx = pa.array(np.flatnonzero(np.fromiter((r is None for r in mine), bool, len(mine))))
            refused.append((keys.take(idx), values.take(idx), None if exp is None else exp.take(idx)))
    return errors, refused


def write_cluster(client, sha: bytes, batch_rows: int, view: FeatureView, layout: rows_.Layout, rows: pa.Table,
                  head: bytes, keep_us: int | None) -> list:
    """The same two passes through redis-py's cluster pipeline (one round trip per node). A script may only
    touch keys of one slot: the second pass groups rows by slot, one call per group."""
    from redis.crc import key_slot

    errors = []
    for batch in rows.to_batches(max_chunksize=codec.ENCODE_ROWS):
        keys = [head + e + b"}" for e in codec.entity_arrow(view, batch).to_pylist()]
        values = rows_.encode_values(view, layout, batch).to_pylist()
        exp = None if keep_us is None else rows_.expire_at_ms(batch, keep_us).tolist()
        pipe = client.pipeline(transaction=False)
        for i, k in enumerate(keys):
            pipe.execute_command("SET", k, values[i], "NX", *(() if exp is None else ("PXAT", exp[i])))
        replies = pipe.execute(raise_on_error=False)
        errors += [r for r in replies if isinstance(r, Exception)]
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(replies):
            if r is None:
                groups.setdefault(key_slot(keys[i]), []).append(i)
        if not groups:
            continue
        pipe = client.pipeline(transaction=False)
        for idx in groups.values():
            for start in range(0, len(idx), batch_rows):
                part = idx[start:start + batch_rows]
                argv = [b"0" if exp is None else b"1"]
                for i in part:
                    argv += [values[i]] if exp is None else [values[i], exp[i]]
                pipe.execute_command("EVALSHA", sha, len(part), *[keys[i] for i in part], *argv)
        errors += [r for r in pipe.execute(raise_on_error=False) if isinstance(r, Exception)]
    return errors


__all__ = ["write_cluster", "write_standalone"]
