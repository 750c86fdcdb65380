"""Online reads: entity rows in, values + statuses + event timestamps out.

The per-call work is kept to what depends on the call: everything that depends only on the resolved views (column
names, the key normaliser of each distinct set of join keys) is prepared once per resolved list and reused (see
``_plan_for``); the store and serving both pass the same list object on every call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

import pandas as pd

from . import dtypes
from .definitions import FeatureView
from .errors import ValidationError
from .pii import show
from .aggregation import online_values
from .aggregation.definition import AggregatedView
from .online.base import OnlineStore, to_us


def _is_null(v: Any) -> bool:
    """None and pandas' nulls (NaN, pd.NA, NaT) are null keys: they read as NOT_FOUND, like in training sets."""
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


# The values an integer key can hold: a key outside them cannot be stored, so it is an input error (a store would
# otherwise raise its own untyped error, e.g. SQLite's OverflowError, in the middle of a batched read).
INT_RANGE = {"Int32": (-2**31, 2**31 - 1), "Int64": (-2**63, 2**63 - 1)}


def _norm(v: Any, dt: dtypes.DType, key: str, row: int, pii: bool = False):
    """``v`` as a ``dt`` key, or a ValidationError naming it (``***`` for a PII key: skewless.pii)."""
    if _is_null(v):
        return None
    try:
        if dt in (dtypes.Int32, dtypes.Int64):
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            n = int(v)
            lo, hi = INT_RANGE[dt.name]
            if not lo <= n <= hi:
                raise ValidationError(f"entity row {row}: {key}={show(v, pii)} is out of the {dt} range [{lo}, {hi}]",
                                      column=key, row=row)
            return n
        if dt is dtypes.String:
            return v if isinstance(v, str) else str(v)
        if dt in (dtypes.Float32, dtypes.Float64):
            return float(v)
        if dt is dtypes.Bool:
            return bool(v)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"entity row {row}: {key}={show(v, pii)} is not a valid {dt}", column=key,
                              row=row) from None
    return v


# The Python type a join-key value of a dtype already is once normalised: such a value is its own normal form
# (``_norm`` would return it unchanged), so the fast paths below keep it without the call. Exact types only: bool is
# an int subclass and numpy scalars are not these types, so both still go through ``_norm``.
_NORMAL_TYPE = {"Int32": int, "Int64": int, "String": str, "Bool": bool}


def _rows_keys(view_name: str, spec: list[tuple[str, dtypes.DType, type | None, tuple | None]],
               entity_rows: Sequence[dict], hidden: frozenset[str] = frozenset()):
    """The general normaliser: any number of join keys, errors naming the row, the key and the view."""
    out = []
    for i, r in enumerate(entity_rows):
        try:
            out.append(tuple([v if type(v) is t and (rng is None or rng[0] <= v <= rng[1])
                              else _norm(v, dt, k, i, k in hidden) for k, dt, t, rng in spec for v in (r[k],)]))
        except KeyError as exc:
            raise ValidationError(f"entity row {i} lacks join key {exc.args[0]!r} needed by view {view_name!r}",
                                  column=exc.args[0], row=i) from None
        except TypeError:
            raise ValidationError(f"entity row {i} must be a dict of join keys", row=i) from None
    return out


def _normaliser(view: FeatureView) -> Callable[[Sequence[dict]], list[tuple]]:
    """``entity_rows -> [key tuple per row]`` for ``view``'s join keys, specialised for the common one-key case."""
    spec = [(k, dt, _NORMAL_TYPE.get(dt.name), INT_RANGE.get(dt.name)) for k, dt in view.join_key_dtypes.items()]
    name, hidden = view.name, view.pii_names
    if len(spec) != 1:
        return lambda rows: _rows_keys(name, spec, rows, hidden)
    key, dt, t, rng = spec[0]
    lo, hi = rng or (None, None)

    def one_key(rows: Sequence[dict]) -> list[tuple]:
        try:
            vals = [r[key] for r in rows]
        except (KeyError, TypeError):  # a row without the key or not a dict: the general path names the row
            return _rows_keys(name, spec, rows, hidden)
        out = [(v,) for v in vals if type(v) is t]
        if len(out) == len(vals) and (rng is None or not vals or lo <= min(vals) and max(vals) <= hi):
            return out  # (min/max run in C: the range check costs little next to building the tuples)
        return [(v,) if type(v) is t and (rng is None or lo <= v <= hi) else (_norm(v, dt, key, i, key in hidden),)
                for i, v in enumerate(vals)]
    return one_key


def entity_keys(view: FeatureView, entity_rows: Sequence[dict]) -> list[tuple]:
    return _normaliser(view)(entity_rows)


class OnlineResponse:
    """Values, statuses and event timestamps per requested feature, one entry per entity row."""

    def __init__(self, entity_rows: Sequence[dict], columns: dict[str, list], statuses: dict[str, list[str]],
                 event_timestamps: dict[str, list[datetime | None]] | Callable[[], dict]):
        self.entity_rows = list(entity_rows)
        self.values = columns
        self.statuses = statuses
        self._event_timestamps = event_timestamps  # or a function that builds them on first use

    @property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Per feature, each value's event time (None unless PRESENT); the views' lists are shared by their features."""
        if callable(self._event_timestamps):
            self._event_timestamps = self._event_timestamps()
        return self._event_timestamps

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list]:
        """Feast's shape: join keys and features as columns."""
        keys = {k for r in self.entity_rows for k in r}
        out: dict[str, list] = {k: [r.get(k) for r in self.entity_rows] for k in sorted(keys)}
        out.update(self.values)
        if include_event_timestamps:
            out.update({f"{n}__event_timestamp": v for n, v in self.event_timestamps.items()})
        return out

    def to_pandas(self, include_event_timestamps: bool = False):
        import pandas as pd

        return pd.DataFrame(self.to_dict(include_event_timestamps))

    def to_df(self, include_event_timestamps: bool = False):  # Feast's name
        return self.to_pandas(include_event_timestamps)


class _Plan:
    """What a read of one resolved list needs besides the rows: a normaliser per distinct (join keys, dtypes),
    each view's group and its column names. ``source`` is checked on every use so a changed list is re-planned."""

    __slots__ = ("source", "normalisers", "views", "names", "duplicate")

    def __init__(self, resolved: list[tuple[FeatureView, list[str]]], full_feature_names: bool):
        self.source = [(view, feats, list(feats), view.name, view._join_key_dtypes) for view, feats in resolved]
        groups: dict[tuple, int] = {}
        self.normalisers: list[Callable] = []
        self.views: list[tuple[FeatureView, list[str], int, tuple[str, ...]]] = []
        self.duplicate: str | None = None
        self.names: list[str] = []  # every column, views in order
        seen: set[str] = set()
        for view, feats in resolved:
            # Views with the same join keys and dtypes get the same key tuples: normalised once per call.
            sig = tuple((k, dt.name) for k, dt in view.join_key_dtypes.items())
            if sig not in groups:
                groups[sig] = len(self.normalisers)
                self.normalisers.append(_normaliser(view))
            names = tuple(f"{view.name}__{f}" if full_feature_names else f for f in feats)
            for n in names:
                if n in seen and self.duplicate is None:
                    self.duplicate = f"feature name {n!r} appears in two views; use full_feature_names=True"
                seen.add(n)
            self.names += names
            self.views.append((view, feats, groups[sig], names))

    def fits(self, resolved) -> bool:
        src = self.source
        if len(resolved) != len(src):
            return False
        for (view, feats), (v0, f0, copy, name, jkd) in zip(resolved, src):
            if view is not v0 or feats is not f0 or feats != copy or view.name != name \
                    or view._join_key_dtypes is not jkd:
                return False
        return True


_PLANS: dict[tuple[int, bool], tuple[Any, _Plan]] = {}
_MAX_PLANS = 256


def _plan_for(resolved, full_feature_names: bool) -> _Plan:
    # Keyed by the list's identity; the entry holds the list itself, so its id cannot be reused while cached.
    key = (id(resolved), full_feature_names)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is resolved and hit[1].fits(resolved):
        return hit[1]
    plan = _Plan(resolved, full_feature_names)
    if len(_PLANS) >= _MAX_PLANS:  # callers building a new list per call: stay bounded
        _PLANS.clear()
    _PLANS[key] = (resolved, plan)
    return plan


def _read_columns(online: OnlineStore, requests: list, now: datetime) -> list:
    """``online.read_columns``, with aggregated views' outputs combined from their tiles at ``now``."""
    if not any(isinstance(v, AggregatedView) for v, _, _ in requests):
        return online.read_columns(requests, now)
    plain = [r for r in requests if not isinstance(r[0], AggregatedView)]
    done = iter(online.read_columns(plain, now) if plain else [])
    now_us = to_us(now)
    return [online_values.read(online, v, f, k, now_us) if isinstance(v, AggregatedView) else next(done)
            for v, f, k in requests]


def read(online: OnlineStore, resolved: list[tuple[FeatureView, list[str]]], entity_rows: Sequence[dict],
         now: datetime, full_feature_names: bool) -> OnlineResponse:
    if not isinstance(entity_rows, (list, tuple)):  # read once per distinct join keys and kept: no iterators
        entity_rows = list(entity_rows)
    plan = _plan_for(resolved, full_feature_names)
    keys = [norm(entity_rows) for norm in plan.normalisers]
    if plan.duplicate is not None:
        raise ValidationError(plan.duplicate)
    reads = _read_columns(online, [(view, feats, keys[g]) for view, feats, g, _ in plan.views], now)
    cols: list[list] = []
    sts: list[list[str]] = []
    for (_, feats, _, _), r in zip(plan.views, reads):
        if len(r.columns) != len(feats) or (feats and len(r.columns[-1]) != len(r.statuses)):
            raise RuntimeError(f"{type(online).__name__}.read_raw broke its contract: a value list per entity "
                               f"does not hold one value per feature of view {r.view!r}")
        cols += r.columns
        sts += [r.statuses] * len(feats)
    names = plan.names

    def event_timestamps() -> dict[str, list]:  # datetimes are built only if asked for
        evs: list[list] = []
        for (_, feats, _, _), r in zip(plan.views, reads):
            evs += [r.event_timestamps] * len(feats)
        return dict(zip(names, evs))
    return OnlineResponse(entity_rows, dict(zip(names, cols)), dict(zip(names, sts)), event_timestamps)
