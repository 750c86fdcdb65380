"""Brute-force reference implementation of windowed aggregations, /work/shared/spec/transformations.md section 1.

Written only from the spec, in plain Python, favouring obviousness over speed: every value scans every row. It
imports nothing from skewless. Tests compare every offline engine and every online store against it.

Rows are ``tests.support.oracle.Row`` (key, event_ts, created_ts, write_order, values). Conventions, all from the
spec unless marked "oracle convention":

* Instants are compared as integer microseconds since the Unix epoch (UTC).
* Window at ``t`` for window ``w`` and hop ``h``: ``start = floor_h(t - w)`` (greatest multiple of ``h``, counted
  from the epoch, ``<= t - w``); a row is in the window when ``start < event_ts <= t``.
* ``point_in_time="available"``: only rows with ``created_ts <= t`` exist at ``t`` (for the window and for the
  choice among an event's versions).
* ``event_id``: rows of one entity with equal ``values[event_id]`` are versions of one event; among the visible
  versions the one with the greatest ``(created_ts, write_order)`` is the event, and it counts iff its own
  ``event_ts`` is in the window. Oracle convention: a row whose event_id is null is an event of its own.
* Values: ``None`` is null. NaN is a value: ``count`` counts it, and it propagates through sum, mean, min, max,
  var and stddev (the result is NaN); ``last`` / ``last_k`` return it as it is.
* ``sum`` of integers is exact and outside int64 raises ``OverflowError``; floats sum as float64.
* ``var`` / ``stddev``: sample (divisor n - 1), null when n < 2.
* ``last``: the in-window row with the greatest ``(event_ts, created_ts, write_order)``, its value even if null.
* ``last_k(k)``: the k most recent non-null values (same order), newest first; empty window -> ``[]``.
* Entity rows whose key has a null part get the empty-window values (oracle convention, as PIT gives nulls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .oracle import to_utc

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def us(ts) -> int:
    """An instant (datetime, aware or naive-as-UTC, or ISO string) as integer microseconds since the epoch."""
    return (to_utc(ts) - EPOCH) // timedelta(microseconds=1)


def dur_us(d) -> int:
    return d // timedelta(microseconds=1) if isinstance(d, timedelta) else int(d)


@dataclass(frozen=True)
class Agg:
    """One aggregation: ``function`` is count, count(*), sum, mean, min, max, var, stddev, last or last_k."""

    name: str
    column: str | None
    function: str
    window: timedelta
    k: int | None = None


def _is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def window_start(t_us: int, window_us: int, hop_us: int) -> int:
    return ((t_us - window_us) // hop_us) * hop_us  # Python's // floors toward -inf: a true floor


def events_in_window(rows, key, t, window, hop, *, point_in_time="event", event_id=None) -> list:
    """The rows that count for ``key`` at ``t``, oldest first by ``(event_ts, created_ts, write_order)``."""
    if point_in_time not in ("event", "available"):
        raise ValueError(f"point_in_time must be 'event' or 'available', got {point_in_time!r}")
    key = tuple(key)
    t_us = us(t)
    visible = [r for r in rows if tuple(r.key) == key
               and (point_in_time == "event" or us(r.created_ts) <= t_us)]
    if event_id is not None:
        versions: dict = {}
        singles = []
        for r in visible:
            eid = r.values.get(event_id)
            if eid is None:
                singles.append(r)
                continue
            best = versions.get(eid)
            if best is None or (us(r.created_ts), r.write_order) > (us(best.created_ts), best.write_order):
                versions[eid] = r
        visible = list(versions.values()) + singles
    start = window_start(t_us, dur_us(window), dur_us(hop))
    inside = [r for r in visible if start < us(r.event_ts) <= t_us]
    return sorted(inside, key=lambda r: (us(r.event_ts), us(r.created_ts), r.write_order))


def apply_function(function: str, rows, column, k=None):
    """The value of ``function`` over ``rows`` (already the window's rows, oldest first)."""
    if function == "count(*)":
        return len(rows)
    if function == "last":
        return rows[-1].values.get(column) if rows else None
    values = [r.values.get(column) for r in rows]
    present = [v for v in values if v is not None]
    if function == "count":
        return len(present)
    if function == "last_k":
        return list(reversed(present))[:k]
    if not present:
        return None
    if function in ("sum", "mean", "var", "stddev") and any(_is_nan(v) for v in present):
        return math.nan
    if function in ("min", "max"):
        if any(_is_nan(v) for v in present):
            return math.nan
        return min(present) if function == "min" else max(present)
    if function == "sum":
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            total = sum(present)
            if not INT64_MIN <= total <= INT64_MAX:
                raise OverflowError(f"sum {total} is outside int64")
            return total
        return math.fsum(float(v) for v in present)
    n = len(present)
    mean = math.fsum(float(v) for v in present) / n
    if function == "mean":
        return mean
    if n < 2:
        return None
    var = math.fsum((float(v) - mean) ** 2 for v in present) / (n - 1)
    if function == "var":
        return var
    if function == "stddev":
        return math.sqrt(var)
    raise ValueError(f"unknown function {function!r}")


def aggregate(rows, key, t, agg: Agg, hop, *, point_in_time="event", event_id=None):
    """The value of one aggregation for entity ``key`` at time ``t``."""
    if any(part is None for part in tuple(key)) or t is None:
        return apply_function(agg.function, [], agg.column, agg.k)
    inside = events_in_window(rows, key, t, agg.window, hop, point_in_time=point_in_time, event_id=event_id)
    return apply_function(agg.function, inside, agg.column, agg.k)


def training_set(rows, join_keys, aggs, hop, entity_rows, *, timestamp_column="event_timestamp",
                 point_in_time="event", event_id=None) -> list[dict]:
    """Every entity row, in order, all its columns kept, plus one column per aggregation (named ``agg.name``)."""
    out = []
    for er in entity_rows:
        result = dict(er)
        key = tuple(er.get(k) for k in join_keys)
        for a in aggs:
            if a.name in er:
                raise ValueError(f"feature name collision with entity column {a.name!r}")
            result[a.name] = aggregate(rows, key, er[timestamp_column], a, hop, point_in_time=point_in_time,
                                       event_id=event_id)
        out.append(result)
    return out


def same_value(a, b, rel=1e-9) -> bool:
    """Spec equality: floats within a relative error of 1e-9 (NaN equals NaN), everything else exact."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y, rel) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    return a == b
