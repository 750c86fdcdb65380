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
    order = np.lexsort(cols[::-1])
    cols = tuple(c[order] for c in cols)
    keep = np.ones(len(order), dtype=bool)
    same = np.ones(len(order) - 1, dtype=bool)
    for c in cols:
        same &= c[1:] == c[:-1]
    keep[1:] = ~same
    return tuple(c[keep] for c in cols)


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
            es.append(ent)
            lvs.append(np.full(len(ent), j, np.int64))
            ts.append(fine // FANOUT ** j)
        self.e, self.lv, self.tile = unique_rows(np.concatenate(es), np.concatenate(lvs), np.concatenate(ts))

    def __len__(self) -> int:
        return self.keys.num_rows

    def span(self, lo: int, hi: int) -> slice:
        """The rows of the dirty tiles of entities ``lo .. hi - 1``."""
        return slice(int(np.searchsorted(self.e, lo)), int(np.searchsorted(self.e, hi)))


class TileBatch:
    """Tiles to write: ``keys`` (join-key columns, one row per entity), per tile ``e`` (row of ``keys``), ``lv``,
    ``tile`` (numpy int64) and ``state`` (large_binary, null: empty), sorted by (e, lv, tile)."""

    def __init__(self, keys: pa.Table, e: np.ndarray, lv: np.ndarray, tile: np.ndarray, state: pa.Array):
        self.keys, self.e, self.lv, self.tile, self.state = keys, e, lv, tile, state

    @classmethod
    def of(cls, keys: pa.Table, e, lv, tile, states: list) -> "TileBatch":
        """From parts in any order: ``states`` a list of large_binary arrays (or Python lists of bytes | None)."""
        e, lv, tile = (np.concatenate(x).astype(np.int64) if len(x) else np.zeros(0, np.int64) for x in (e, lv, tile))
        arrs = [s if isinstance(s, (pa.Array, pa.ChunkedArray)) else pa.array(s, pa.large_binary()) for s in states]
        state = pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrs]) \
            if arrs else pa.array([], pa.large_binary())
        order = np.lexsort((tile, lv, e))
        return cls(keys, e[order], lv[order], tile[order], state.take(pa.array(order)))

    def __len__(self) -> int:
        return len(self.e)

    def __iter__(self):
        keys = list(zip(*(c.to_pylist() for c in self.keys.columns)))
        return zip(map(keys.__getitem__, self.e.tolist()), self.lv.tolist(), self.tile.tolist(),
                   self.state.to_pylist())
