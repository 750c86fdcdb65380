"""The encoded partials of many tiles at once, from the events ``tile_sql.tile_events_sql`` returns (numpy, not
Python per value): what ``partials.state_of`` computes for one tile, vectorised over every (entity, level, tile).

The events come sorted by entity then ordering key, so the events of one (entity, level, tile) are a contiguous run
at every level: each level is one pass of ``reduceat`` over the same arrays. A tile's state is the same tuple
``state_of`` builds (so reads, cuts and the stored layout do not change), with two differences of float rounding
only: a float sum is numpy's sum instead of ``math.fsum`` (taken only where it cannot cancel: every value of the run
of one sign, the sum finite) and ``M2`` is numpy's sum of squares. Every other run — mixed signs, integers whose
sum or float image could be inexact, a fine tile that must keep its raw events — goes through ``state_of`` itself.
Columns of other dtypes than numbers and timestamps (strings...) are not handled here (``supported``).
"""

from __future__ import annotations

import marshal
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import dtypes
from . import partials, state_bytes
from .dirty import TileBatch
from .tiles import FANOUT

_FAST = (dtypes.Int32, dtypes.Int64, dtypes.Float32, dtypes.Float64, dtypes.UnixTimestamp)
_EXACT_INT = float(2 ** 52)  # integer sums below this are exact in int64 and in float64 (fsum's image), with margin


def supported(specs: partials.ColumnSpecs) -> bool:
    return all(d in _FAST for d in specs.dtypes)


def encoded_states(t: pa.Table, specs: partials.ColumnSpecs, keys: pa.Table, e: np.ndarray, lv: np.ndarray,
                   tile: np.ndarray, hop_us: int, now_us: int) -> TileBatch:
    """The encoded states of the dirty tiles ``(e, lv, tile)`` (entity numbers: rows of ``keys``) from their events
    ``t`` (``tile_sql.tile_events_sql``'s columns); a dirty tile without events is null (empty now)."""
    n = t.num_rows
    ev = t.column("__ev").to_numpy()
    ent = t.column("__e").to_numpy()
    order = [ev] + [t.column(c).to_numpy() for c in ("__cr", "__wb", "__wr")]
    new_entity = np.ones(n, dtype=bool)
    new_entity[1:] = ent[1:] != ent[:-1]
    cols = [_Column(t.column(5 + i), specs, i) for i in range(len(specs.names))]
    fine = (ev - 1) // hop_us  # definition.tile_of, vectorised
    py_events: list = []  # the events as state_of takes them, built on first need
    out_e, out_lv, out_t, out_st = [], [], [], []

    def add(level: int, es: np.ndarray, ts: np.ndarray, states: pa.Array) -> None:
        out_e.append(es)
        out_lv.append(np.full(len(es), level, np.int64))
        out_t.append(ts)
        out_st.append(states)
    for level in range(int(lv.max()) + 1 if len(lv) else 0):
        mine = lv == level
        de, dt = e[mine], tile[mine]
        tl = fine // FANOUT ** level
        edge = new_entity.copy()
        edge[1:] |= tl[1:] != tl[:-1]
        starts = np.flatnonzero(edge)
        ends = np.append(starts[1:], n)
        seg_e, seg_t = ent[starts], tl[starts]
        want = _member(seg_e, seg_t, de, dt)
        empty = ~_member(de, dt, seg_e, seg_t)  # dirty tiles without events: written empty
        add(level, de[empty], dt[empty], pa.nulls(int(empty.sum()), state_bytes.BIN))
        if not want.any():
            continue
        last = ends - 1
        aggs = [c.reduce(starts, ends) for c in cols]
        slow = np.zeros(len(starts), dtype=bool)
        for a in aggs:
            slow |= a["slow"]
        if level == 0:
            slow |= ev[last] > now_us  # keeps its raw events: state_of does that
        fast = np.flatnonzero(want & ~slow)
        add(level, seg_e[fast], seg_t[fast], _state_bytes(fast, starts, last, order, cols, aggs))
        slow_idx = np.flatnonzero(want & slow)
        encoded = []
        for i in slow_idx.tolist():
            if not py_events:
                py_events = _py_events(t, order)
            st = partials.state_of(py_events[starts[i]:ends[i]], specs, now_us if level == 0 else None)
            encoded.append(partials.encode(st))
        add(level, seg_e[slow_idx], seg_t[slow_idx], pa.array(encoded, state_bytes.BIN))
    return TileBatch.of(keys, out_e, out_lv, out_t, out_st)


def _member(a_e: np.ndarray, a_t: np.ndarray, b_e: np.ndarray, b_t: np.ndarray) -> np.ndarray:
    """Whether each ``(a_e, a_t)`` is among the ``(b_e, b_t)`` (one int64 code per pair: entity times the count of
    distinct tiles plus the tile's rank; no overflow for any realistic chunk)."""
    if not len(a_e) or not len(b_e):
        return np.zeros(len(a_e), dtype=bool)
    uniq, inv = np.unique(np.concatenate([a_t, b_t]), return_inverse=True)
    m = len(uniq)
    return np.isin(a_e * m + inv[:len(a_t)], b_e * m + inv[len(a_t):])


class _Column:
    """One aggregated column as numpy arrays: values (nulls as 0), which are non-null, NaN, clean (non-null, not
    NaN), and what its partial holds."""

    def __init__(self, arr: Any, specs: partials.ColumnSpecs, i: int):
        self.arr = arr
        self.numeric, self.ordered, self.k = specs.numeric[i], specs.ordered[i], specs.k[i]
        self.integer = specs.dtypes[i] not in (dtypes.Float32, dtypes.Float64)
        self.present = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        vals = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
        self.vals = vals.astype(np.int64 if self.integer else np.float64, copy=False)
        self.nan = np.zeros(len(vals), dtype=bool) if self.integer else self.present & np.isnan(self.vals)
        self.clean = self.present & ~self.nan
        self.py: list | None = None

    def reduce(self, starts: np.ndarray, ends: np.ndarray) -> dict:
        with np.errstate(all="ignore"):  # inf - inf, overflows: such runs are slow (state_of's) or NaN-flagged
            return self._reduce(starts, ends)

    def _reduce(self, starts: np.ndarray, ends: np.ndarray) -> dict:
        count = np.add.reduceat(self.present.astype(np.int64), starts)
        clean_n = np.add.reduceat(self.clean.astype(np.int64), starts)
        got = {"count": count, "nan": np.add.reduceat(self.nan.astype(np.int64), starts) > 0,
               "has": clean_n > 0, "slow": np.zeros(len(starts), dtype=bool)}
        if self.numeric:
            x = np.where(self.clean, self.vals, 0)
            total = np.add.reduceat(x, starts)
            if self.integer:
                got["slow"] = np.add.reduceat(np.abs(x.astype(np.float64)), starts) >= _EXACT_INT
                mean = total.astype(np.float64) / np.maximum(clean_n, 1)
            else:
                neg = np.add.reduceat((x < 0).astype(np.int64), starts)
                pos = np.add.reduceat((x > 0).astype(np.int64), starts)
                got["slow"] = ((neg > 0) & (pos > 0)) | ~np.isfinite(total)
                mean = total / np.maximum(clean_n, 1)
            dev = np.where(self.clean, self.vals - np.repeat(mean, ends - starts), 0.0)
            got["sum"], got["mean"], got["m2"] = total, mean, np.add.reduceat(dev * dev, starts)
        if self.ordered:
            if self.integer:
                hi_fill, lo_fill = np.iinfo(np.int64).max, np.iinfo(np.int64).min
            else:
                hi_fill, lo_fill = np.inf, -np.inf
            got["min"] = np.minimum.reduceat(np.where(self.clean, self.vals, hi_fill), starts)
            got["max"] = np.maximum.reduceat(np.where(self.clean, self.vals, lo_fill), starts)
        return got

    def values(self) -> list:
        if self.py is None:
            self.py = self.arr.to_pylist()
        return self.py


def _state_bytes(sel: np.ndarray, starts: np.ndarray, last: np.ndarray, order: list, cols: list,
                 aggs: list) -> pa.Array:
    """The marshal bytes of the states (``partials.state_of``'s tuple) of the runs ``sel``."""
    m = len(sel)
    if not m:
        return pa.array([], state_bytes.BIN)
    rows = state_bytes.Rows(m)
    lasts = last[sel]
    rows.tuple_head(5)  # (rows, max_ev, last_key, cols, raw)
    rows.ints(lasts - starts[sel] + 1)
    rows.ints(order[0][lasts])  # sorted by event time first: the last row's is the greatest
    rows.tuple_head(4)
    for o in order:
        rows.ints(o[lasts])
    rows.tuple_head(len(cols))
    for c, a in zip(cols, aggs):
        has = a["has"][sel]
        put = rows.ints if c.integer else rows.floats
        rows.tuple_head(9)  # (count, nan, sum, mean, m2, min, max, last, last_k)
        rows.ints(a["count"][sel])
        rows.bools(a["nan"][sel] if c.numeric else np.zeros(m, dtype=bool))
        if c.numeric:
            put(a["sum"][sel], has)
            rows.floats(a["mean"][sel], has)
            rows.floats(a["m2"][sel], has)
        else:
            rows.const(b"NNN")
        if c.ordered:
            put(a["min"][sel], has)
            put(a["max"][sel], has)
        else:
            rows.const(b"NN")
        put(c.vals[lasts], c.present[lasts])
        if c.k:  # per tile in Python (marshal version 2: no back-references, so it splices into the row)
            rows.blobs([marshal.dumps(_last_k(c, s, e, order), 2) for s, e in
                        zip(starts[sel].tolist(), lasts.tolist())])
        else:
            rows.const(b")\x00")
    rows.const(b"N")  # no raw events: fast tiles hold none after now
    return rows.build()


def _last_k(c: _Column, s: int, e: int, order: list) -> tuple:
    vals, out = c.values(), []
    for j in range(e, s - 1, -1):
        if vals[j] is not None:
            out.append(((int(order[0][j]), int(order[1][j]), int(order[2][j]), int(order[3][j])), vals[j]))
            if len(out) == c.k:
                break
    return tuple(out)


def _py_events(t: pa.Table, order: list) -> list:
    ords = [o.tolist() for o in order]
    vals = [t.column(i).to_pylist() for i in range(5, t.num_columns)]
    return list(zip(*ords, zip(*vals) if vals else repeat((), t.num_rows)))
