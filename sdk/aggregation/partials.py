"""Per-tile partial aggregates: computed from a tile's events, encoded for a store, combined at read time.

One state per (entity, level, tile) holds what every aggregation of the view needs, per aggregated column:
``count`` (non-null values, NaN included), a NaN flag (NaN propagates through sum, mean, var, stddev, min and max,
so the other numbers are kept over the non-NaN values and ignored once the flag is set), ``sum`` (Python int for
integer columns: exact; floats: ``math.fsum``), ``mean`` and ``M2`` (merged with Chan's formula for var/stddev),
``min``/``max``, the value of the tile's newest row (``last``, null included) and the ``k`` newest non-null values
with their ordering keys (``last_k``, ``k`` the largest of the view's ``last_k`` on that column). Per tile: the row
count (``count(*)``), the greatest event time, the newest row's ordering key ``(event, created, batch, row)`` and,
for a fine tile holding events later than the time it was written, those raw events (``cut`` needs them to leave out
events after a read's ``now``).

Timestamps are integer microseconds throughout (event values of UnixTimestamp columns too; turned into datetimes
when a value is returned). States are tuples of ints, floats, strings, bytes, bools and None, encoded with
``marshal`` (C speed both ways, exact ints of any size, no pickle code execution).
"""

from __future__ import annotations

import marshal
import math
from typing import Any, Sequence

from .. import dtypes
from ..errors import ValidationError
from ..online.base import from_us
from .definition import NUMERIC, ORDERED, AggregatedView

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# state = (rows, max_ev, last_key, cols, raw); col = (count, nan, sum, mean, m2, min, max, last, last_k)
ROWS, MAX_EV, LAST_KEY, COLS, RAW = range(5)
COUNT, NAN, SUM, MEAN, M2, MIN, MAX, LAST, LAST_K = range(9)

Event = tuple  # (event_us, created_us, batch, row, (value per aggregated column))


class ColumnSpecs:
    """The aggregated columns of a view, in a fixed order (the state's ``cols``), and what each needs."""

    def __init__(self, view: AggregatedView):
        dt = {f.name: f.dtype for f in view.schema}
        self.names: list[str] = list(dict.fromkeys(a.column for a in view.aggregations if a.column is not None))
        self.dtypes = [dt[c] for c in self.names]
        self.numeric = [d in NUMERIC for d in self.dtypes]
        self.ordered = [d in ORDERED for d in self.dtypes]
        self.integer = [d in (dtypes.Int32, dtypes.Int64) for d in self.dtypes]
        self.timestamp = [d is dtypes.UnixTimestamp for d in self.dtypes]
        self.k = [max([a.k for a in view.aggregations if a.column == c and a.function == "last_k"] or [0])
                  for c in self.names]
        self.index = {c: i for i, c in enumerate(self.names)}


def layout(view) -> tuple | None:
    """What the stored tiles of ``view`` depend on (None: not an aggregated view). Stored partials of another layout
    cannot be read (their columns, levels or tile bounds differ): the view's tiles are dropped and rebuilt."""
    if not isinstance(view, AggregatedView):
        return None
    from .tiles import level_count

    specs = ColumnSpecs(view)
    return (view.hop_us, level_count(view), view.event_id, tuple(specs.names),
            tuple(d.name for d in specs.dtypes), tuple(specs.k))


def _is_nan(v: Any) -> bool:
    return v != v  # only NaN is unequal to itself


def state_of(events: Sequence[Event], specs: ColumnSpecs, written_us: int | None) -> tuple | None:
    """The state of a tile holding ``events`` (sorted by their ordering key, oldest first); None for no events.
    ``written_us``: the time the state is written; when an event is later, the raw events are kept (None: never)."""
    if not events:
        return None
    newest = events[-1]
    max_ev = max(e[0] for e in events)
    cols = []
    for i in range(len(specs.names)):
        vals = [e[4][i] for e in events]
        present = [v for v in vals if v is not None]
        nan = specs.numeric[i] and any(_is_nan(v) for v in present)
        clean = [v for v in present if not _is_nan(v)] if nan else present
        total = mean = m2 = lo = hi = None
        if specs.numeric[i] and clean:
            total = sum(clean) if specs.integer[i] else math.fsum(clean)
            mean = math.fsum(clean) / len(clean)
            m2 = math.fsum((v - mean) ** 2 for v in clean)
        if specs.ordered[i] and clean:
            lo, hi = min(clean), max(clean)
        k = specs.k[i]
        last_k = ()
        if k:
            last_k = tuple((e[:4], e[4][i]) for e in reversed(events) if e[4][i] is not None)[:k]
        cols.append((len(present), nan, total, mean, m2, lo, hi, newest[4][i], last_k))
    raw = tuple(events) if written_us is not None and max_ev > written_us else None
    return (len(events), max_ev, newest[:4], tuple(cols), raw)


def encode(state: tuple) -> bytes:
    return marshal.dumps(state, 4)


def decode(blob: bytes) -> tuple:
    return marshal.loads(blob)


def cut(state: tuple, now_us: int, specs: ColumnSpecs) -> tuple | None | bool:
    """The state of the same tile without its events after ``now``: the state itself when none is later, else the
    state of its kept raw events up to ``now`` (None: no event left); False when events are later than ``now`` but
    the state has no raw events (it was written after ``now``: a read in the past of a write)."""
    if state[MAX_EV] <= now_us:
        return state
    raw = state[RAW]
    if raw is None:
        return False
    return state_of([e for e in raw if e[0] <= now_us], specs, None)


def column(states: list[tuple], col: int | None, specs: ColumnSpecs) -> tuple:
    """What every function of column ``col`` reads of ``states``: (their column states with a value, the count of
    non-null values, whether one is NaN, the sum: exact int or fsum, None for a non-numeric column). Computed once
    per (window, column) and shared by its functions."""
    if col is None:
        return (), 0, False, None
    cs = [c for c in (s[COLS][col] for s in states) if c[COUNT]]
    total = None
    if specs.numeric[col]:
        total = sum([c[SUM] for c in cs if c[SUM] is not None]) if specs.integer[col] else \
            math.fsum([c[SUM] for c in cs if c[SUM] is not None])
    return cs, sum([c[COUNT] for c in cs]), any([c[NAN] for c in cs]), total


def value(function: str, col: int | None, k: int | None, states: list[tuple], specs: ColumnSpecs, view: str,
          output: str, merged: tuple | None = None) -> Any:
    """The aggregation's value over the union of ``states``' tiles (transformations.md's table; empty windows
    give 0, null or []). ``merged``: ``column(states, col)`` when the caller has it."""
    if function == "count(*)":
        return sum(s[ROWS] for s in states)
    if function == "last":
        if not states:
            return None
        best = max(states, key=lambda s: s[LAST_KEY])
        return _out(best[COLS][col][LAST], specs, col)
    cs, n, nan, total = merged or column(states, col, specs)
    if function == "count":
        return n
    if function == "last_k":
        pairs = sorted((p for c in cs for p in c[LAST_K]), key=lambda p: p[0], reverse=True)[:k]
        return [_out(v, specs, col) for _, v in pairs]
    if n == 0:
        return None
    if nan:
        return math.nan
    if function in ("min", "max"):
        pick = min if function == "min" else max
        return _out(pick(c[MIN if function == "min" else MAX] for c in cs), specs, col)
    if function == "mean":
        return total / n
    if function == "sum":
        if specs.integer[col] and not INT64_MIN <= total <= INT64_MAX:
            raise ValidationError(f"aggregation {view}:{output}: sum {total} overflows Int64")
        return total
    if n < 2:
        return None  # var / stddev: sample variance, divisor n - 1
    cn, cmean, cm2 = 0, 0.0, 0.0
    for c in cs:  # Chan et al.: merge (n, mean, M2) pairwise
        bn, bmean, bm2 = c[COUNT], c[MEAN], c[M2]
        tot = cn + bn
        delta = bmean - cmean
        cmean += delta * bn / tot
        cm2 += bm2 + delta * delta * cn * bn / tot
        cn = tot
    var = cm2 / (n - 1)
    return var if function == "var" else math.sqrt(var)


def _out(v: Any, specs: ColumnSpecs, col: int) -> Any:
    return v if v is None or not specs.timestamp[col] else from_us(v)


def empty_value(function: str) -> Any:
    """The spec's value of an empty window."""
    return 0 if function in ("count", "count(*)") else [] if function == "last_k" else None
