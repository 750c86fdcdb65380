"""Online values of an aggregated view: its tiles read in one call and combined at ``now``.

Statuses (docs/concepts: aggregated views): every output of an entity is ``PRESENT`` with the value at ``now``,
the spec's empty-window value (0, null, []) when no event is in its window; the entity's event timestamp is its
newest event in the longest window (None when there is none). ``NOT_FOUND`` only for a key with a null part (its
outputs hold the empty-window values, as offline), and (outputs null) for a read "in the past": a ``now`` before the write of the tile holding it, when that tile has events
after ``now`` (the store kept no raw events to leave them out, so it cannot give the value at that ``now``).
"""

from __future__ import annotations

from typing import Sequence

from ..online.base import NOT_FOUND, PRESENT, ColumnRead, Key
from . import partials
from .definition import AggregatedView
from .tiles import ReadPlan

_SPECS: dict[int, tuple[AggregatedView, partials.ColumnSpecs]] = {}


def _specs(view: AggregatedView) -> partials.ColumnSpecs:
    hit = _SPECS.get(id(view))
    if hit is None or hit[0] is not view:
        if len(_SPECS) > 256:
            _SPECS.clear()
        hit = _SPECS[id(view)] = (view, partials.ColumnSpecs(view))
    return hit[1]


def read(online, view: AggregatedView, feats: Sequence[str], keys: Sequence[Key], now_us: int) -> ColumnRead:
    """The outputs ``feats`` of ``view`` for each key at ``now_us`` (one ``read_tiles`` call)."""
    specs = _specs(view)
    plan = ReadPlan(view, now_us)
    aggs = [view.aggregation(f) for f in feats]
    idx = {a.name: i for i, a in enumerate(view.aggregations)}
    longest = max(range(len(view.aggregations)), key=lambda i: view.aggregations[i].window_us)
    blobs = online.read_tiles(view, list(keys), plan.tiles)
    columns: list[list] = [[] for _ in feats]
    event_us: list[int | None] = []
    statuses: list[str] = []
    for key, found in zip(keys, blobs):
        if None in key:  # the empty-window values, as the offline value of such a row (no entity holds them)
            _missing(columns, event_us, statuses, [partials.empty_value(a.function) for a in aggs])
            continue
        states = {t: partials.decode(b) for t, b in found.items()}
        last = states.get((0, plan.cut))
        if last is not None:
            last = partials.cut(last, now_us, specs)
            if last is False:
                _missing(columns, event_us, statuses, [None] * len(aggs))
                continue
        for col, a in zip(columns, aggs):
            got = [s for s in (states.get(t) for t in plan.covers[idx[a.name]]) if s is not None]
            if last is not None:
                got.append(last)
            col.append(partials.value(a.function, specs.index.get(a.column), a.k, got, specs, view.name, a.name))
        in_longest = [s for s in (states.get(t) for t in plan.covers[longest]) if s is not None]
        if last is not None:
            in_longest.append(last)
        event_us.append(max(s[partials.MAX_EV] for s in in_longest) if in_longest else None)
        statuses.append(PRESENT)
    return ColumnRead(view.name, list(feats), columns, event_us, statuses)


def _missing(columns: list[list], event_us: list, statuses: list, values: list) -> None:
    for c, v in zip(columns, values):
        c.append(v)
    event_us.append(None)
    statuses.append(NOT_FOUND)
