"""A small write's one script call, framed without Arrow compute: the bytes ``row_writes`` sends for a write of at
most ``write_batch_rows`` rows (one ``EVALSHA`` of the newest-wins script), made from the rows' buffers by numpy and
a little Python.

Why: the vectorized framing (``codec``, ``resp``, ``row_layout.encode_values``) is ~30 Arrow kernel calls whatever
the row count. For a 100-row push (the feature server's, every 10 ms) their dispatch, with the caches cold between
pushes, was ~0.35 ms of the push's CPU against ~0.05 ms here (bench/feature_server_bench.py freshness). It covers
the common push: one Int32/Int64/String/Bytes join key, no null anywhere, order columns and features already of
their stored Arrow types (what ``ingest.prepare`` makes). Anything else, or a row that would make an error, returns
None and goes the vectorized way, which decides it. tests/adapters/redis/test_redis_row_small.py checks the bytes
are the vectorized path's, byte for byte.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from skewless import dtypes
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView

from . import codec, resp
from . import row_layout as rows_

_US = pa.timestamp("us", tz="UTC")
_KEYS = (dtypes.Int32, dtypes.Int64, dtypes.String, dtypes.Bytes)
_VAR = {dtypes.String: (pa.string(), pa.large_string()), dtypes.Bytes: (pa.binary(), pa.large_binary())}
_ORDER = ((EVENT_TS, _US), (CREATED_TS, _US), (WRITE_BATCH, pa.int64()), (WRITE_ROW, pa.int64()))


def _array(rows: pa.Table, name: str, types) -> pa.Array | None:
    """The column as one Arrow array when it has no null and one of ``types`` (else None: the vectorized path)."""
    col = rows.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return arr if arr.null_count == 0 and arr.type in types else None


def _strings(arr: pa.Array) -> list:
    """The values of a string or binary array as memoryviews of its data (no copy, no decode)."""
    bufs = arr.buffers()
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    offs = np.frombuffer(bufs[1], np.int64 if wide else np.int32, len(arr) + 1, arr.offset).tolist()
    data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
    return [data[offs[i]:offs[i + 1]] for i in range(len(arr))]


def script_call(view: FeatureView, layout: rows_.Layout, rows: pa.Table, head: bytes, keep_us: int | None,
                sha: bytes) -> bytes | None:
    """The ``EVALSHA`` call writing ``rows`` (at most one call's rows), as ``row_writes._send`` frames it; None when
    the rows are not this common case."""
    n = rows.num_rows
    if not n or len(view.join_keys) != 1 or view.join_key_dtypes[view.join_keys[0]] not in _KEYS:
        return None
    kdt = view.join_key_dtypes[view.join_keys[0]]
    key = _array(rows, view.join_keys[0], (kdt.arrow,) if kdt not in _VAR else _VAR[kdt])
    order = [_array(rows, name, (t,)) for name, t in _ORDER]
    feats = [_array(rows, name, _VAR.get(dt, (dt.arrow,))) for name, dt in layout.fields]
    if key is None or None in order or None in feats:
        return None
    # The value: order tuple, layout id, null bitmap (no nulls: zeros), fixed-width values (row_layout's module
    # docstring), one numpy record per row; a fixed-width layout also frames it as a RESP bulk string there.
    width = rows_.PAYLOAD + layout.nb + layout.fixed_width
    var = layout.n_fixed < len(layout.fields)
    fields = [] if var else [("bulk", f"S{len(b'$%d' % width) + 2}")]
    fields += [("ev", "<i8"), ("cr", "<i8"), ("bh", "<i4"), ("bl", "<u4"), ("row", "<i8"), ("lid", "V8")]
    fields += [("bm", f"V{layout.nb}")] if layout.nb else []
    fields += [(f"f{j}", codec.FIXED[dt][0]) for j, dt in enumerate(layout.dtypes[:layout.n_fixed])]
    fields += [] if var else [("crlf", "S2")]
    rec = np.zeros(n, np.dtype(fields))
    ev = order[0].to_numpy().view("<i8")
    wb = order[2].to_numpy()
    rec["ev"], rec["cr"], rec["bh"], rec["bl"] = ev, order[1].to_numpy().view("<i8"), wb >> 32, wb & 0xFFFFFFFF
    rec["row"], rec["lid"] = order[3].to_numpy(), np.frombuffer(layout.id, "V8")[0]
    for j in range(layout.n_fixed):
        a = feats[j]
        if pa.types.is_boolean(a.type):  # bit-packed in Arrow: numpy's copy holds 0/1 bytes, as encode_value's
            rec[f"f{j}"] = a.to_numpy(zero_copy_only=False)
        else:
            rec[f"f{j}"] = a.to_numpy().view(codec.FIXED[layout.dtypes[j]][0])
    if var:  # each value framed here: its length is the fixed part's plus each string's (u32 length + bytes)
        fixed = rec.tobytes()
        cols = [_strings(a) for a in feats[layout.n_fixed:]]
        values = []
        for i in range(n):
            v = [fixed[i * width:(i + 1) * width]]
            for c in cols:
                v += [len(c[i]).to_bytes(4, "little"), c[i]]
            v = b"".join(v)
            values.append(b"$%d\r\n%b\r\n" % (len(v), v))
    else:
        rec["bulk"], rec["crlf"] = b"$%d\r\n" % width, b"\r\n"
        framed = rec.tobytes()
        step = len(framed) // n
        values = [framed] if keep_us is None else [framed[i * step:(i + 1) * step] for i in range(n)]
    if keep_us is not None:  # each value followed by its expire time (ms, rounded up: row_layout.expire_at_ms)
        exp = (-((-(ev + keep_us)) // 1000)).tolist()
        values = [p for i in range(n) for p in (values[i], resp.bulk(b"%d" % exp[i]))]
    if kdt in _VAR:
        ents = [bytes(e) for e in _strings(key)]
    else:
        ents = [b"%d" % e for e in key.to_numpy().tolist()]
    size = len(head) + 1
    keys = [b"$%d\r\n%b%b}\r\n" % (size + len(e), head, e) for e in ents]
    stride = 1 if keep_us is None else 2
    call = resp.evalsha_head(sha) % (4 + n + n * stride)
    return b"".join([call, resp.bulk(b"%d" % n), *keys, b"$1\r\n%d\r\n" % (keep_us is not None), *values])


__all__ = ["script_call"]
