"""The point-in-time join — written once, rendered per engine.

This module is the only place the spec's "value at time t" rule (../shared/spec/time-semantics.md) is turned into
SQL. A query is described as data (``PitQuery``) and rendered in one of two forms:

* ``asof``   — DuckDB's ``ASOF LEFT JOIN`` on the ordering tuple ``(event, created, batch, row)``: the greatest
  tuple not after ``(t, +inf, +inf, +inf)`` is exactly the spec's winner among rows with ``event <= t``; the TTL
  lower bound is then applied to that single winner (if the newest row is too old, every row is).
  Only for ``point_in_time="event"``: "available" adds a second inequality an ASOF join cannot express.
* ``window`` — portable ANSI SQL (join on ``event <= t`` [and TTL, and ``created <= t``], ``ROW_NUMBER()`` over the
  same ordering tuple). Any engine with window functions runs it; sqlglot renders it for Spark, Hive/MaxCompute,
  Presto/Athena.

Both forms are generated from the same ``PitQuery`` and tested against the same oracle, so they cannot drift.
The input relations must already be canonical: the entity relation carries ``ENTITY_ROW`` (input position) and
join keys cast to the views' key types; each history relation has the join keys, ``event_timestamp``,
``created_timestamp``, ``_skewless_batch``, ``_skewless_row`` and the features.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import sqlglot

from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from ..errors import ValidationError
from ..sqlnames import ENTITY_ROW, output_names, q  # noqa: F401 - re-exported: engines import them from here
from .key_packing import KeyPacking, packed_key

# The spec's tie-breaking order, greatest wins.
ORDER = (EVENT_TS, CREATED_TS, WRITE_BATCH, WRITE_ROW)
_INT64_MAX = "9223372036854775807"
_TWO_64 = "18446744073709551616"


@dataclass(frozen=True)
class FeatureColumn:
    feature: str  # column in the history
    output: str  # column in the result


@dataclass(frozen=True)
class ViewQuery:
    view: str
    join_keys: tuple[str, ...]
    features: tuple[FeatureColumn, ...]
    ttl: timedelta | None
    history: str  # a relation: table name or parenthesised subquery with the canonical columns
    event_timestamp_output: str | None = None  # also return the winner's event time under this name
    # Which ties exist among rows of one entity (HistoryFiles.tie_level): 0 none, 1 on event time, 2 on event
    # and created time. It picks the cheapest exact ASOF key.
    tie_level: int = 2
    # At tie level 1: (event, created) packed into a BIGINT ASOF key (KeyPacking), None for the 128-bit key.
    packing: KeyPacking | None = None
    # The narrow form (asof only): the history relation also has this row-position column, and the query returns
    # the winner's position under the same name instead of its features (offline/gather.py fetches those).
    position: str | None = None


@dataclass(frozen=True)
class PitQuery:
    entity: str  # relation with ENTITY_ROW, the timestamp column, join keys and pass-through columns
    entity_columns: tuple[str, ...]  # pass-through columns in output order
    timestamp_column: str
    views: tuple[ViewQuery, ...]
    point_in_time: str = "event"  # "event" | "available"
    # True: rows come back in input order (ORDER BY the input position). False: no ORDER BY, and the input
    # position is returned as the last column so the caller restores the order itself (cheaper in memory).
    ordered: bool = True


def join_key_types(requests: list) -> dict:
    """Join key -> dtype over the requested (view, features); a key typed differently by two views is an error."""
    types: dict = {}
    for view, _ in requests:
        for k, d in view.join_key_dtypes.items():
            if types.setdefault(k, d) != d:
                raise ValidationError(f"join key {k!r} has different dtypes in the requested views", column=k)
    return types


def view_queries(requests: list, taken: set[str], history: Callable[[object], str], tie_levels: dict[str, int], *,
                 full_feature_names: bool, event_timestamps: bool) -> tuple[ViewQuery, ...]:
    """One ViewQuery per requested (view, features): the output names (``view__feature`` with full_feature_names,
    ``view__event_timestamp`` for the winner's event time), each checked against ``taken`` (the input columns and
    earlier outputs, extended here), over the relation ``history(view)``."""
    views = []
    for view, feats in requests:
        out = [FeatureColumn(f, name) for f, name in zip(feats, output_names(view.name, feats, taken,
                                                                              full_feature_names))]
        ev_out = None
        if event_timestamps:
            ev_out = f"{view.name}__{EVENT_TS}"
            if ev_out in taken:
                raise ValidationError(f"output column {ev_out!r} collides with an input column", column=ev_out)
            taken.add(ev_out)
        views.append(ViewQuery(view.name, tuple(view.join_keys), tuple(out), view.ttl, history(view), ev_out,
                               tie_levels[view.name]))
    return tuple(views)


def _tail(pq: PitQuery) -> str:
    return f"\nORDER BY e.{q(ENTITY_ROW)}" if pq.ordered else ""


def _ttl_us(ttl: timedelta | None) -> int | None:
    return None if ttl is None else ttl // timedelta(microseconds=1)


def _lower_bound(t: str, ttl: timedelta | None) -> str | None:
    us = _ttl_us(ttl)
    return None if us is None else f"{t} - INTERVAL '{us}' MICROSECOND"


def _render_asof(pq: PitQuery) -> str:
    t = f"e.{q(pq.timestamp_column)}"
    select = [f"e.{q(c)}" for c in pq.entity_columns]
    joins = []
    for i, v in enumerate(pq.views):
        a = f"v{i}"
        lower = _lower_bound(t, v.ttl)
        fresh = f"{a}.__ev >= {lower}" if lower else None
        outputs = [(q(v.position), q(v.position))] if v.position else [(q(f.feature), q(f.output)) for f in v.features]
        for stored, output in outputs:
            col = f"{a}.{stored}"
            select.append(f"CASE WHEN {fresh} THEN {col} END AS {output}" if fresh else f"{col} AS {output}")
        if v.event_timestamp_output:
            ev = f"{a}.__ev"
            select.append(f"CASE WHEN {fresh} THEN {ev} END AS {q(v.event_timestamp_output)}" if fresh
                          else f"{ev} AS {q(v.event_timestamp_output)}")
        cols = ", ".join([q(k) for k in v.join_keys] + [stored for stored, _ in outputs])
        # Carry the event time only when the TTL or the caller needs it: every column rides through the join's sort.
        ev_col = f"{q(EVENT_TS)} AS __ev, " if (fresh or v.event_timestamp_output) else ""
        if v.tie_level == 0:  # no two rows of an entity share an event time: it alone decides
            key, probe = q(EVENT_TS), t
        elif v.tie_level >= 2:  # the full ordering tuple as a struct (exact, slowest to sort)
            order = ", ".join(f"'{k}': {q(c)}" for k, c in zip("ecbr", ORDER))
            key = f"{{{order}}}"
            probe = (f"{{'e': {t}, 'c': TIMESTAMPTZ 'infinity', 'b': CAST({_INT64_MAX} AS BIGINT), "
                     f"'r': CAST({_INT64_MAX} AS BIGINT)}}")
        elif v.packing is not None:  # (event, created) alone decide, and fit one BIGINT
            key, probe = packed_key(v.packing, t)
        else:  # (event, created) alone decide: packed into one 128-bit integer, lexicographic by construction
            # A product, not a shift: DuckDB refuses to shift a negative number (event times before 1970).
            key = f"CAST(epoch_us({q(EVENT_TS)}) AS HUGEINT) * {_TWO_64} + epoch_us({q(CREATED_TS)})"
            probe = f"CAST(epoch_us({t}) AS HUGEINT) * {_TWO_64} + {_INT64_MAX}"
        inner = f"SELECT {cols}, {ev_col}{key} AS __ord FROM {v.history}"
        on = " AND ".join([f"e.{q(k)} = {a}.{q(k)}" for k in v.join_keys] + [f"{probe} >= {a}.__ord"])
        joins.append(f"ASOF LEFT JOIN ({inner}) AS {a} ON {on}")
    if not pq.ordered:
        select.append(f"e.{q(ENTITY_ROW)}")
    return f"SELECT {', '.join(select)}\nFROM {pq.entity} AS e\n" + "\n".join(joins) + _tail(pq)


def _render_window(pq: PitQuery) -> str:
    t = f"e.{q(pq.timestamp_column)}"
    ctes, select, joins = [], [f"e.{q(c)}" for c in pq.entity_columns], []
    for i, v in enumerate(pq.views):
        a = f"m{i}"
        conds = [f"e.{q(k)} = h.{q(k)}" for k in v.join_keys] + [f"h.{q(EVENT_TS)} <= {t}"]
        lower = _lower_bound(t, v.ttl)
        if lower:
            conds.append(f"h.{q(EVENT_TS)} >= {lower}")
        if pq.point_in_time == "available":
            conds.append(f"h.{q(CREATED_TS)} <= {t}")
        order = ", ".join(f"h.{q(c)} DESC" for c in ORDER)
        feats = ", ".join(f"h.{q(f.feature)} AS {q(f.feature)}" for f in v.features)
        ctes.append(
            f"{a} AS (SELECT e.{q(ENTITY_ROW)} AS __rid, h.{q(EVENT_TS)} AS __ev, {feats}, "
            f"ROW_NUMBER() OVER (PARTITION BY e.{q(ENTITY_ROW)} ORDER BY {order}) AS __rn "
            f"FROM {pq.entity} AS e JOIN {v.history} AS h ON {' AND '.join(conds)})")
        select += [f"{a}.{q(f.feature)} AS {q(f.output)}" for f in v.features]
        if v.event_timestamp_output:
            select.append(f"{a}.__ev AS {q(v.event_timestamp_output)}")
        joins.append(f"LEFT JOIN {a} ON {a}.__rid = e.{q(ENTITY_ROW)} AND {a}.__rn = 1")
    if not pq.ordered:
        select.append(f"e.{q(ENTITY_ROW)}")
    return (f"WITH {', '.join(ctes)}\nSELECT {', '.join(select)}\nFROM {pq.entity} AS e\n" + "\n".join(joins)
            + _tail(pq))


def render(pq: PitQuery, *, dialect: str = "duckdb", strategy: str | None = None) -> str:
    """SQL for ``pq`` in ``dialect``. ``strategy`` defaults to ``asof`` where the dialect and mode allow it."""
    if pq.point_in_time not in ("event", "available"):
        raise ValueError(f"point_in_time must be 'event' or 'available', not {pq.point_in_time!r}")
    if strategy is None:
        strategy = "asof" if dialect == "duckdb" and pq.point_in_time == "event" else "window"
    if strategy == "asof":
        if dialect != "duckdb" or pq.point_in_time != "event":
            raise ValueError("the asof strategy needs DuckDB and point_in_time='event'")
        return _render_asof(pq)
    sql = _render_window(pq)
    return sql if dialect == "duckdb" else sqlglot.transpile(sql, read="duckdb", write=dialect)[0]


def latest_per_entity(history: str, join_keys: tuple[str, ...], columns: tuple[str, ...], end: str,
                      start: str | None = None, *, tie_level: int = 2, dialect: str = "duckdb",
                      ordered: bool = True) -> str:
    """Rows to materialize: per entity, the spec's winner at ``t = end`` among rows with event in [start, end], in
    join-key order (a rerun reads them in the same order, which is what lets materialize resume mid-view).

    The winner has its entity's greatest event time, so a narrow aggregate finds that time per entity and a join
    fetches the rows that have it; ``ROW_NUMBER()`` over the rest of the ordering tuple (created, write order) then
    picks one of them. The wide rows are never sorted, only these few candidates (one per entity unless rows tie on
    event time), and when the view's ``tie_level`` (HistoryFiles.tie_level) says no two rows of an entity share
    an event time, the candidate is the winner and that step is left out. Portable SQL: sqlglot renders it for other
    dialects.

    The TTL is not applied here: the newest row is written even when already expired, and online reads apply the
    TTL at read time, so online statuses (EXPIRED vs NOT_FOUND) match historical retrieval.

    ``ordered=False`` leaves the ORDER BY out, for a caller that partitions the rows by key itself and writes them in
    no particular order (an engine's workers): a global sort would be a shuffle for nothing."""
    def window(a: str = "") -> str:
        return " AND ".join([f"{a}{q(EVENT_TS)} <= {end}"] + ([f"{a}{q(EVENT_TS)} >= {start}"] if start else []))
    keys = ", ".join(q(k) for k in join_keys)
    latest = f"SELECT {keys}, max({q(EVENT_TS)}) AS __ev FROM {history} WHERE {window()} GROUP BY {keys}"
    on = " AND ".join([f"h.{q(k)} = m.{q(k)}" for k in join_keys] + [f"h.{q(EVENT_TS)} = m.__ev"])
    cols = (*join_keys, *ORDER, *columns)
    # The window is repeated on the second scan (every candidate is in it anyway): it lets that scan skip files and
    # row groups by their statistics.
    candidates = (f"SELECT {', '.join(f'h.{q(c)}' for c in cols)} FROM {history} AS h JOIN ({latest}) AS m ON {on} "
                  f"WHERE {window('h.')}")
    if tie_level == 0:
        sql = candidates + (f" ORDER BY {', '.join(f'h.{q(k)}' for k in join_keys)}" if ordered else "")
    else:
        order = ", ".join(f"{q(c)} DESC" for c in ORDER[1:])
        sql = (f"SELECT {', '.join(q(c) for c in cols)} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} "
               f"ORDER BY {order}) AS __rn FROM ({candidates}) AS c) AS w WHERE __rn = 1"
               + (f" ORDER BY {keys}" if ordered else ""))
    return sql if dialect == "duckdb" else sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
