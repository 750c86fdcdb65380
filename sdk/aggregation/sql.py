"""The SQL pieces of windowed aggregations every engine shares (DuckDB dialect; sqlglot renders the rest).

Event identity (transformations.md, "Events and their identity") is rendered here once: the offline training-set
query and the online tiles' partials both read a history through ``events``.

The training-set query (``render_training``) is one range join per aggregated view: each entity row ``(keys, t)``
meets the events of its keys with ``floor_h(t - w_max) < event <= t`` (the longest window), and one GROUP BY over
the entity row computes every requested aggregation at once, each shorter window a ``CASE`` on the event time.
Instants are compared as integer microseconds (``epoch_us``), exactly as ``definition.window_start_us`` counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot

from .. import dtypes
from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from ..sqlnames import ENTITY_ROW, q
from .definition import AggregatedView, result_dtype

# A history row's version is replaced at the created time of the next version of its event (null: never).
SUPERSEDED = "__superseded_us"
# The marker of the overflow error a query raises; the engine turns it into a typed error (``overflow_message``).
OVERFLOW = "skewless-aggregation-overflow:"
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def events(history: str, join_keys: tuple[str, ...], event_id: str | None, point_in_time: str = "event") -> str:
    """The rows of ``history`` that are events.

    ``point_in_time="event"`` (and online at ``now``): every version visible. Without ``event_id`` every row; with
    it, per ``(join keys, event_id)`` the version with the greatest ``(created_timestamp, write order)`` — its own
    event time included. A row whose event_id is null is an event of its own.

    ``point_in_time="available"``: which version is the event depends on each entity row's time ``t`` (only
    versions created by ``t`` are visible). Every row is returned with ``SUPERSEDED``: the created time (epoch
    microseconds) of the next version of its event in ``(created_timestamp, write order)``, null for the newest
    version and for rows without an event id. A row is the event at ``t`` iff ``created <= t`` and its successor
    is null or created after ``t`` (``visible_at``): the versions are totally ordered, so the newest visible one
    is exactly the one whose successor is not visible yet."""
    if event_id is None:
        return history
    part = ", ".join(q(k) for k in (*join_keys, event_id))
    if point_in_time == "available":
        order = ", ".join(q(c) for c in (CREATED_TS, WRITE_BATCH, WRITE_ROW))
        return (f"(SELECT *, CASE WHEN {q(event_id)} IS NOT NULL THEN epoch_us(LEAD({q(CREATED_TS)}) OVER "
                f"(PARTITION BY {part} ORDER BY {order})) END AS {SUPERSEDED} FROM {history} AS h)")
    order = ", ".join(f"{q(c)} DESC" for c in (CREATED_TS, WRITE_BATCH, WRITE_ROW))
    return (f"(SELECT * FROM {history} AS h QUALIFY {q(event_id)} IS NULL OR "
            f"ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {order}) = 1)")


def visible_at(alias: str, t_us: str, event_id: str | None, point_in_time: str) -> list[str]:
    """The conditions under which a row of ``events(...)`` (as ``alias``, with ``__cr`` its created time in epoch
    microseconds) is an event at the entity row's time ``t_us``."""
    if point_in_time != "available":
        return []
    conds = [f"{alias}.__cr <= {t_us}"]
    if event_id is not None:
        conds.append(f"({alias}.{SUPERSEDED} IS NULL OR {alias}.{SUPERSEDED} > {t_us})")
    return conds


@dataclass(frozen=True)
class AggColumn:
    output: str  # result column name
    function: str
    column: str | None
    window_us: int
    k: int | None
    column_dtype: dtypes.DType | None

    @property
    def dtype(self) -> dtypes.DType:
        return result_dtype(self.function, self.column_dtype)


@dataclass(frozen=True)
class AggViewQuery:
    view: str
    join_keys: tuple[str, ...]
    hop_us: int
    event_id: str | None
    history: str  # canonical history relation (join keys, timestamps, write order, event columns)
    aggs: tuple[AggColumn, ...]
    tie_level: int = 2


def agg_view_query(view: AggregatedView, features: list[str], outputs: list[str], history: str,
                   tie_level: int = 2) -> AggViewQuery:
    columns = {f.name: f.dtype for f in view.schema}
    aggs = []
    for feature, output in zip(features, outputs):
        a = view.aggregation(feature)
        aggs.append(AggColumn(output, a.function, a.column, a.window_us, a.k,
                              columns.get(a.column) if a.column else None))
    return AggViewQuery(view.name, tuple(view.join_keys), view.hop_us, view.event_id, history, tuple(aggs), tie_level)


def _floor(x: str, h: int) -> str:
    """The greatest multiple of ``h`` <= x (``%`` truncates toward zero in SQL: made non-negative first)."""
    return f"({x} - ((({x}) % {h}) + {h}) % {h})"


def overflow_message(view: str, output: str) -> str:
    return f"{OVERFLOW}aggregated view {view!r}: sum {output!r} is outside Int64 for some entity row"


def render_training(entity: str, timestamp_column: str, vq: AggViewQuery, point_in_time: str = "event", *,
                    dialect: str = "duckdb") -> str:
    """Per entity row of ``entity`` (any order, one row each): the aggregations of ``vq`` at the row's time, then
    ``ENTITY_ROW``. Empty windows (no event, null keys or time) give count 0, last_k [], others null."""
    if point_in_time not in ("event", "available"):
        raise ValueError(f"point_in_time must be 'event' or 'available', not {point_in_time!r}")
    h = vq.hop_us
    windows = sorted({a.window_us for a in vq.aggs})
    longest = windows[-1]
    starts = {w: f"__s{i}" for i, w in enumerate(windows)}
    keys = [q(k) for k in vq.join_keys]
    ent = (f"SELECT {q(ENTITY_ROW)}, {', '.join(keys)}, __t, "
           + ", ".join(f"{_floor(f'__t - {w}', h)} AS {s}" for w, s in starts.items())
           + f" FROM (SELECT *, epoch_us({q(timestamp_column)}) AS __t FROM {entity}) AS e0")
    used = sorted({a.column for a in vq.aggs if a.column is not None})
    extra = [SUPERSEDED] if point_in_time == "available" and vq.event_id is not None else []
    hist = (f"SELECT {', '.join(keys)}, epoch_us({q(EVENT_TS)}) AS __ev, epoch_us({q(CREATED_TS)}) AS __cr, "
            f"{q(WRITE_BATCH)} AS __b, {q(WRITE_ROW)} AS __r"
            + "".join(f", {q(c)}" for c in (*used, *extra))
            + f" FROM {events(vq.history, vq.join_keys, vq.event_id, point_in_time)} AS h0")
    on = ([f"e.{k} = h.{k}" for k in keys] + ["h.__ev <= e.__t", f"h.__ev > e.{starts[longest]}"]
          + visible_at("h", "e.__t", vq.event_id, point_in_time))
    # The ordering tuple of `last`: event time alone when no two rows of an entity share one (tie level 0).
    order = "h.__ev" if vq.tie_level == 0 else "{'e': h.__ev, 'c': h.__cr, 'b': h.__b, 'r': h.__r}"
    inner, outer = [], []
    for i, a in enumerate(vq.aggs):
        inside = None if a.window_us == longest else f"h.__ev > e.{starts[a.window_us]}"
        raw = f"__a{i}"
        inner_exprs, final = _function(a, inside, order, raw, vq.view)
        inner += [f"{e} AS {n}" for n, e in inner_exprs]
        outer.append(f"{final} AS {q(a.output)}")
    return_sql = (f"SELECT {', '.join(outer)}, {q(ENTITY_ROW)} FROM (SELECT e.{q(ENTITY_ROW)}, {', '.join(inner)} "
                  f"FROM ({ent}) AS e LEFT JOIN ({hist}) AS h ON {' AND '.join(on)} "
                  f"GROUP BY e.{q(ENTITY_ROW)}) AS g")
    return return_sql if dialect == "duckdb" else sqlglot.transpile(return_sql, read="duckdb", write=dialect)[0]


def _function(a: AggColumn, inside: str | None, order: str, raw: str, view: str) -> tuple[list[tuple[str, str]], str]:
    """(the GROUP BY's aggregates as (name, expr), the final expression over them) for one aggregation."""
    def when(value: str, also: str | None = None) -> str:
        cond = " AND ".join(c for c in (inside, also) if c)
        return f"CASE WHEN {cond} THEN {value} END" if cond else value

    col = f"h.{q(a.column)}" if a.column else None
    out_sql = a.dtype.sql
    fn = a.function
    if fn == "count(*)":
        return [(raw, f"count({when('h.__ev')})")], raw
    if fn == "count":
        return [(raw, f"count({when(col)})")], raw
    if fn == "sum" and a.dtype is dtypes.Int64:
        lo, hi = _INT64
        msg = overflow_message(view, a.output).replace("'", "''")
        # Summed as a 128-bit integer (DuckDB's own sum of BIGINT; DECIMAL(38,0) elsewhere): exact, so the range
        # check sees the true sum.
        return [(raw, f"sum({when(f'CAST({col} AS HUGEINT)')})")], (f"CASE WHEN {raw} < {lo} OR {raw} > {hi} THEN error('{msg}') "
                                              f"ELSE CAST({raw} AS BIGINT) END")
    if fn == "sum":
        return [(raw, f"sum({when(f'CAST({col} AS DOUBLE)')})")], raw
    if fn == "mean":
        return [(raw, f"avg({when(f'CAST({col} AS DOUBLE)')})")], raw
    floats = a.column_dtype in (dtypes.Float32, dtypes.Float64)
    if fn in ("var", "stddev", "min"):
        parts = [(raw, f"min({when(col)})" if fn == "min" else
                  f"{'var_samp' if fn == 'var' else 'stddev_samp'}({when(f'CAST({col} AS DOUBLE)')})")]
        if not floats:
            return parts, raw
        # NaN propagates, also through a single value (min ignores it, var/stddev of one value are null): DuckDB
        # orders NaN above every number, so the max is NaN iff a NaN is in the window.
        parts.append((f"{raw}_hi", f"max({when(col)})"))
        return parts, f"CASE WHEN isnan({raw}_hi) THEN {raw}_hi ELSE {raw} END"
    if fn == "max":
        return [(raw, f"max({when(col)})")], raw
    if fn == "last":
        # arg_max_null keeps a null value of the newest row (last includes nulls); a null ordering key (outside the
        # window) drops the row.
        return [(raw, f"arg_max_null({col}, {when(order)})")], raw
    if fn == "last_k":
        return [(raw, f"arg_max({col}, {when(order, f'{col} IS NOT NULL')}, {int(a.k)})")], \
            f"COALESCE({raw}, CAST([] AS {out_sql}[]))"
    raise ValueError(f"unknown aggregation function {fn!r}")
