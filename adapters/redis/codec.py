"""The Redis adapter's public codec: keys, value encodings and encoding passes, vectorized with Arrow and numpy.
Shared by the Redis store's row layout (``row_layout``: one string per (view, entity)) and by field layouts built
on it, such as Alibaba's Tair store (``skewless.adapters.alibaba.tair_exhash``), which is::

    <prefix>:<view>:{<entity>}    fields: __e  event time (µs, decimal)
                                          __o  "created_us:batch_hi:batch_lo:row" (the rest of the order tuple)
                                          <feature>  one field per non-null feature value

The entity part is the hash tag, so in cluster mode every view's row of one entity lives in one slot. It is the
join key's text (Int*, String, Bool as 1/0, timestamps as µs; Bytes raw); composite keys are length-prefixed
(``3:abc:2:12``) so no two key tuples collide.

Values are stored in binary, little-endian, because formatting a double as text costs ~160 ns in Arrow and
reading it back is a Python call per value, while fixed-width values are framed by numpy without touching Python
objects and one ``struct.unpack`` decodes a whole row on read:

    Int32 <i4, Int64 <i8, Float32 <f4 (the float32 value), Float64 <f8 (exact), Bool 1 byte, UnixTimestamp <i8 µs,
    String UTF-8 (the empty string as the single byte 0xFF, which UTF-8 never produces), Bytes 0x00 + raw (both in
    the field layout; the row layout keeps them raw behind a length).

In the field layout no stored value is empty: an empty value on the wire means null (the field is deleted, see
``tair_exhash``). The row layout has a null bitmap instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skewless import dtypes
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from skewless.errors import ValidationError
from skewless.online.base import from_us, to_us

from .resp import BIN, bulk

ENCODE_ROWS = 16_384  # rows encoded per vectorized pass (bounds memory; sending overlaps the next pass)
FIRST_ROWS = 2_048  # the first pass of a write is short: the server idles until its first call arrives

EV_FIELD, ORD_FIELD = b"__e", b"__o"
EMPTY_STRING = b"\xff"

# dtype -> (numpy dtype, width, struct code) for the fixed-width encodings
FIXED = {dtypes.Int32: ("<i4", 4, "i"), dtypes.Int64: ("<i8", 8, "q"), dtypes.Float32: ("<f4", 4, "f"),
          dtypes.Float64: ("<f8", 8, "d"), dtypes.Bool: ("u1", 1, "?"), dtypes.UnixTimestamp: ("<i8", 8, "q")}


def _s(b: bytes) -> pa.Scalar:
    return pa.scalar(b, BIN)


_NOSEP, _COLON = _s(b""), _s(b":")


def encoding_passes(rows: pa.Table):
    """``rows`` as record batches to encode one at a time: a short one first (its calls reach the server sooner),
    then ``ENCODE_ROWS`` at most each, each encoded while the server works through the calls already sent."""
    first = min(rows.num_rows, FIRST_ROWS)
    for part in (rows.slice(0, first).to_batches(), rows.slice(first).to_batches(max_chunksize=ENCODE_ROWS)):
        yield from (b for b in part if b.num_rows)


# -- entity keys -------------------------------------------------------------------------------------------
def _key_part_py(v: Any, dt: dtypes.DType) -> bytes:
    if dt is dtypes.String:
        return v.encode()
    if dt is dtypes.Bytes:
        return bytes(v)
    if dt is dtypes.Bool:
        return b"1" if v else b"0"
    if dt in (dtypes.Float32, dtypes.Float64):
        return repr(float(v)).encode()
    if dt is dtypes.UnixTimestamp:
        return b"%d" % (v if isinstance(v, int) else to_us(v))
    return b"%d" % v


def key_part(v: Any, dt: dtypes.DType) -> bytes:
    """One join-key value as it appears in a composite entity key (``entity_py``)."""
    return _key_part_py(v, dt)


def split_composite(entity: bytes) -> list[bytes] | None:
    """A composite entity key (``len:part:len:part...``) back into its parts; None when it is not one."""
    parts, i = [], 0
    while i < len(entity):
        colon = entity.find(b":", i)
        if colon < 0 or not entity[i:colon].isdigit():
            return None
        n = int(entity[i:colon])
        parts.append(entity[colon + 1:colon + 1 + n])
        i = colon + 1 + n + 1  # the part, then the ':' before the next one
    return parts


def _key_part_arrow(col: pa.Array, dt: dtypes.DType) -> pa.Array:
    if dt in (dtypes.String, dtypes.Bytes):
        return col.cast(BIN)
    if dt is dtypes.Bool:
        col = pc.cast(col, pa.uint8())
    elif dt in (dtypes.Float32, dtypes.Float64):  # Python's repr, as on the read side (rare: float join keys)
        return pa.array([None if x is None else repr(float(x)).encode() for x in col.to_pylist()], BIN)
    elif dt is dtypes.UnixTimestamp:
        col = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    return pc.cast(col, pa.string()).cast(BIN)


def entity_py(view: FeatureView) -> Callable[[tuple], bytes]:
    """Key tuple (normalised Python values) -> the entity part of the Redis key."""
    dts = [view.join_key_dtypes[k] for k in view.join_keys]
    if len(dts) == 1:
        dt = dts[0]
        if dt in (dtypes.Int32, dtypes.Int64):
            return lambda key: b"%d" % key[0]
        if dt is dtypes.String:
            return lambda key: key[0].encode()
        return lambda key: _key_part_py(key[0], dt)

    def composite(key: tuple) -> bytes:
        parts = [_key_part_py(v, dt) for v, dt in zip(key, dts)]
        return b":".join(b"%d:%b" % (len(p), p) for p in parts)
    return composite


def entity_arrow(view: FeatureView, batch: pa.RecordBatch) -> pa.Array:
    for k in view.join_keys:  # a null here would also desynchronise the RESP stream built from these arrays
        if batch.column(k).null_count:
            raise ValidationError(f"view {view.name!r}: null join key {k!r} in rows to write", column=k)
    parts = [_key_part_arrow(batch.column(k), view.join_key_dtypes[k]) for k in view.join_keys]
    if len(parts) == 1:
        return parts[0]
    pieces = []
    for p in parts:
        pieces += [pc.cast(pc.binary_length(p), pa.string()).cast(BIN), _COLON, p, _COLON]
    return pc.binary_join_element_wise(*pieces[:-1], _NOSEP)


# -- values ------------------------------------------------------------------------------------------------
@dataclass
class Column:
    """One encoded ARGV column: fixed-width values as an (n, width) byte matrix, or a binary array."""

    fixed: np.ndarray | None  # uint8 (n, width), rows of nulls are zeros
    valid: np.ndarray | None  # bool mask when the column has nulls (None: no nulls)
    var: pa.Array | None  # binary values, null = b"" (variable-width columns)

    def raw(self) -> pa.Array:
        """The values as a binary array with b"" for nulls (the cluster path's per-row arguments)."""
        if self.var is not None:
            return self.var
        n, w = self.fixed.shape
        arr = pa.Array.from_buffers(pa.binary(w), n, [None, pa.py_buffer(np.ascontiguousarray(self.fixed))]).cast(BIN)
        return arr if self.valid is None else pc.if_else(pa.array(self.valid), arr, _NOSEP)


def _numpy_of(col: pa.Array, arrow_type: pa.DataType, np_dtype: str) -> np.ndarray:
    if col.null_count:
        col = col.fill_null(pa.scalar(0, arrow_type))
    return col.to_numpy(zero_copy_only=False).astype(np_dtype, copy=False)


def encode_value(col: pa.Array, dt: dtypes.DType) -> Column:
    n = len(col)
    valid = None if col.null_count == 0 else col.is_valid().to_numpy(zero_copy_only=False)
    if dt in FIXED:
        np_dtype, width, _ = FIXED[dt]
        if dt is dtypes.Bool:
            vals = _numpy_of(pc.cast(col, pa.uint8()), pa.uint8(), np_dtype)
        elif dt is dtypes.UnixTimestamp:
            vals = _numpy_of(pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64()), pa.int64(), np_dtype)
        else:
            c = pc.cast(col, dt.arrow, safe=dt not in (dtypes.Float32,))
            vals = _numpy_of(c, dt.arrow, np_dtype)
        return Column(np.ascontiguousarray(vals).view(np.uint8).reshape(n, width), valid, None)
    v = col.cast(BIN)
    if dt is dtypes.String:
        v = pc.if_else(pc.equal(pc.binary_length(v), 0), _s(EMPTY_STRING), v)
    else:  # Bytes
        v = pc.binary_join_element_wise(_s(b"\x00"), v, _NOSEP)
    return Column(None, None, v.fill_null(b""))


def order_columns(batch: pa.RecordBatch, keep_us: int | None) -> tuple[pa.Array, pa.Array, pa.Array | None]:
    """(event µs, "created:batch_hi:batch_lo:row", expire-at ms = event + ``keep_us`` or None) as decimal text."""
    for c in (EVENT_TS, CREATED_TS, WRITE_BATCH, WRITE_ROW):
        if batch.column(c).null_count:
            raise ValidationError(f"null {c} in rows to write", column=c)
    us = pa.timestamp("us", tz="UTC")
    ev = pc.cast(pc.cast(batch.column(EVENT_TS), us), pa.int64())
    cr = pc.cast(pc.cast(batch.column(CREATED_TS), us), pa.int64())
    wb = batch.column(WRITE_BATCH).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    txt = lambda a: pc.cast(a, pa.string()).cast(BIN)  # noqa: E731
    ordr = pc.binary_join_element_wise(txt(cr), txt(pa.array(wb >> 32)), txt(pa.array(wb & 0xFFFFFFFF)),
                                       txt(pc.cast(batch.column(WRITE_ROW), pa.int64())), _COLON)
    exp = None
    if keep_us is not None:
        # ceil to the millisecond: the key never disappears while a read at its TTL boundary still sees it
        ev_np = ev.to_numpy(zero_copy_only=False)
        exp = txt(pa.array(-((-(ev_np + keep_us)) // 1000)))
    return txt(ev), ordr, exp


def sort_fixed_first(feats: list, cols: list[Column]) -> tuple[list, list[Column]]:
    """Null-free fixed-width columns first, so they form one matrix (the field order is sent with each call)."""
    order = sorted(range(len(cols)), key=lambda i: not (cols[i].fixed is not None and cols[i].valid is None))
    return [feats[i] for i in order], [cols[i] for i in order]


# -- reads -------------------------------------------------------------------------------------------------
def _dec_string(b: bytes) -> str:
    return "" if b == EMPTY_STRING else b.decode()


def _single_decoder(dt: dtypes.DType) -> Callable[[bytes], Any]:
    if dt in FIXED:
        unpack = struct.Struct("<" + FIXED[dt][2]).unpack
        if dt is dtypes.UnixTimestamp:
            return lambda b: from_us(unpack(b)[0])
        return lambda b: unpack(b)[0]
    if dt is dtypes.String:
        return _dec_string
    return lambda b: b[1:]


class ReadPlan:
    """How to ask for and decode (view, features): the packed HMGET (or ``command``: the Tair store's EXHMGET, same
    reply) minus its key, and the reply decoder."""

    def __init__(self, view: FeatureView, feats: list[str], head: bytes, command: bytes = b"HMGET"):
        by_name = {f.name: f.dtype for f in view.features}
        dts = [by_name[f] for f in feats]
        self.view = view
        # what decoding depends on: a view object with the same signature can reuse this plan
        self.signature = (tuple(d.name for d in dts), tuple(view.join_key_dtypes[k].name for k in view.join_keys))
        self.head = head  # b"<prefix>:<view>:{"
        self.entity = entity_py(view)
        self.cmd = b"*%d\r\n%b" % (len(feats) + 3, bulk(command))
        self.tail = bulk(EV_FIELD) + b"".join(bulk(f.encode()) for f in feats)
        self.fields = [EV_FIELD] + [f.encode() for f in feats]
        self.feats, self.dtypes = feats, dts
        self.decoders = [_single_decoder(d) for d in dts]
        fixed = all(d in FIXED for d in dts)
        self.row = struct.Struct("<" + "".join(FIXED[d][2] for d in dts)).unpack if fixed and dts else None
        self.ts_pos = [i for i, d in enumerate(dts) if d is dtypes.UnixTimestamp]

    def key(self, key: tuple) -> bytes:
        return b"%b%b}" % (self.head, self.entity(key))

    def command(self, key: tuple) -> bytes:
        ent = self.entity(key)
        return b"%b$%d\r\n%b%b}\r\n%b" % (self.cmd, len(self.head) + len(ent) + 1, self.head, ent, self.tail)

    def decode(self, reply: list) -> tuple[int, list] | None:
        ev = reply[0]
        if ev is None:
            return None
        vals = reply[1:]
        if self.row is not None:
            try:  # join raises on a None (a null value): then value by value
                out = list(self.row(b"".join(vals)))
            except TypeError:
                return int(ev), self._slow(vals)
            except struct.error:  # a value of another width (the dtype changed since it was written)
                return int(ev), self._slow(vals)
            for i in self.ts_pos:
                out[i] = from_us(out[i])
            return int(ev), out
        return int(ev), self._slow(vals)

    def _slow(self, vals: list) -> list:
        try:
            return [None if v is None else d(v) for d, v in zip(self.decoders, vals)]
        except (struct.error, UnicodeDecodeError) as exc:
            bad = next(i for i, (d, v) in enumerate(zip(self.decoders, vals)) if v is not None and not _decodes(d, v))
            raise ValidationError(f"the online value of feature {self.feats[bad]!r} is not a {self.dtypes[bad]} (its "
                                  f"dtype changed since it was written): re-materialize the view",
                                  column=self.feats[bad]) from exc


def _decodes(decoder, v) -> bool:
    try:
        decoder(v)
        return True
    except (struct.error, UnicodeDecodeError):
        return False


__all__ = ["BIN", "ENCODE_ROWS", "EV_FIELD", "FIRST_ROWS", "FIXED", "ORD_FIELD", "Column", "ReadPlan", "encode_value",
           "encoding_passes", "entity_arrow", "entity_py", "order_columns", "sort_fixed_first"]
