"""The tiles a write dirties and the tiles it writes, as arrays (no Python object per tile on the hot path).

``Dirty``: the distinct ``(entity, level, tile)`` a write touched, every level (``tiles.ancestors`` of each touched
fine tile), entities numbered in the order of ``keys`` (a table of the distinct join keys). ``TileBatch``: what
``OnlineStore.write_tiles`` receives: per tile its entity number, level, tile and encoded partial (null: the tile
holds no event any more), sorted by (entity, level, tile); iterating it gives the ``(key, level, tile, bytes |
None)`` tuples the store interface describes, for stores that write tile by tile.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .tiles import FANOUT

BIN = pa.large_binary()


def entity_starts(t: pa.Table, ncols: int) -> np.ndarray:
    """Whether each row of ``t`` (sorted by its first ``ncols`` columns) starts a new entity."""
    n = t.num_rows
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
    for i in range(ncols):
        col = t.column(i)
        diff = pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, n - 1)), True)
        new[1:] |= diff.to_numpy(zero_copy_only=False)
    return new


def unique_rows(*cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct rows of parallel integer columns, sorted lexicographically (first column most significant)."""
    if not len(cols[0]):
        return cols
    if not _sorted(cols):  # (the SQL answers in order already: no sort then)
        order = np.lexsort(cols[::-1])
        cols = tuple(c[order] for c in cols)
    keep = np.ones(len(cols[0]), dtype=bool)
    same = np.ones(len(cols[0]) - 1, dtype=bool)
    for c in cols:
        same &= c[1:] == c[:-1]
    keep[1:] = ~same
    return tuple(c[keep] for c in cols)


def _sorted(cols: tuple) -> bool:
    """Whether the rows of parallel columns are in lexicographic order."""
    undecided = np.ones(len(cols[0]) - 1, dtype=bool)  # pairs equal on the columns so far
    for c in cols:
        a, b = c[:-1], c[1:]
        if (undecided & (a > b)).any():
            return False
        undecided &= a == b
    return True


class Dirty:
    """``keys``: the distinct entities (join-key columns), entity ``i`` is row ``i``; ``e``, ``lv``, ``tile``: the
    dirty tiles, sorted."""

    def __init__(self, touched: pa.Table, nkeys: int, hop_us: int, levels: int):
        """``touched``: join keys then ``__ev`` (µs), sorted by join keys."""
        new = entity_starts(touched, nkeys)
        self.keys = touched.select(list(range(nkeys))).take(pa.array(np.flatnonzero(new)))
        ent = np.cumsum(new) - 1
        fine = np.floor_divide(touched.column(nkeys).to_numpy() - 1, hop_us)  # definition.tile_of, vectorised
        ent, fine = unique_rows(ent, fine)
        es, lvs, ts = [], [], []
        for j in range(levels):  # // floors: tiles before the epoch align too
            t = fine // FANOUT ** j  # still sorted by (entity, tile): its distinct pairs are where either changes
            keep = np.ones(len(t), dtype=bool)
            keep[1:] = (ent[1:] != ent[:-1]) | (t[1:] != t[:-1])
            es.append(ent[keep])
            lvs.append(np.full(int(keep.sum()), j, np.int64))
            ts.append(t[keep])
        e = np.concatenate(es)
        order = np.argsort(e, kind="stable")  # the levels in turn: now sorted by (entity, level, tile)
        self.e, self.lv, self.tile = e[order], np.concatenate(lvs)[order], np.concatenate(ts)[order]

    def __len__(self) -> int:
        return self.keys.num_rows

    def span(self, lo: int, hi: int) -> slice:
        """The rows of the dirty tiles of entities ``lo .. hi - 1``."""
        return slice(int(np.searchsorted(self.e, lo)), int(np.searchsorted(self.e, hi)))


class TileBatch:
    """``keys`` (join-key columns, one row per entity), per tile ``e`` (row of ``keys``), ``lv``, ``tile`` (numpy
    int64) and ``state`` (large_binary, null: empty), sorted by (e, lv, tile).

    Built from ``parts``, each ``(e, lv, tile, states)`` sorted by (e, lv, tile), where ``states`` is a large_binary
    array or a ``state_bytes.Rows`` whose bytes are not packed yet: a store that frames its writes itself (Redis)
    takes the parts as they are and packs each state into its frame in one pass; the sorted union above is built on
    first use, for stores that write tile by tile."""

    def __init__(self, keys: pa.Table, parts: list):
        self.keys, self.parts = keys, [p for p in parts if len(p[0])]
        self._merged: tuple | None = None

    @classmethod
    def of(cls, keys: pa.Table, e, lv, tile, states: list) -> "TileBatch":
        """From parts in any order: ``states`` a list of large_binary arrays (or Python lists of bytes | None)."""
        e, lv, tile = (np.concatenate(x).astype(np.int64) if len(x) else np.zeros(0, np.int64) for x in (e, lv, tile))
        arrs = [s if isinstance(s, (pa.Array, pa.ChunkedArray)) else pa.array(s, BIN) for s in states]
        state = pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrs]) \
            if arrs else pa.array([], BIN)
        order = np.lexsort((tile, lv, e))
        return cls(keys, [(e[order], lv[order], tile[order], state.take(pa.array(order)))])

    def _union(self) -> tuple:
        if self._merged is None:
            parts = [(e, lv, t, s if isinstance(s, (pa.Array, pa.ChunkedArray)) else s.build())
                     for e, lv, t, s in self.parts]
            if len(parts) == 1:
                self._merged = parts[0]
            elif not parts:
                z = np.zeros(0, np.int64)
                self._merged = (z, z, z, pa.array([], BIN))
            else:
                e, lv, t = (np.concatenate([p[i] for p in parts]) for i in range(3))
                state = pa.concat_arrays([p[3] for p in parts])
                order = np.lexsort((t, lv, e))
                self._merged = (e[order], lv[order], t[order], state.take(pa.array(order)))
        return self._merged

    e = property(lambda self: self._union()[0])
    lv = property(lambda self: self._union()[1])
    tile = property(lambda self: self._union()[2])
    state = property(lambda self: self._union()[3])

    def __len__(self) -> int:
        return sum(len(p[0]) for p in self.parts)

    def __iter__(self):
        keys = list(zip(*(c.to_pylist() for c in self.keys.columns)))
        return zip(map(keys.__getitem__, self.e.tolist()), self.lv.tolist(), self.tile.tolist(),
                   self.state.to_pylist())
