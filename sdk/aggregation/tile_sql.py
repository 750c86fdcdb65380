"""The SQL (DuckDB dialect) that feeds the online tiles: which tiles a write dirties, and the events of those tiles.

Engines run it through their ``tile_scan`` (``maintain.TileScan``): DuckDB as is, others transpiled by sqlglot into
their dialect (MaxCompute), the answers coming back as Arrow in ``touched_schema`` / ``events_schema``.

Both read a history through ``sql.events`` (event identity rendered once), so a tile's partial is recomputed from
the events as they are now (the newest version of each ``event_id``), never incremented: corrections replace, late
events land in their own tile, a replayed batch or a rerun after a crash writes the same partials again.
"""

from __future__ import annotations

import pyarrow as pa

from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from ..sqlnames import q
from .definition import AggregatedView
from .partials import ColumnSpecs
from .sql import events


def _us(col: str) -> str:
    return f"epoch_us({q(col)})"


def touched_sql(history: str, join_keys: tuple[str, ...], event_id: str | None, where: str) -> str:
    """``(join keys, __ev)``: the event times of the history rows matching ``where`` and, with an ``event_id``, of
    every version of the same ``(join keys, event_id)`` events (a correction leaves the tile of the version it
    replaces, which must then be recomputed too). Distinct, sorted by join keys then time; the caller turns times into
    tiles."""
    keys = ", ".join(q(k) for k in join_keys)
    picked = f"SELECT {keys}, {_us(EVENT_TS)} AS __ev FROM {history} AS h WHERE {where}"
    if event_id is None:
        return f"SELECT DISTINCT * FROM ({picked}) ORDER BY {keys}, __ev"
    on = " AND ".join(f"h.{q(c)} = b.{q(c)}" for c in (*join_keys, event_id))
    versions = (f"SELECT {', '.join('h.' + q(k) for k in join_keys)}, epoch_us(h.{q(EVENT_TS)}) AS __ev "
                f"FROM {history} AS h JOIN (SELECT DISTINCT {keys}, {q(event_id)} FROM {history} AS h "
                f"WHERE ({where}) AND {q(event_id)} IS NOT NULL) AS b ON {on}")
    return f"SELECT DISTINCT * FROM ({picked} UNION ALL {versions}) ORDER BY {keys}, __ev"


def count_sql(history: str, where: str) -> str:
    """``(rows, rows matching where)`` of the history: whether a write's rows are all of it (``maintain``)."""
    return f"SELECT count(*), count(*) FILTER (WHERE {where}) FROM {history} AS h"


def tile_events_sql(history: str, join_keys: tuple[str, ...], event_id: str | None, columns: list[str],
                    timestamps: list[bool], ranges: str) -> str:
    """The events (``sql.events``) of each entity with event time in one of its ``ranges`` (a relation of join keys,
    ``__e`` the entity's number, ``lo``, ``hi``: the interval ``(lo, hi]`` in µs; an entity's intervals do not
    overlap), ordered by entity number then ordering key ``(event, created, batch, row)``. Columns: ``__e``, the
    ordering key as integers, the aggregated columns (timestamps as µs)."""
    cols = ", ".join(f"{_us(c) if ts else q(c)} AS {q('v_' + c)}" for c, ts in zip(columns, timestamps))
    on = " AND ".join(f"e.{q(k)} = r.{q(k)}" for k in join_keys)
    order = f"{_us(EVENT_TS)}, {_us(CREATED_TS)}, {q(WRITE_BATCH)}, {q(WRITE_ROW)}"
    sel = f"r.__e AS __e, {_us(EVENT_TS)} AS __ev, {_us(CREATED_TS)} AS __cr, {q(WRITE_BATCH)} AS __wb, " \
          f"{q(WRITE_ROW)} AS __wr" + (f", {cols}" if cols else "")
    return (f"SELECT {sel} FROM {events(history, join_keys, event_id)} AS e JOIN {ranges} AS r ON {on} "
            f"AND {_us(EVENT_TS)} > r.lo AND {_us(EVENT_TS)} <= r.hi ORDER BY __e, {order}")


def view_touched_sql(view: AggregatedView, history: str, where: str) -> str:
    """``touched_sql`` for ``view`` over its ``history`` relation."""
    return touched_sql(history, tuple(view.join_keys), view.event_id, where)


def view_events_sql(view: AggregatedView, history: str, ranges: str) -> str:
    """``tile_events_sql`` for ``view``'s aggregated columns (``partials.ColumnSpecs`` order) over ``history``."""
    specs = ColumnSpecs(view)
    return tile_events_sql(history, tuple(view.join_keys), view.event_id, specs.names, specs.timestamp, ranges)


def touched_schema(view: AggregatedView) -> pa.Schema:
    """The Arrow types ``view_touched_sql`` answers in (DuckDB's, which every engine's answer is cast to)."""
    return pa.schema([*((k, d.arrow) for k, d in view.join_key_dtypes.items()), ("__ev", pa.int64())])


def events_schema(view: AggregatedView) -> pa.Schema:
    """The Arrow types ``view_events_sql`` answers in (timestamps as int64 µs)."""
    specs = ColumnSpecs(view)
    return pa.schema([*((c, pa.int64()) for c in ("__e", "__ev", "__cr", "__wb", "__wr")),
                      *(("v_" + c, pa.int64() if ts else d.arrow)
                        for c, d, ts in zip(specs.names, specs.dtypes, specs.timestamp))])
