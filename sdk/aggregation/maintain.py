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
import pyarrow.compute as pc

from ..errors import ConfigError
from ..timeutil import UTC_US
from ..online.base import to_us
from . import partials, tile_states
from .definition import AggregatedView
from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from . import tile_sql
from .dirty import Dirty, TileBatch, entity_starts
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
    # lets a write whose rows are the whole history skip both queries (``_written_rows``).


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
            rows: pa.Table | None = None) -> int:
    """Recompute and write the tiles dirtied by the history rows matching ``where`` (SQL over the history's
    columns). Entities go in key order, ``chunk`` at a time (the first and last chunks written in parts,
    ``_spans``), each part's write started before the part before is waited for; ``skip``: entities a resumed run
    already wrote; ``on_chunk(entities done)`` after each part is written. ``files``: the snapshot's ``offline.base.HistoryFiles``
    (untyped here: the offline package imports this one). ``rows``: the rows matching ``where`` when the caller
    holds them (an ingest's batch, in the history's layout); used instead of the scans only when the snapshot holds
    no other row (``_written_rows``). Returns the number of tiles written."""
    check_store(ctx, view)
    if files.version is None:
        return 0
    levels = level_count(view)
    scan: TileScan = ctx.engine.tile_scan(view, files)
    chunk = chunk or getattr(scan, "entities_per_chunk", ENTITIES_PER_CHUNK)
    pool = ThreadPoolExecutor(1, thread_name_prefix="skewless-tile-scan")
    fetching = None  # the scan of the next chunk's events, run while this one is computed and written
    try:
        own = _written_rows(view, scan, where, rows)
        dirty = Dirty(scan.touched(where) if own is None else own.touched, len(view.join_keys), view.hop_us, levels)
        specs = partials.ColumnSpecs(view)
        vectorised = tile_states.supported(specs)  # else per event in Python (string columns...)
        written = 0
        now_us = to_us(ctx.now())
        groups = _spans(skip, len(dirty), chunk)

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
                    if vectorised:
                        batch = tile_states.encoded_states(table, specs, dirty.keys, e, lv, tile, view.hop_us, now_us)
                    else:
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


def _spans(lo: int, n: int, chunk: int) -> list[list[tuple[int, int]]]:
    """Entities ``lo .. n - 1`` in chunks of ``chunk`` entities (one events scan each), each a list of the spans
    written one by one. The first and last chunks are written in parts: the store's server writes a part while the
    client computes the next, so it waits for the client's first part before it starts and has the last part
    alone to write once the client is done; quarters instead of whole chunks shorten both."""
    out = [[(a, min(a + chunk, n))] for a in range(lo, n, chunk)]
    if len(out) > 1:
        out[0] = _parts(*out[0][0], chunk, first=True)
    if out:
        out[-1] = _parts(*out[-1][0], chunk, first=False)
    return out


def _parts(lo: int, hi: int, chunk: int, first: bool) -> list[tuple[int, int]]:
    """``lo .. hi - 1`` as growing (``first``) or shrinking parts, halving down to a quarter of ``chunk``."""
    sizes, left = [], hi - lo
    while left > max(chunk // 4, 1):
        sizes.append(-(-left // 2))
        left -= sizes[-1]
    if left:
        sizes.append(left)
    if first:
        sizes.reverse()
    out = []
    for size in sizes:
        out.append((lo, lo + size))
        lo += size
    return out


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


class _Written:
    """A write's rows as ``TileScan`` would answer for them when they are the whole history: ``touched`` (join keys,
    ``__ev``; sorted) and the events of entities ``lo .. hi - 1`` (``events_of``), entities numbered as ``Dirty``
    numbers them (the same sort)."""

    def __init__(self, view: AggregatedView, rows: pa.Table):
        keys = list(view.join_keys)
        specs = partials.ColumnSpecs(view)
        us = {c: pc.cast(rows.column(c), pa.int64()) for c in (EVENT_TS, CREATED_TS)}  # timestamp[us]: its µs
        t = pa.table({**{k: rows.column(k) for k in keys}, "__ev": us[EVENT_TS], "__cr": us[CREATED_TS],
                      "__wb": rows.column(WRITE_BATCH), "__wr": rows.column(WRITE_ROW),
                      **{"v_" + c: rows.column(c) for c in specs.names}})
        # tile_sql's orders: join keys then the ordering key (event, created, batch, row)
        t = t.take(pc.sort_indices(t, [(c, "ascending") for c in (*keys, "__ev", "__cr", "__wb", "__wr")]))
        self.touched = t.select([*keys, "__ev"]).cast(tile_sql.touched_schema(view))
        self.entity = np.cumsum(entity_starts(t, len(keys))) - 1
        self.events = pa.table([pa.array(self.entity, pa.int64()), *t.columns[len(keys):]],
                               schema=tile_sql.events_schema(view))

    def events_of(self, lo: int, hi: int) -> pa.Table:
        a, b = np.searchsorted(self.entity, [lo, hi])
        return self.events.slice(int(a), int(b - a))


def _written_rows(view: AggregatedView, scan: TileScan, where: str, rows: pa.Table | None) -> _Written | None:
    """``rows`` as the scans' answers, when they are provably all the history holds: the snapshot's row count and
    its count of rows matching ``where`` both equal theirs (``count``), so every tile they dirty holds exactly their
    events. Not for views with an ``event_id`` (which version of an event counts depends on every version), nor
    null join keys (no entity), nor engines without ``count``. Else None: the scans run."""
    if rows is None or view.event_id is not None or not hasattr(scan, "count") or not rows.num_rows:
        return None
    if any(rows.column(k).null_count for k in view.join_keys):
        return None
    dt = {f.name: f.dtype for f in view.schema}
    if any(rows.schema.field(c).type != UTC_US for c in (EVENT_TS, CREATED_TS)) or \
            any(rows.schema.field(c).type != dt[c].arrow for c in partials.ColumnSpecs(view).names):
        return None  # not the history's layout: µs timestamps, the declared types
    if scan.count(where) != (rows.num_rows, rows.num_rows):
        return None
    return _Written(view, rows)


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
