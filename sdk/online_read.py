"""Online reads: entity rows in, values + statuses + event timestamps out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

import pandas as pd

from . import dtypes
from .definitions import FeatureView
from .errors import ValidationError
from .online.base import OnlineStore


def _is_null(v: Any) -> bool:
    """None and pandas' nulls (NaN, pd.NA, NaT) are null keys: they read as NOT_FOUND, like in training sets."""
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def _norm(v: Any, dt: dtypes.DType, key: str, row: int):
    if _is_null(v):
        return None
    try:
        if dt in (dtypes.Int32, dtypes.Int64):
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            return int(v)
        if dt is dtypes.String:
            return v if isinstance(v, str) else str(v)
        if dt in (dtypes.Float32, dtypes.Float64):
            return float(v)
        if dt is dtypes.Bool:
            return bool(v)
    except (TypeError, ValueError):
        raise ValidationError(f"entity row {row}: {key}={v!r} is not a valid {dt}", column=key, row=row) from None
    return v


def entity_keys(view: FeatureView, entity_rows: Sequence[dict]) -> list[tuple]:
    keys = view.join_keys
    dts = view.join_key_dtypes
    out = []
    for i, r in enumerate(entity_rows):
        try:
            out.append(tuple(_norm(r[k], dts[k], k, i) for k in keys))
        except KeyError as exc:
            raise ValidationError(f"entity row {i} lacks join key {exc.args[0]!r} needed by view {view.name!r}",
                                  column=exc.args[0], row=i) from None
        except TypeError:
            raise ValidationError(f"entity row {i} must be a dict of join keys", row=i) from None
    return out


class OnlineResponse:
    """Values, statuses and event timestamps per requested feature, one entry per entity row."""

    def __init__(self, entity_rows: Sequence[dict], columns: dict[str, list], statuses: dict[str, list[str]],
                 event_timestamps: dict[str, list[datetime | None]]):
        self.entity_rows = list(entity_rows)
        self.values = columns
        self.statuses = statuses
        self.event_timestamps = event_timestamps

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


def read(online: OnlineStore, resolved: list[tuple[FeatureView, list[str]]], entity_rows: Sequence[dict],
         now: datetime, full_feature_names: bool) -> OnlineResponse:
    requests = [(v, feats, entity_keys(v, entity_rows)) for v, feats in resolved]
    reads = online.read(requests, now)
    columns, statuses, evs = {}, {}, {}
    for (view, feats, _), r in zip(requests, reads):
        for j, f in enumerate(feats):
            name = f"{view.name}__{f}" if full_feature_names else f
            if name in columns:
                raise ValidationError(f"feature name {name!r} appears in two views; use full_feature_names=True")
            columns[name] = [vals[j] for vals in r.values]
            statuses[name] = r.statuses
            evs[name] = r.event_timestamps
    return OnlineResponse(entity_rows, columns, statuses, evs)
