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
    """The encoded states of the dirty tiles ``(e, lv, tile)`` (entity numbers: rows of ``keys``; sorted) from their
    events ``t`` (``tile_sql.tile_events_sql``'s columns); a dirty tile without events is null (empty now). The fast
    tiles of every level form one part whose bytes are left unpacked (``TileBatch``); the others (empty, through
    ``state_of``) another."""
    n = t.num_rows
    ev = t.column("__ev").to_numpy()
    ent = t.column("__e").to_numpy()
    order = [ev] + [t.column(c).to_numpy() for c in ("__cr", "__wb", "__wr")]
    new_entity = np.ones(n, dtype=bool)
    new_entity[1:] = ent[1:] != ent[:-1]
    cols = [_Column(t.column(5 + i), specs, i) for i in range(len(specs.names))]
    fine = (ev - 1) // hop_us  # definition.tile_of, vectorised
    py_events: list = []  # the events as state_of takes them, built on first need
    fast: list[dict] = []  # per level, the fields of its fast tiles
    rest_e, rest_lv, rest_t, rest_st = [], [], [], []  # empty tiles and those state_of computes

    def add(level: int, es: np.ndarray, ts: np.ndarray, states: pa.Array) -> None:
        rest_e.append(es)
        rest_lv.append(np.full(len(es), level, np.int64))
        rest_t.append(ts)
        rest_st.append(states)
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
        sel = np.flatnonzero(want & ~slow)
        if len(sel):
            fast.append(_fields(level, sel, seg_e, seg_t, starts, last, order, cols, aggs))
        slow_idx = np.flatnonzero(want & slow)
        encoded = []
        for i in slow_idx.tolist():
            if not py_events:
                py_events = _py_events(t, order)
            st = partials.state_of(py_events[starts[i]:ends[i]], specs, now_us if level == 0 else None)
            encoded.append(partials.encode(st))
        add(level, seg_e[slow_idx], seg_t[slow_idx], pa.array(encoded, state_bytes.BIN))
    parts = []
    if fast:
        f = {k: np.concatenate([x[k] for x in fast]) for k in fast[0]}
        by_e = np.argsort(f["e"], kind="stable")  # levels in turn, each sorted by (e, tile): now by (e, lv, tile)
        f = {k: v[by_e] for k, v in f.items()}
        parts.append((f["e"], f["lv"], f["tile"], _state_rows(f, cols)))
    rest = TileBatch.of(keys, rest_e, rest_lv, rest_t, rest_st)
    return TileBatch(keys, parts + rest.parts)


def _member(a_e: np.ndarray, a_t: np.ndarray, b_e: np.ndarray, b_t: np.ndarray) -> np.ndarray:
    """Whether each ``(a_e, a_t)`` is among the ``(b_e, b_t)``. Both come sorted by (entity, tile) (the dirty tiles of
    a level, the runs of its events): one int64 code per pair (entity times the span of tiles plus the tile's offset)
    is then sorted too, and a binary search finds them; else (a span too wide for the code) ranks by ``np.unique``."""
    if not len(a_e) or not len(b_e):
        return np.zeros(len(a_e), dtype=bool)
    lo = min(int(a_t.min()), int(b_t.min()))
    span = max(int(a_t.max()), int(b_t.max())) - lo + 1
    if (max(int(a_e.max()), int(b_e.max())) + 1) * span < 2 ** 62 and min(int(a_e.min()), int(b_e.min())) >= 0:
        a, b = a_e * span + (a_t - lo), b_e * span + (b_t - lo)
        if len(b) < 2 or bool((b[1:] > b[:-1]).all()):
            at = np.searchsorted(b, a)
            return b[np.minimum(at, len(b) - 1)] == a
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
        self._events: dict | None = None

    def reduce(self, starts: np.ndarray, ends: np.ndarray) -> dict:
        with np.errstate(all="ignore"):  # inf - inf, overflows: such runs are slow (state_of's) or NaN-flagged
            return self._reduce(starts, ends)

    def _per_event(self) -> dict:
        """What every level reduces, per event: computed once for all levels."""
        if self._events is None:
            e = self._events = {"present": self.present.astype(np.int64), "clean": self.clean.astype(np.int64),
                                "nan": self.nan.astype(np.int64)}
            # no null, no NaN (the usual column): counts are the runs' lengths, no reduction needed
            e["all_present"], e["all_clean"] = bool(self.present.all()), bool(self.clean.all())
            if self.numeric:
                x = e["x"] = np.where(self.clean, self.vals, 0)
                if self.integer:
                    e["abs"] = np.abs(x.astype(np.float64))
                else:
                    e["neg"], e["pos"] = (x < 0).astype(np.int64), (x > 0).astype(np.int64)
                    # a column of one sign has no run of both: the two reductions say nothing then
                    e["signs"] = bool(e["neg"].any()) and bool(e["pos"].any())
            if self.ordered:
                if self.integer:
                    hi_fill, lo_fill = np.iinfo(np.int64).max, np.iinfo(np.int64).min
                else:
                    hi_fill, lo_fill = np.inf, -np.inf
                e["lo"] = np.where(self.clean, self.vals, hi_fill)
                e["hi"] = np.where(self.clean, self.vals, lo_fill)
        return self._events

    def _reduce(self, starts: np.ndarray, ends: np.ndarray) -> dict:
        ev = self._per_event()
        count = ends - starts if ev["all_present"] else np.add.reduceat(ev["present"], starts)
        clean_n = count if ev["all_clean"] else np.add.reduceat(ev["clean"], starts)
        nan = np.zeros(len(starts), dtype=bool) if ev["all_clean"] else np.add.reduceat(ev["nan"], starts) > 0
        got = {"count": count, "nan": nan, "has": clean_n > 0, "slow": np.zeros(len(starts), dtype=bool)}
        if self.numeric:
            total = np.add.reduceat(ev["x"], starts)
            if self.integer:
                got["slow"] = np.add.reduceat(ev["abs"], starts) >= _EXACT_INT
                mean = total.astype(np.float64) / np.maximum(clean_n, 1)
            else:
                got["slow"] = ~np.isfinite(total)
                if ev["signs"]:
                    got["slow"] |= (np.add.reduceat(ev["neg"], starts) > 0) & (np.add.reduceat(ev["pos"], starts) > 0)
                mean = total / np.maximum(clean_n, 1)
            dev = self.vals - np.repeat(mean, ends - starts)
            if not ev["all_clean"]:
                dev = np.where(self.clean, dev, 0.0)
            got["sum"], got["mean"], got["m2"] = total, mean, np.add.reduceat(dev * dev, starts)
        if self.ordered:
            got["min"] = np.minimum.reduceat(ev["lo"], starts)
            got["max"] = np.maximum.reduceat(ev["hi"], starts)
        return got

    def values(self) -> list:
        if self.py is None:
            self.py = self.arr.to_pylist()
        return self.py


def _fields(level: int, sel: np.ndarray, seg_e: np.ndarray, seg_t: np.ndarray, starts: np.ndarray,
            last: np.ndarray, order: list, cols: list, aggs: list) -> dict:
    """What the states of the runs ``sel`` of one level hold, as arrays (one value per tile)."""
    lasts = last[sel]
    f = {"e": seg_e[sel], "lv": np.full(len(sel), level, np.int64), "tile": seg_t[sel],
         "rows": lasts - starts[sel] + 1}
    for j, o in enumerate(order):
        f[f"key{j}"] = o[lasts]  # sorted by event time first: the last row's is the greatest (max_ev)
    for i, (c, a) in enumerate(zip(cols, aggs)):
        for name in ("count", "nan", "has", "sum", "mean", "m2", "min", "max"):
            if name in a:
                f[f"{i}.{name}"] = a[name][sel]
        f[f"{i}.last"], f[f"{i}.lastp"] = c.vals[lasts], c.present[lasts]
        if c.k:  # per tile in Python (marshal version 2: no back-references, so it splices into the row)
            blobs = np.empty(len(sel), object)
            blobs[:] = [marshal.dumps(_last_k(c, s_, e_, order), 2) for s_, e_ in
                        zip(starts[sel].tolist(), lasts.tolist())]
            f[f"{i}.last_k"] = blobs
    return f


def _state_rows(f: dict, cols: list) -> state_bytes.Rows:
    """The marshal bytes (``partials.state_of``'s tuple) of the tiles whose fields are ``f``, as unpacked rows."""
    m = len(f["e"])
    rows = state_bytes.Rows(m)
    rows.tuple_head(5)  # (rows, max_ev, last_key, cols, raw)
    rows.ints(f["rows"])
    rows.ints(f["key0"])
    max_ev = rows.pieces[-1]
    rows.tuple_head(4)
    rows.pieces.append(max_ev)  # the newest row's event time again: the same bytes
    for j in range(1, 4):
        rows.ints(f[f"key{j}"])
    rows.tuple_head(len(cols))
    for i, c in enumerate(cols):
        has = f[f"{i}.has"]
        put = rows.ints if c.integer else rows.floats
        rows.tuple_head(9)  # (count, nan, sum, mean, m2, min, max, last, last_k)
        rows.ints(f[f"{i}.count"])
        rows.bools(f[f"{i}.nan"] if c.numeric else np.zeros(m, dtype=bool))
        if c.numeric:
            put(f[f"{i}.sum"], has)
            rows.floats(f[f"{i}.mean"], has)
            rows.floats(f[f"{i}.m2"], has)
        else:
            rows.const(b"NNN")
        if c.ordered:
            put(f[f"{i}.min"], has)
            put(f[f"{i}.max"], has)
        else:
            rows.const(b"NN")
        put(f[f"{i}.last"], f[f"{i}.lastp"])
        if c.k:
            rows.blobs(f[f"{i}.last_k"].tolist())
        else:
            rows.const(b")\x00")
    rows.const(b"N")  # no raw events: fast tiles hold none after now
    return rows


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
