"""Feast's push: rows for the views a push source feeds, written online, offline or both.

A push names a source (Feast's ``push_source_name``): here a feature view's name, or the ``name`` of the source
several views share; every such view gets the rows (as in Feast, where each view with that push source does). The
rows go through ingest's one validation (``ingest.prepare``) and write path:

    online_and_offline   ``FeatureStore.ingest``: the history append and the online upsert as one operation
    offline              ``FeatureStore.ingest(online=False)``: the history only; online catches up at materialize
    online               validated as ingest does, then the rows' newest values per entity upserted newest-wins
                         (``materialize.push_batch``), nothing appended to the history (Feast's default). An
                         aggregated view's tiles are computed from its history, so it takes only the other two.

Every view's rows are validated before anything is written for any of them: a push that fails validation wrote
nothing.
"""

from __future__ import annotations

import weakref
from typing import Any

from . import ingest as ingest_mod
from . import materialize as mat
from .aggregation.definition import AggregatedView
from .errors import NotFoundError, ValidationError
from .timeutil import new_batch_id, now as utc_now

MODES = ("online", "offline", "online_and_offline")


# Per registry state (the object the registry hands out while its version is unchanged), the views of each push
# name: decoding every view definition per push cost ~40 us of a 100-row push, twice in the feature server.
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def views_for(store, name: str, *, fresh: bool = True) -> list:
    """The views a push to ``name`` writes: the view of that name, else every view whose source is named so. The
    registry's newest version is read each time (a push right after an apply writes the new definitions); its
    views are decoded once per version. ``fresh=False``: the store's cached state (``REGISTRY_CACHE_SECONDS``
    old at most), for a caller that only needs a hint (the feature server's timestamp columns)."""
    state = store._registry_state(fresh=fresh)
    by_push = _VIEWS.get(state)
    if by_push is None:
        by_push = _VIEWS[state] = {}
    found = by_push.get(name)
    if found is None:
        views = state.list("feature_view")
        by_name = [v for v in views if v.name == name]
        found = by_name or [v for v in views if v.source is not None and getattr(v.source, "name", None) == name]
        if not found:
            raise NotFoundError(f"no feature view or push source named {name!r} (known views: "
                                f"{', '.join(sorted(v.name for v in views)) or 'none'})")
        by_push[name] = found
    return list(found)


def push(store, name: str, data: Any, *, to: str = "online", identify: bool = True,
         views: list | None = None) -> list[ingest_mod.IngestResult]:
    """``FeatureStore.push``. ``identify=False``: an online push's results have ``batch_id`` None instead of the
    rows' sha256 (~0.1 ms of a 100-row push), for a caller whose answer does not carry it (the feature server's);
    a push that appends to the history always has its identity (it is what makes a rerun a no-op). ``views``:
    ``views_for(store, name)`` when the caller has just read them (``FeatureStore.push``, which authorized those
    very views): the registry's folder listed once per push, not twice."""
    if to not in MODES:
        raise ValidationError(f"push to {to!r}: expected one of {', '.join(MODES)}", column="to")
    if views is None:
        views = views_for(store, name)
    if to != "offline":
        off = [v.name for v in views if not v.online]
        if off:
            raise ValidationError(f"push to {to!r}: views {off} are not online (online=False); push them to "
                                  f"'offline'", column="to")
    if to == "online":
        agg = [v.name for v in views if isinstance(v, AggregatedView)]
        if agg:
            raise ValidationError(f"push to 'online': aggregated views {agg} compute their online tiles from the "
                                  f"history; push them to 'online_and_offline'", column="to")
    write_time = utc_now()
    if to != "online":
        if len(views) > 1:  # every view's rows valid before the first is written (ingest validates one view)
            for v in views:
                ingest_mod.prepare(v, data, batch=0, write_time=write_time)
        return [store.ingest(v.name, data, online=to == "online_and_offline") for v in views]
    # Validate for every view first (prepare raises naming the column and row): nothing written on a bad push.
    prepared = [(v, b, ingest_mod.prepare(v, data, batch=b, write_time=write_time)) for v in views
                for b in (new_batch_id(),)]
    out = []
    for view, batch, rows in prepared:
        mat.push_batch(store, view, rows, batch)
        out.append(ingest_mod.IngestResult(view.name, None, rows.num_rows,
                                           ingest_mod.identity(rows, write_time, None) if identify else None))
    return out
