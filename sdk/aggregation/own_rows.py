"""A write's tiles from its own rows, when they are the whole history; and those tiles computed ahead, while the
write's offline commit runs.

``maintain.refresh`` recomputes every dirty tile from the committed snapshot. When the snapshot holds no row but the
write's (its first ingest), the scans would answer exactly the write's own rows, so ``Written`` answers for them
from memory (``written_rows`` proves it on the snapshot first: its row counts, Parquet metadata).

``Ahead``: an ingest's tiles depend on its rows alone in that case, not on the commit (only the frames a store
writes carry the committed version). So the ingest starts them before it commits (``Ahead.start``, a thread): the
dirty set and the encoded states of the first parts, computed while the commit (DuckDB's tie check, delta-rs' write,
both mostly outside the GIL) runs, instead of after it. ``refresh`` takes what is ready only once the snapshot has
proven the rows are the whole history (the same proof as without it); otherwise, or when anything went wrong ahead,
the states are dropped and computed as usual. When the history already holds rows, only the dirty set is computed
ahead: without event ids, the tiles a batch dirties are those of its own rows (``touched``), so the touched scan is
not needed. Nothing is written ahead, so a crash or a failed commit leaves nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from ..online.base import to_us
from ..timeutil import UTC_US
from . import partials, tile_sql, tile_states
from .definition import AggregatedView
from .dirty import Dirty, entity_starts
from .tiles import level_count

AHEAD_TILES = 400_000  # states computed ahead at most (~60 MB at 12 outputs): what waits for the commit is bounded


class Written:
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


def touched(view: AggregatedView, rows: pa.Table) -> pa.Table:
    """What ``tile_sql.touched_sql`` answers for a view without ``event_id`` over a history whose rows matching
    its ``where`` are ``rows``: their join keys and event times (µs), sorted (``Dirty`` takes duplicates)."""
    keys = list(view.join_keys)
    t = pa.table({**{k: rows.column(k) for k in keys}, "__ev": pc.cast(rows.column(EVENT_TS), pa.int64())})
    t = t.take(pc.sort_indices(t, [(c, "ascending") for c in (*keys, "__ev")]))
    return t.cast(tile_sql.touched_schema(view))


def candidate(view: AggregatedView, rows: pa.Table | None) -> bool:
    """Whether ``rows`` could stand for the scans' answers at all (before any snapshot is looked at): not for views
    with an ``event_id`` (which version of an event counts depends on every version), nor null join keys (no
    entity), nor rows not in the history's layout (µs timestamps, the declared types)."""
    if rows is None or view.event_id is not None or not rows.num_rows:
        return False
    if any(rows.column(k).null_count for k in view.join_keys):
        return False
    dt = {f.name: f.dtype for f in view.schema}
    return all(rows.schema.field(c).type == UTC_US for c in (EVENT_TS, CREATED_TS)) and \
        all(rows.schema.field(c).type == dt[c].arrow for c in partials.ColumnSpecs(view).names)


def written_rows(view: AggregatedView, scan: Any, where: str, rows: pa.Table | None,
                 ahead: "Ahead | None" = None) -> "Written | None":
    """``rows`` as the scans' answers, when they are provably all the history holds: a ``candidate``, and the
    snapshot's row count and its count of rows matching ``where`` both equal theirs (``scan.count``), so every tile
    they dirty holds exactly their events. Else None: the scans run. ``ahead``'s ``Written`` is used when it has one
    for the same rows."""
    if not candidate(view, rows) or not hasattr(scan, "count"):
        return None
    if scan.count(where) != (rows.num_rows, rows.num_rows):
        return None
    own = ahead.written() if ahead is not None and ahead.rows is rows else None
    return own if own is not None else Written(view, rows)


def spans(lo: int, n: int, chunk: int) -> list[list[tuple[int, int]]]:
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


class Ahead:
    """An ingest's tiles computed from its own rows in a thread while its offline commit runs (see the module's
    docstring). ``take`` stops it and hands over what is ready: the ``Written``, its ``Dirty``, the encoded states of
    the first parts of ``spans(0, entities, chunk)`` by part, and the ``now`` they were computed at."""

    def __init__(self, ctx, view: AggregatedView, rows: pa.Table, chunk: int):
        self.ctx, self.view, self.rows, self.chunk = ctx, view, rows, chunk
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skewless-tiles-ahead", daemon=True)
        self.own: Written | None = None
        self.dirty: Dirty | None = None
        self.states: dict[tuple[int, int], Any] = {}  # (lo, hi) -> TileBatch
        self.now_us = 0
        self.failed: BaseException | None = None

    @classmethod
    def start(cls, ctx, view: AggregatedView, rows: pa.Table, chunk: int) -> "Ahead | None":
        """Started for an ingest whose rows may turn out to be the whole history (a ``candidate``) and whose
        columns ``tile_states`` computes; else None."""
        if not candidate(view, rows) or not tile_states.supported(partials.ColumnSpecs(view)):
            return None
        ahead = cls(ctx, view, rows, chunk)
        ahead._thread.start()
        return ahead

    def _run(self) -> None:
        try:
            view = self.view
            levels = level_count(view)
            if self.ctx.offline.version(view.name) is not None:  # a history already: the events are scanned
                self.dirty = Dirty(touched(view, self.rows), len(view.join_keys), view.hop_us, levels)
                return
            own = Written(view, self.rows)
            dirty = Dirty(own.touched, len(view.join_keys), view.hop_us, levels)
            self.own, self.dirty = own, dirty
            specs = partials.ColumnSpecs(view)
            self.now_us = to_us(self.ctx.now())
            done = 0
            for group in spans(0, len(dirty), self.chunk):
                for lo, hi in group:
                    if self._stop.is_set() or done >= AHEAD_TILES:
                        return
                    part = dirty.span(lo, hi)
                    self.states[(lo, hi)] = tile_states.encoded_states(
                        own.events_of(lo, hi), specs, dirty.keys, dirty.e[part], dirty.lv[part], dirty.tile[part],
                        view.hop_us, self.now_us)
                    done += part.stop - part.start
        except BaseException as exc:  # dropped: refresh computes everything itself (and meets the error there)
            self.failed = exc

    def cancel(self) -> None:
        """Stop and wait (the ingest failed, or is done with it)."""
        self._stop.set()
        self._thread.join()

    def written(self) -> Written | None:
        self.cancel()
        return None if self.failed is not None else self.own

    def batch_dirty(self) -> Dirty | None:
        """The tiles the rows dirty (``Dirty`` of ``touched``), whatever else the history holds: what the touched
        scan would answer for an ingest's batch (``candidate``: no event ids, whose corrections dirty the tiles
        of earlier versions too). None if not computed."""
        self.cancel()
        return None if self.failed is not None else self.dirty

    def take(self, own: Written) -> tuple[Dirty | None, dict, int]:
        """For ``refresh`` once ``own`` is proven: the dirty set and the states computed ahead by part of
        ``spans(0, entities, self.chunk)`` (None, {} when ``own`` is not the one computed here), and their ``now``."""
        self.cancel()
        if self.failed is not None or own is not self.own:
            return None, {}, 0
        return self.dirty, self.states, self.now_us
