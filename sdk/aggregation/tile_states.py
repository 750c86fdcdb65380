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
from . import partials
from .tiles import FANOUT

_FAST = (dtypes.Int32, dtypes.Int64, dtypes.Float32, dtypes.Float64, dtypes.UnixTimestamp)
_EXACT_INT = float(2 ** 52)  # integer sums below this are exact in int64 and in float64 (fsum's image), with margin


def supported(specs: partials.ColumnSpecs) -> bool:
    return all(d in _FAST for d in specs.dtypes)


def encoded_states(t: pa.Table, nkeys: int, specs: partials.ColumnSpecs, dirty: dict, levels: int, hop_us: int,
                   now_us: int) -> list[tuple]:
    """``(entity key, level, tile, encoded state)`` of each tile in ``dirty`` (per entity, a set of ``(level,
    tile)``) holding events of ``t``; a dirty tile without events is not in it (the caller writes it empty)."""
    n = t.num_rows
    if n == 0:
        return []
    ev = t.column("__ev").to_numpy()
    order = [ev] + [t.column(c).to_numpy() for c in ("__cr", "__wb", "__wr")]
    new_entity = np.zeros(n, dtype=bool)
    new_entity[0] = True
    for i in range(nkeys):
        col = t.column(i)
        diff = pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, n - 1)), True)
        new_entity[1:] |= diff.to_numpy(zero_copy_only=False)
    cols = [_Column(t.column(nkeys + 4 + i), specs, i) for i in range(len(specs.names))]
    fine = (ev - 1) // hop_us  # definition.tile_of, vectorised
    keys = t.select(list(range(nkeys)))
    py_events: list = []  # the events as state_of takes them, built on first need
    out: list[tuple] = []
    for lv in range(levels):
        tile = fine // FANOUT ** lv
        edge = new_entity.copy()
        edge[1:] |= tile[1:] != tile[:-1]
        starts = np.flatnonzero(edge)
        ends = np.append(starts[1:], n)
        seg_keys = list(zip(*(c.to_pylist() for c in keys.take(starts).columns)))
        seg_tiles = tile[starts].tolist()
        want = np.array([(lv, tl) in dirty.get(k, ()) for k, tl in zip(seg_keys, seg_tiles)], dtype=bool)
        if not want.any():
            continue
        last = ends - 1
        aggs = [c.reduce(starts, ends) for c in cols]
        slow = np.zeros(len(starts), dtype=bool)
        for a in aggs:
            slow |= a["slow"]
        if lv == 0:
            slow |= ev[last] > now_us  # keeps its raw events: state_of does that
        fast = np.flatnonzero(want & ~slow)
        states = _states(fast, starts, last, order, cols, aggs)
        idx = fast.tolist()
        out += zip(map(seg_keys.__getitem__, idx), repeat(lv), map(seg_tiles.__getitem__, idx),
                   map(marshal.dumps, states, repeat(4)))
        for i in np.flatnonzero(want & slow).tolist():
            if not py_events:
                py_events = _py_events(t, nkeys, order)
            st = partials.state_of(py_events[starts[i]:ends[i]], specs, now_us if lv == 0 else None)
            out.append((seg_keys[i], lv, seg_tiles[i], partials.encode(st)))
    return out


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


def _opt(values: np.ndarray, has: list) -> list:
    return [v if h else None for v, h in zip(values.tolist(), has)]


def _states(sel: np.ndarray, starts: np.ndarray, last: np.ndarray, order: list, cols: list, aggs: list) -> list:
    """The state tuples (``partials.state_of``'s layout) of the runs ``sel``."""
    m = len(sel)
    if not m:
        return []
    lasts = last[sel]
    rows = (lasts - starts[sel] + 1).tolist()
    last_key = list(zip(*(o[lasts].tolist() for o in order)))
    per_col = []
    for c, a in zip(cols, aggs):
        has = a["has"][sel].tolist()
        none = [None] * m
        total = mean = m2 = lo = hi = none
        if c.numeric:
            total, mean, m2 = (_opt(a[f][sel], has) for f in ("sum", "mean", "m2"))
        if c.ordered:
            lo, hi = _opt(a["min"][sel], has), _opt(a["max"][sel], has)
        newest = c.arr.take(pa.array(lasts)).to_pylist()
        last_k = [()] * m if not c.k else [_last_k(c, s, e, order) for s, e in
                                           zip(starts[sel].tolist(), lasts.tolist())]
        nan = a["nan"][sel].tolist() if c.numeric else [False] * m
        per_col.append(zip(a["count"][sel].tolist(), nan, total, mean, m2, lo, hi, newest, last_k))
    col_states = list(zip(*per_col)) if per_col else [()] * m
    return list(zip(rows, (o for o in order[0][lasts].tolist()), last_key, col_states, repeat(None)))


def _last_k(c: _Column, s: int, e: int, order: list) -> tuple:
    vals, out = c.values(), []
    for j in range(e, s - 1, -1):
        if vals[j] is not None:
            out.append(((int(order[0][j]), int(order[1][j]), int(order[2][j]), int(order[3][j])), vals[j]))
            if len(out) == c.k:
                break
    return tuple(out)


def _py_events(t: pa.Table, nkeys: int, order: list) -> list:
    ords = [o.tolist() for o in order]
    vals = [t.column(i).to_pylist() for i in range(nkeys + 4, t.num_columns)]
    return list(zip(*ords, zip(*vals) if vals else repeat((), t.num_rows)))
