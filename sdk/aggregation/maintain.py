"""Keeping an aggregated view's online tiles equal to its history: every write path calls ``refresh``.

A write (an ingest batch, a materialize range) dirties a set of (entity, level, tile): the tiles, at every level, of
the rows it wrote and of the earlier versions of the events it corrected (``tile_sql.touched_sql``). Each dirty
tile's partial is recomputed from the committed history snapshot (``tile_sql.tile_events_sql``) and written over the
stored one, tagged with the snapshot's version (a store keeps the partial of the newest version: a slow writer with
an older snapshot cannot undo a newer one). Recomputing instead of adding is what makes corrections replace, late
events update their tiles, and replays and reruns after a crash write the very same state again.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol

import numpy as np
import pyarrow as pa

from ..errors import ConfigError
from ..online.base import to_us
from . import partials, tile_states
from .definition import AggregatedView
from .dirty import Dirty, TileBatch
from .own_rows import Ahead, spans, written_rows
from .tiles import FANOUT, level_count

ENTITIES_PER_CHUNK = 2_000


class TileScan(Protocol):
    """What an engine's ``tile_scan(view, files)`` returns: the two queries of ``tile_sql`` over one history snapshot,
    run where the engine computes (DuckDB here, MaxCompute in its warehouse), answered as Arrow. The partials are then
    computed here from the events, by the same code whatever the engine, so every engine writes the same tiles."""

    def touched(self, where: str) -> pa.Table:
        """``tile_sql.touched_sql`` over the snapshot: join keys (the view's Arrow types), ``__ev`` (int64 µs)."""

    def events(self, ranges: pa.Table) -> pa.Table:
        """``tile_sql.view_events_sql`` over the snapshot with ``ranges`` (``_ranges``'s columns) as its ranges."""

    def close(self) -> None:
        """Release the session (and whatever it uploaded)."""

    # Optional: ``entities_per_chunk``, the chunk size that suits the engine (default ``ENTITIES_PER_CHUNK``);
    # ``count(where) -> (rows, rows matching where)`` of the snapshot (``tile_sql.count_sql``), cheap (metadata):
    # lets a write whose rows are the whole history skip both queries (``own_rows.written_rows``).


def check_store(ctx, view: AggregatedView) -> None:
    """Whether ``ctx`` can maintain ``view``'s tiles: an online store with tiles, an engine that runs this
    package's tile SQL (``tile_scan``, see ``TileScan``). Checked before anything of a write is written."""
    online = ctx.online
    if not getattr(online, "supports_tiles", False):
        raise ConfigError(f"online store {online.url} keeps no aggregation tiles: aggregated view {view.name!r} "
                          f"cannot be written online (use a store with supports_tiles)")
    if not hasattr(ctx.engine, "tile_scan"):
        raise ConfigError(f"engine {getattr(ctx.engine, 'name', type(ctx.engine).__name__)!r} cannot compute the "
                          f"online tiles of aggregated view {view.name!r} (the duckdb and maxcompute engines can)")


def refresh(ctx, view: AggregatedView, files: Any, where: str, *, skip: int = 0,
            on_chunk: Callable[[int], None] | None = None, chunk: int | None = None,
            rows: pa.Table | None = None, ahead: Ahead | None = None) -> int:
    """Recompute and write the tiles dirtied by the history rows matching ``where`` (SQL over the history's
    columns). Entities go in key order, ``chunk`` at a time (the first and last chunks written in parts,
    ``own_rows.spans``), each part's write started before the part before is waited for; ``skip``: entities a resumed run
    already wrote; ``on_chunk(entities done)`` after each part is written. ``files``: the snapshot's ``offline.base.HistoryFiles``
    (untyped here: the offline package imports this one). ``rows``: the rows matching ``where`` when the caller
    holds them (an ingest's batch, in the history's layout); used instead of the scans only when the snapshot holds
    no other row (``own_rows.written_rows``). ``ahead``: the same rows' tiles computed while their commit ran
    (``own_rows.Ahead``), used only then too. Returns the number of tiles written."""
    try:
        return _refresh(ctx, view, files, where, skip, on_chunk, chunk, rows, ahead)
    finally:
        if ahead is not None:  # whether used or not, it computes nothing more
            ahead.cancel()


def _refresh(ctx, view: AggregatedView, files: Any, where: str, skip: int, on_chunk: Callable[[int], None] | None,
             chunk: int | None, rows: pa.Table | None, ahead: Ahead | None) -> int:
    check_store(ctx, view)
    if files.version is None:
        return 0
    levels = level_count(view)
    scan: TileScan = ctx.engine.tile_scan(view, files)
    chunk = chunk or getattr(scan, "entities_per_chunk", ENTITIES_PER_CHUNK)
    pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-tile-scan")
    fetching = None  # the scan of the next chunk's events, run while this one is computed and written
    try:
        own = written_rows(view, scan, where, rows, ahead)
        dirty, ready, now_us = None, {}, 0
        if ahead is not None and own is not None:
            dirty, ready, now_us = ahead.take(own)
            if dirty is not None:  # no scans on this path: its parts are the ones computed ahead
                chunk = ahead.chunk
        elif ahead is not None:  # the events are scanned; the tiles they fill are the batch's own
            dirty = ahead.batch_dirty()
        if dirty is None:
            dirty = Dirty(scan.touched(where) if own is None else own.touched, len(view.join_keys), view.hop_us,
                          levels)
        if not now_us:
            now_us = to_us(ctx.now())
        specs = partials.ColumnSpecs(view)
        vectorised = tile_states.supported(specs)  # else per event in Python (string columns...)
        written = 0
        groups = spans(skip, len(dirty), chunk)

        def events(k: int) -> pa.Table:  # one query at a time on the scan's session: this thread, in turn
            lo, hi = groups[k][0][0], groups[k][-1][1]
            if own is not None:
                return own.events_of(lo, hi)
            return scan.events(_ranges(view, dirty, dirty.span(lo, hi), levels))
        fetching = pool.submit(events, 0) if groups else None
        pending: list = []  # writes started, not finished: (their finish, entities done once written), in order
        try:
            for k, group in enumerate(groups):
                events_k = fetching.result()
                fetching = pool.submit(events, k + 1) if k + 1 < len(groups) else None
                for lo, hi in group:
                    table = events_k if len(group) == 1 else _entities(events_k, lo, hi)
                    part = dirty.span(lo, hi)
                    e, lv, tile = dirty.e[part], dirty.lv[part], dirty.tile[part]
                    batch = ready.pop((lo, hi), None)  # computed ahead, while the commit ran
                    if batch is None and vectorised:
                        batch = tile_states.encoded_states(table, specs, dirty.keys, e, lv, tile, view.hop_us, now_us)
                    elif batch is None:
                        batch = _batch(table, specs, dirty.keys, e, lv, tile, view.hop_us, now_us)
                    # started before the chunk before is waited for: the store's server goes on to this chunk
                    # without waiting for the client, and works while the next one is computed
                    pending.append((ctx.online.start_write_tiles(view, batch, files.version), hi))
                    while len(pending) > 1:
                        written += _finish(pending, on_chunk)
            while pending:
                written += _finish(pending, on_chunk)
        finally:
            for finish, _ in pending:  # an error: the writes under way are still waited for
                with contextlib.suppress(Exception):
                    finish()
        return written
    finally:
        if fetching is not None:  # an error: the scan under way ends before its session closes
            with contextlib.suppress(Exception):
                fetching.result()
        pool.shutdown()
        scan.close()


def start_ahead(ctx, view: AggregatedView, rows: pa.Table) -> Ahead | None:
    """An ingest's tiles computed while its offline commit runs, if they may be its rows' own
    (``own_rows.Ahead``): hand it to ``refresh``, or ``cancel`` it if the commit fails."""
    return Ahead.start(ctx, view, rows, ENTITIES_PER_CHUNK)


def _entities(events: pa.Table, lo: int, hi: int) -> pa.Table:
    """The rows of entities ``lo .. hi - 1`` of events sorted by entity (``__e``)."""
    a, b = np.searchsorted(events.column("__e").to_numpy(), [lo, hi])
    return events.slice(int(a), int(b - a))


def _finish(pending: list, on_chunk: Callable[[int], None] | None) -> int:
    """Wait for the oldest started write; report its entities done (a checkpoint) only once it is written."""
    finish, done = pending.pop(0)  # (not waited for twice if it raises)
    n = finish()
    if on_chunk is not None:
        on_chunk(done)
    return n


def _ranges(view: AggregatedView, dirty: Dirty, part: slice, levels: int) -> pa.Table:
    """Per entity of ``part``, the intervals of its dirty top-level tiles: they hold every dirty tile of the levels
    below. Columns: join keys, ``__e`` (the entity's number), ``lo``, ``hi``."""
    top = dirty.lv[part] == levels - 1
    e, tile = dirty.e[part][top], dirty.tile[part][top]
    size = FANOUT ** (levels - 1) * view.hop_us
    cols = {k: c for k, c in zip(view.join_keys, dirty.keys.take(pa.array(e)).columns)}
    cols["__e"] = pa.array(e, pa.int64())
    cols["lo"] = pa.array(tile * size, pa.int64())  # tile_range(top, tile), vectorised
    cols["hi"] = pa.array((tile + 1) * size, pa.int64())
    return pa.table(cols)


def _batch(t: pa.Table, specs: partials.ColumnSpecs, keys: pa.Table, e: np.ndarray, lv: np.ndarray,
           tile: np.ndarray, hop_us: int, now_us: int) -> TileBatch:
    """The tiles ``(e, lv, tile)`` computed by ``partials.state_of`` per tile (columns ``tile_states`` does not
    vectorise: strings...)."""
    cols = [c.to_pylist() for c in t.columns]
    values = list(zip(*cols[5:])) if len(specs.names) else [()] * t.num_rows
    evs: dict[int, list] = {}
    for ent, ev, cr, wb, wr, vals in zip(cols[0], *cols[1:5], values):
        evs.setdefault(ent, []).append((ev, cr, wb, wr, vals))
    dirty: dict[int, list] = {}
    for ent, lvl, t_ in zip(e.tolist(), lv.tolist(), tile.tolist()):
        dirty.setdefault(ent, []).append((lvl, t_))
    states = []
    for ent, tiles in dirty.items():
        states += _states(evs.get(ent, []), tiles, hop_us, specs, now_us)
    return TileBatch.of(keys, [e], [lv], [tile], [states])


def _states(events: list, dirty: list, hop_us: int, specs: partials.ColumnSpecs, now_us: int) -> list:
    """The encoded state (None: no event left) of each of one entity's dirty ``(level, tile)``, in their order."""
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
    for lv, t in dirty:
        st = partials.state_of(by_level[lv][t], specs, now_us if lv == 0 else None)
        out.append(None if st is None else partials.encode(st))
    return out
