"""The Redis store's row layout: one string per (view, entity), encoded and framed for a whole Arrow slice at once.

Key: ``<prefix>:<view>:{<entity>}`` (``codec``: the entity part is the hash tag, so in cluster mode every
view's row of one entity lives in one slot). Value, little-endian::

    0   event_us i64 | created_us i64 | batch_hi i32 | batch_lo u32 | row i64     the order tuple (32 bytes)
    32  layout id (8 bytes)                                                        which Layout wrote it
    40  null bitmap, one bit per field in layout order (LSB first)
    ..  fixed-width values in layout order (a null is zeros)                       ``codec`` encodings
    ..  variable-width values in layout order, each u32 length + bytes (a null is length 0)

Why one string and not a hash of fields: a batched read of any number of views and entities is then a single MGET
(one command, not one HMGET per key), and a write of a new key is a plain ``SET ... NX`` that needs no script
(``row_writes.py``): Redis spends about a third of the time per new row that a scripted multi-field HSET + PEXPIREAT
costs (figures: bench/results/figures_in_code.md).
The order tuple leads the value so the newest-wins script compares only its first 32 bytes (read by one MGET per call)
with Lua's ``struct.unpack`` (numbers: every part fits a double exactly; the 64-bit write batch is split in two).

A ``Layout`` is the view's fields in value order (fixed-width first) with their dtypes; its id is a hash of that.
Each layout a store writes is recorded once in the store's meta hash, so a value written under an older definition
of the view (a feature added or removed since) is still decoded by name: a feature the value lacks reads as null,
and a feature whose dtype changed is an error that says to re-materialize.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skewless import dtypes
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from skewless.errors import ValidationError
from skewless.online.base import from_us

from . import codec

HEADER = 32  # the order tuple
PAYLOAD = 40  # header + layout id
_FIXED = codec.FIXED
BIN = codec.BIN


def _s(b: bytes) -> pa.Scalar:
    return pa.scalar(b, BIN)


class Layout:
    """The fields of a view in value order, with their dtypes, and the id that names this order."""

    def __init__(self, fields: list[tuple[str, dtypes.DType]]):
        fixed = [(n, d) for n, d in fields if d in _FIXED]
        var = [(n, d) for n, d in fields if d not in _FIXED]
        self.fields = fixed + var
        self.names = [n for n, _ in self.fields]
        self.dtypes = [d for _, d in self.fields]
        self.n_fixed = len(fixed)
        self.nb = (len(self.fields) + 7) // 8  # bitmap bytes
        self.fixed_width = sum(_FIXED[d][1] for _, d in fixed)
        self.json = json.dumps([[n, d.name] for n, d in self.fields], separators=(",", ":"))
        self.id = hashlib.sha1(self.json.encode()).digest()[:8]
        self.hex = self.id.hex()
        self.index = {n: i for i, n in enumerate(self.names)}
        # header event time, layout id, bitmap and the fixed values in one unpack
        self.fixed = struct.Struct(f"<q24x8s{self.nb}s" + "".join(_FIXED[d][2] for _, d in fixed))
        self.zero_bitmap = bytes(self.nb)

    @classmethod
    def of(cls, view: FeatureView) -> "Layout":
        return cls([(f.name, f.dtype) for f in view.features])

    @classmethod
    def from_json(cls, text: str) -> "Layout":
        return cls([(n, dtypes.by_name(d)) for n, d in json.loads(text)])

    def decode_all(self, value: bytes) -> tuple[int, list]:
        """(event µs, every field's value in layout order) of a value written under this layout."""
        head = self.fixed.unpack_from(value)
        ev, bitmap, vals = head[0], head[2], list(head[3:])
        off = PAYLOAD + self.nb + self.fixed_width
        for d in self.dtypes[self.n_fixed:]:
            (n,) = _U32.unpack_from(value, off)
            raw = value[off + 4:off + 4 + n]
            vals.append(raw.decode() if d is dtypes.String else raw)
            off += 4 + n
        if off != len(value):
            raise struct.error(f"{len(value) - off} bytes past the last field")
        if bitmap != self.zero_bitmap:
            bits = int.from_bytes(bitmap, "little")
            vals = [None if bits >> j & 1 else v for j, v in enumerate(vals)]
        for j, d in enumerate(self.dtypes):
            if d is dtypes.UnixTimestamp and vals[j] is not None:
                vals[j] = from_us(vals[j])
        return ev, vals


_U32 = struct.Struct("<I")


_MANY = 16  # from this many values a read decodes them in one numpy pass
_NUMPY = {dtypes.Int32: "<i4", dtypes.Int64: "<i8", dtypes.Float32: "<f4", dtypes.Float64: "<f8", dtypes.Bool: "?"}


# -- write side --------------------------------------------------------------------------------------------
def _bytes_matrix(arr: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(arr).view(np.uint8).reshape(n, -1)


def _binary(mat: np.ndarray) -> pa.Array:
    """Each row of a uint8 matrix as one binary value."""
    n, w = mat.shape
    return pa.Array.from_buffers(pa.binary(w), n, [None, pa.py_buffer(np.ascontiguousarray(mat))]).cast(BIN)


def encode_values(view: FeatureView, layout: Layout, batch: pa.RecordBatch) -> pa.Array:
    """Each row of ``batch`` as its stored value (see the module docstring)."""
    n = batch.num_rows
    for c in (EVENT_TS, CREATED_TS, WRITE_BATCH, WRITE_ROW):
        if batch.column(c).null_count:
            raise ValidationError(f"null {c} in rows to write", column=c)
    us = pa.timestamp("us", tz="UTC")
    ev = pc.cast(pc.cast(batch.column(EVENT_TS), us), pa.int64()).to_numpy(zero_copy_only=False)
    cr = pc.cast(pc.cast(batch.column(CREATED_TS), us), pa.int64()).to_numpy(zero_copy_only=False)
    wb = batch.column(WRITE_BATCH).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    wr = pc.cast(batch.column(WRITE_ROW), pa.int64()).to_numpy(zero_copy_only=False)
    head = np.empty(n, dtype=[("ev", "<i8"), ("cr", "<i8"), ("bh", "<i4"), ("bl", "<u4"), ("row", "<i8"),
                              ("lid", "V8")])
    head["ev"], head["cr"], head["bh"], head["bl"], head["row"] = ev, cr, wb >> 32, wb & 0xFFFFFFFF, wr
    head["lid"] = np.frombuffer(layout.id, "V8")[0]
    nf = len(layout.fields)
    nulls = np.zeros((n, max(nf, 1)), dtype=bool)
    fixed_parts, var_parts = [], []
    for j, (name, dt) in enumerate(layout.fields):
        col = batch.column(name)
        if col.null_count:
            nulls[:, j] = ~col.is_valid().to_numpy(zero_copy_only=False)
        if j < layout.n_fixed:
            fixed_parts.append(codec.encode_value(col, dt).fixed)
        else:
            v = col.cast(BIN).fill_null(b"")
            length = pc.binary_length(v).to_numpy(zero_copy_only=False).astype("<u4")
            var_parts += [_binary(_bytes_matrix(length, n)), v]
    bitmap = np.packbits(nulls, axis=1, bitorder="little")[:, :layout.nb]
    fixed = np.hstack([_bytes_matrix(head, n), bitmap] + fixed_parts)
    first = _binary(fixed)
    return pc.binary_join_element_wise(first, *var_parts, _s(b"")) if var_parts else first


def expire_at_ms(batch: pa.RecordBatch, keep_us: int) -> np.ndarray:
    """Event time + ``keep_us`` in ms, rounded up: the key never disappears while a read at its TTL boundary
    still sees it."""
    ev = pc.cast(pc.cast(batch.column(EVENT_TS), pa.timestamp("us", tz="UTC")), pa.int64())
    return -((-(ev.to_numpy(zero_copy_only=False) + keep_us)) // 1000)


# -- read side ---------------------------------------------------------------------------------------------
class RowPlan:
    """How to ask for and decode (view, features) under the view's current layout; values written under another
    layout are decoded by name through ``layout_of`` (the store's cached lookup of recorded layouts)."""

    def __init__(self, view: FeatureView, feats: list[str], head: bytes, layout_of: Callable[[bytes], Layout]):
        self.view = view
        self.layout = layout = Layout.of(view)
        self.signature = (layout.id, tuple(view.join_key_dtypes[k].name for k in view.join_keys), tuple(feats))
        self.head = head  # b"<prefix>:<view>:{"
        self.entity = codec.entity_py(view)
        self.key_types = self.signature[1]  # views with the same join-key dtypes encode a key tuple alike
        self._bulk = b"$%%d\r\n%b%%b}\r\n" % head.replace(b"%", b"%%")
        self._head_len = len(head) + 1
        self.feats = feats
        self.layout_of = layout_of
        self.pick = [layout.index[f] for f in feats]
        self.fast = layout.n_fixed == len(layout.fields) and not any(
            d is dtypes.UnixTimestamp for d in layout.dtypes)
        self.size = PAYLOAD + layout.nb + layout.fixed_width
        self.unpack = layout.fixed.unpack
        self.lid, self.zero = layout.id, layout.zero_bitmap
        self.identity = self.pick == list(range(len(layout.fields)))
        # many values at once: one numpy view of the joined values (fixed-width layouts without timestamps)
        self.np_dtype = None
        if self.fast:
            self.np_dtype = np.dtype([("ev", "<i8"), ("_", "V24"), ("lid", "<u8"), ("bm", "u1", (layout.nb,))]
                                     + [(f"f{j}", _NUMPY[d]) for j, d in enumerate(layout.dtypes)])
            self.lid_int = int.from_bytes(layout.id, "little")
            self.columns = [f"f{i}" for i in self.pick]
            self.blank = bytes(HEADER) + layout.id + bytes(self.size - PAYLOAD)

    def key_of(self, ent: bytes) -> bytes:
        """The key of an encoded entity (``entity(key tuple)``)."""
        return b"%b%b}" % (self.head, ent)

    def bulk_key_of(self, ent: bytes) -> bytes:
        """The key of an encoded entity as a RESP bulk string."""
        return self._bulk % (self._head_len + len(ent), ent)

    def decode(self, value: bytes | None) -> tuple[int, list] | None:
        if value is None:
            return None
        if self.fast and len(value) == self.size:
            t = self.unpack(value)
            if t[1] == self.lid and t[2] == self.zero:
                vals = t[3:]
                return t[0], list(vals) if self.identity else [vals[i] for i in self.pick]
        return self._slow(value)

    def decode_columns(self, values: list) -> tuple[list, list[list]]:
        """The event times and one list per feature of ``values`` (None where a value is None); with many values,
        one numpy pass when they all have this layout and no nulls, else value by value."""
        if self.np_dtype is not None and len(values) >= _MANY and self.columns:
            missing = [i for i, v in enumerate(values) if v is None] if None in values else ()
            if missing:  # a blank row of this layout in their place, nulled after the pass
                values = [self.blank if v is None else v for v in values]
            if set(map(len, values)) == {self.size}:
                arr = np.frombuffer(b"".join(values), self.np_dtype)
                if not ((arr["lid"] != self.lid_int).any() or arr["bm"].any()):
                    evs, cols = arr["ev"].tolist(), [arr[c].tolist() for c in self.columns]
                    for i in missing:
                        evs[i] = None
                        for c in cols:
                            c[i] = None
                    return evs, cols
            if missing:
                values = [None if v is self.blank else v for v in values]
        if len(values) == 1:  # the one-entity read
            r = self.decode(values[0])
            return ([None], [[None] for _ in self.feats]) if r is None else ([r[0]], [[x] for x in r[1]])
        rows = [self.decode(v) for v in values]
        nulls = [None] * len(self.feats)
        evs = [None if r is None else r[0] for r in rows]
        vals = [nulls if r is None else r[1] for r in rows]
        return evs, ([list(c) for c in zip(*vals)] if vals else [[] for _ in self.feats])

    def _slow(self, value: bytes) -> tuple[int, list]:
        if len(value) < PAYLOAD:
            raise ValidationError(f"the online value of view {self.view.name!r} is not a skewless row "
                                  f"({len(value)} bytes): something else wrote its key; re-materialize the view")
        lid = value[HEADER:PAYLOAD]
        layout = self.layout if lid == self.lid else self.layout_of(lid)
        try:
            ev, vals = layout.decode_all(value)
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValidationError(f"the online value of view {self.view.name!r} does not match its recorded layout: "
                                  f"re-materialize the view") from exc
        if layout is self.layout:
            return ev, [vals[i] for i in self.pick]
        out: list[Any] = []
        for f, dt in zip(self.feats, (self.layout.dtypes[i] for i in self.pick)):
            j = layout.index.get(f)
            if j is None:
                out.append(None)  # a feature added after this row was written
            elif layout.dtypes[j] is not dt:
                raise ValidationError(f"the online value of feature {f!r} is a {layout.dtypes[j]}, not a {dt} (its "
                                      f"dtype changed since it was written): re-materialize the view", column=f)
            else:
                out.append(vals[j])
        return ev, out


__all__ = ["HEADER", "Layout", "PAYLOAD", "RowPlan", "encode_values", "expire_at_ms"]
