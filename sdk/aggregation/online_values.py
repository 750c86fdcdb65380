"""Online values of an aggregated view: its tiles read in one call and combined at ``now``.

Statuses (docs/concepts: aggregated views): every output of an entity is ``PRESENT`` with the value at ``now``,
the spec's empty-window value (0, null, []) when no event is in its window; the entity's event timestamp is its
newest event in the longest window (None when there is none). ``NOT_FOUND`` only for a key with a null part (its
outputs hold the empty-window values, as offline), and (outputs null) for a read "in the past": a ``now`` before the write of the tile holding it, when that tile has events
after ``now`` (the store kept no raw events to leave them out, so it cannot give the value at that ``now``).
"""

from __future__ import annotations

import math
from marshal import loads  # partials.decode, without a call in between
from operator import itemgetter
from typing import Sequence

from ..online.base import NOT_FOUND, PRESENT, ColumnRead, Key
from . import partials
from .definition import AggregatedView
from .tiles import ReadPlan

class _Reader:
    """What reading outputs ``feats`` of one view needs, prepared once: the distinct windows, the outputs grouped by
    (window, column) (one merge of a column's partials serves all its functions over that window), and the read
    plan of the hop tile ``now`` is in (a plan depends on ``now`` only through it)."""

    def __init__(self, view: AggregatedView, feats: tuple[str, ...]):
        self.view = view
        self.specs = partials.ColumnSpecs(view)
        self.aggs = [view.aggregation(f) for f in feats]
        self.windows = list(dict.fromkeys(a.window_us for a in self.aggs))
        groups: dict[tuple, list] = {}
        for pos, a in enumerate(self.aggs):
            col = self.specs.index.get(a.column)
            groups.setdefault((self.windows.index(a.window_us), col), []).append((pos, a.function, a.k, a.name))
        self.groups = [(wi, col, _column_kernel(col, self.specs, outs),
                        [(pos, _fast(fn, col, self.specs, view.name, out), fn, k, out) for pos, fn, k, out in outs])
                       for (wi, col), outs in groups.items()]
        self.longest = self.windows.index(max(self.windows)) if self.windows else None
        self.current: tuple = (None, None)  # (hop tile of now, its plan): one attribute, swapped atomically

    def plan_for(self, now_us: int) -> ReadPlan:
        h = self.view.hop_us
        at = (now_us // h, -((-now_us) // h))  # floor and ceiling of now / h: the window starts and the cut tile
        have, plan = self.current
        if at != have:
            plan = ReadPlan(self.view, now_us, self.windows)
            self.current = (at, plan)
        return plan


_COUNT, _NAN, _SUM = itemgetter(partials.COUNT), itemgetter(partials.NAN), itemgetter(partials.SUM)


def _column_kernel(col, specs: partials.ColumnSpecs, outs: list):
    """``partials.column`` of one (window, column), specialised: what the group's functions read, nothing more."""
    if col is None:
        return lambda states: ((), 0, False, None)
    numeric = specs.numeric[col]
    needs_sum = numeric and any(fn not in ("count", "min", "max", "last", "last_k") for _, fn, _, _ in outs)
    add = sum if specs.integer[col] else math.fsum
    cols = itemgetter(partials.COLS)

    def kernel(states):
        cs = [c for c in (cols(s)[col] for s in states) if c[0]]
        nan = numeric and any(map(_NAN, cs))
        total = add([v for v in map(_SUM, cs) if v is not None]) if needs_sum else None
        return cs, sum(map(_COUNT, cs)), nan, total
    return kernel


def _fast(function: str, col, specs: partials.ColumnSpecs, view: str, output: str):
    """``partials.value`` of the plain functions as a function of ``column``'s result (None: use ``value``)."""
    if col is None or function not in ("count", "sum", "mean", "min", "max"):
        return None
    if function == "count":
        return lambda cs, n, nan, total: n
    if function == "mean":
        return lambda cs, n, nan, total: None if n == 0 else math.nan if nan else total / n
    if function == "sum":
        if specs.integer[col]:
            return None  # Int64 overflow check: value's
        return lambda cs, n, nan, total: None if n == 0 else math.nan if nan else total
    if specs.timestamp[col] or not specs.numeric[col]:
        return None
    pick, at = (min, partials.MIN) if function == "min" else (max, partials.MAX)
    get = itemgetter(at)
    return lambda cs, n, nan, total: None if n == 0 else math.nan if nan else pick(map(get, cs))


_READERS: dict[tuple, _Reader] = {}
# Decoded partials by their encoded bytes: a tile's partial changes only by a write (new bytes), and the tiles of hot
# entities and of the coarse levels are read again and again, so a lookup (hash of ~100 bytes) replaces most
# unmarshal calls. Keyed by content, never stale; cleared when full (a bound on memory, ~10 MB).
_DECODED: dict[bytes, tuple] = {}
_DECODED_MAX = 20_000


def _decode(blob: bytes) -> tuple:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    state = _DECODED[blob] = loads(blob)
    return state


def _reader(view: AggregatedView, feats: Sequence[str]) -> _Reader:
    ck = (id(view), tuple(feats))
    hit = _READERS.get(ck)
    if hit is None or hit.view is not view:
        if len(_READERS) > 256:
            _READERS.clear()
        hit = _READERS[ck] = _Reader(view, tuple(feats))
    return hit


def read(online, view: AggregatedView, feats: Sequence[str], keys: Sequence[Key], now_us: int) -> ColumnRead:
    """The outputs ``feats`` of ``view`` for each key at ``now_us`` (one ``read_tiles`` call)."""
    r = _reader(view, feats)
    specs, aggs, plan = r.specs, r.aggs, r.plan_for(now_us)
    blobs = online.read_tiles(view, list(keys), plan.tiles)
    columns: list[list] = [[] for _ in feats]
    event_us: list[int | None] = []
    statuses: list[str] = []
    decoded = _DECODED.get
    value, max_ev, name = partials.value, itemgetter(partials.MAX_EV), view.name
    covers, groups, longest = plan.covers, r.groups, r.longest
    for key, found in zip(keys, blobs):
        if None in key:  # the empty-window values, as the offline value of such a row (no entity holds them)
            _missing(columns, event_us, statuses, [partials.empty_value(a.function) for a in aggs])
            continue
        states = {t: decoded(b) or _decode(b) for t, b in found.items()}
        last = states.get((0, plan.cut))
        if last is not None:
            last = partials.cut(last, now_us, specs)
            if last is False:
                _missing(columns, event_us, statuses, [None] * len(aggs))
                continue
        per_window = []
        for cov in covers:
            got = [s for s in map(states.get, cov) if s is not None]
            if last is not None:
                got.append(last)
            per_window.append(got)
        for wi, col, kernel, outs in groups:
            got = per_window[wi]
            merged = kernel(got)
            for pos, fast, fn, k, out in outs:
                columns[pos].append(fast(*merged) if fast is not None else
                                    value(fn, col, k, got, specs, name, out, merged))
        in_longest = per_window[longest] if aggs else None
        event_us.append(max(map(max_ev, in_longest)) if in_longest else None)
        statuses.append(PRESENT)
    return ColumnRead(view.name, list(feats), columns, event_us, statuses)


def _missing(columns: list[list], event_us: list, statuses: list, values: list) -> None:
    for c, v in zip(columns, values):
        c.append(v)
    event_us.append(None)
    statuses.append(NOT_FOUND)
