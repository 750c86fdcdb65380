"""Keeping an aggregated view's online tiles equal to its history: every write path calls ``refresh``.

A write (an ingest batch, a materialize range) dirties a set of (entity, level, tile): the tiles, at every level, of
the rows it wrote and of the earlier versions of the events it corrected (``tile_sql.touched_sql``). Each dirty
tile's partial is recomputed from the committed history snapshot (``tile_sql.tile_events_sql``) and written over the
stored one, tagged with the snapshot's version (a store keeps the partial of the newest version: a slow writer with
an older snapshot cannot undo a newer one). Recomputing instead of adding is what makes corrections replace, late
events update their tiles, and replays and reruns after a crash write the very same state again.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ..errors import ConfigError
from ..online.base import to_us
from . import partials, tile_sql, tile_states
from .definition import AggregatedView
from .tiles import FANOUT, level_count, tile_range

ENTITIES_PER_CHUNK = 2_000


def check_store(ctx, view: AggregatedView) -> None:
    """Whether ``ctx`` can maintain ``view``'s tiles: an online store with tiles, an engine that scans histories
    with this module's SQL (DuckDB's ``history_relation``). Checked before anything of a write is written."""
    online = ctx.online
    if not getattr(online, "supports_tiles", False):
        raise ConfigError(f"online store {online.url} keeps no aggregation tiles: aggregated view {view.name!r} "
                          f"cannot be written online (use a store with supports_tiles)")
    if not hasattr(ctx.engine, "history_relation"):
        raise ConfigError(f"engine {getattr(ctx.engine, 'name', type(ctx.engine).__name__)!r} cannot compute the "
                          f"online tiles of aggregated view {view.name!r} yet (the embedded DuckDB engine can)")


def refresh(ctx, view: AggregatedView, files: Any, where: str, *, skip: int = 0,
            on_chunk: Callable[[int], None] | None = None, chunk: int | None = None) -> int:
    """Recompute and write the tiles dirtied by the history rows matching ``where`` (SQL over the history's
    columns). Entities go in key order, ``chunk`` at a time; ``skip``: entities a resumed run already wrote;
    ``on_chunk(entities done)`` after each chunk is written. ``files``: the snapshot's ``offline.base.HistoryFiles``
    (untyped here: the offline package imports this one). Returns the number of tiles written."""
    check_store(ctx, view)
    chunk = chunk or ENTITIES_PER_CHUNK
    if files.version is None:
        return 0
    keys = tuple(view.join_keys)
    levels = level_count(view)
    con = ctx.engine.connect()
    try:
        hist = ctx.engine.history_relation(view, files, con)
        touched = con.sql(tile_sql.touched_sql(hist, keys, view.event_id, where)).to_arrow_table()
        dirty = _dirty(touched, keys, view.hop_us, levels)
        entities = sorted(dirty)
        specs = partials.ColumnSpecs(view)
        sql = tile_sql.tile_events_sql(hist, keys, view.event_id, specs.names, specs.timestamp, "__skewless_ranges")
        vectorised = tile_states.supported(specs)  # else per event in Python (string columns...)
        written = 0
        now_us = to_us(ctx.now())
        for lo in range(skip, len(entities), chunk):
            part = entities[lo:lo + chunk]
            con.register("__skewless_ranges", _ranges(view, part, dirty, levels))
            table = con.sql(sql).to_arrow_table()
            con.unregister("__skewless_ranges")
            if vectorised:
                entries = tile_states.encoded_states(table, len(keys), specs, dirty, levels, view.hop_us, now_us)
                if len(entries) < sum(len(dirty[key]) for key in part):  # tiles left without events: empty now
                    have = {e[:3] for e in entries}
                    entries += [(key, lv, t, None) for key in part for lv, t in dirty[key] if (key, lv, t) not in have]
            else:
                evs = _events_by_entity(table, len(keys), len(specs.names))
                entries = []
                for key in part:
                    entries += _states(key, evs.get(key, []), dirty[key], view.hop_us, specs, now_us)
            written += ctx.online.write_tiles(view, entries, files.version)
            if on_chunk is not None:
                on_chunk(lo + len(part))
        return written
    finally:
        con.close()


def _dirty(touched: pa.Table, keys: tuple[str, ...], hop_us: int, levels: int) -> dict[tuple, set]:
    """Per entity, the dirty ``(level, tile)`` of every level (``tiles.ancestors`` of each touched fine tile)."""
    fine = np.floor_divide(touched.column("__ev").to_numpy() - 1, hop_us)  # definition.tile_of, vectorised
    fines: dict[tuple, set] = {}
    cols = [touched.column(k).to_pylist() for k in keys]
    for key, f in zip(zip(*cols), fine.tolist()):
        s = fines.get(key)
        if s is None:
            s = fines[key] = set()
        s.add(f)
    steps = [(j, FANOUT ** j) for j in range(levels)]  # // floors: tiles before the epoch align too
    return {key: {(j, f // step) for j, step in steps for f in fs} for key, fs in fines.items()}


def _ranges(view: AggregatedView, entities: Sequence[tuple], dirty: dict, levels: int) -> pa.Table:
    """Per entity, the intervals of its dirty top-level tiles: they hold every dirty tile of the levels below."""
    top = levels - 1
    rows = [(key, *tile_range(top, t, view.hop_us)) for key in entities for lv, t in sorted(dirty[key]) if lv == top]
    cols = {k: pa.array([r[0][i] for r in rows], view.join_key_dtypes[k].arrow)
            for i, k in enumerate(view.join_keys)}
    cols["lo"] = pa.array([r[1] for r in rows], pa.int64())
    cols["hi"] = pa.array([r[2] for r in rows], pa.int64())
    return pa.table(cols)


def _events_by_entity(t: pa.Table, nkeys: int, ncols: int) -> dict[tuple, list]:
    cols = [c.to_pylist() for c in t.columns]
    keys = list(zip(*cols[:nkeys])) if nkeys > 1 else [(k,) for k in cols[0]]
    order = cols[nkeys:nkeys + 4]
    values = list(zip(*cols[nkeys + 4:])) if ncols else [()] * t.num_rows
    out: dict[tuple, list] = {}
    for key, ev, cr, wb, wr, vals in zip(keys, *order, values):
        out.setdefault(key, []).append((ev, cr, wb, wr, vals))
    return out


def _states(key: tuple, events: list, dirty: set, hop_us: int, specs: partials.ColumnSpecs, now_us: int) -> list:
    """``(key, level, tile, encoded state or None)`` for each dirty tile of one entity (None: no event left)."""
    by_level: dict[int, dict[int, list]] = {}
    for lv, t in dirty:
        by_level.setdefault(lv, {})[t] = []
    for lv, tiles in by_level.items():
        size = FANOUT ** lv * hop_us
        for e in events:  # sorted by ordering key, so each tile's list is too
            bucket = tiles.get((e[0] - 1) // size)
            if bucket is not None:
                bucket.append(e)
    out = []
    for lv, tiles in by_level.items():
        for t, evs in tiles.items():
            st = partials.state_of(evs, specs, now_us if lv == 0 else None)
            out.append((key, lv, t, None if st is None else partials.encode(st)))
    return out
