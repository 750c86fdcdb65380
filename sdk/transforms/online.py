"""Transforms in online reads: the views' features (transform inputs included) read as ``online_read.read`` does,
then each transform run over the rows with the request fields taken from the entity rows and the request time
(``now``) as its time. A transform output's status is PRESENT when every view it reads is PRESENT for the row,
else the first input view's status that is not; its event timestamp is None (it is computed now)."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import pyarrow as pa

from .. import online_read
from ..dtypes import UnixTimestamp
from ..errors import ValidationError
from ..online.base import PRESENT
from .resolve import TransformRequest
from .run import run_arrays, run_rows
from .values import request_value


def transform_columns(req: TransformRequest, values: dict[str, list], entity_rows: Sequence[dict],
                      now: datetime) -> dict[str, list]:
    """Every requested transform's outputs ("transform:output" -> values), from the read features
    (``values``: "view:feature" -> values) and the entity rows' request fields."""
    n = len(entity_rows)
    out: dict[str, list] = {}
    for t in req.transforms:
        cols: dict[str, list] = {col: values[ref] for col, ref in t.inputs.items()}
        for f in t.request:
            col = []
            for i, r in enumerate(entity_rows):
                v = r.get(f.name, _MISSING)
                if v is _MISSING:
                    raise ValidationError(f"transform {t.name!r}, row {i}: request field {f.name!r} is missing from "
                                          "the entity row (online, request fields come with the entity rows)",
                                          column=f.name, row=i)
                col.append(request_value(v, f.dtype, t.name, f.name, i))
            cols[f.name] = col
        if t.time:
            cols[t.time] = [now] * n
        if t.mode == "row":
            res = run_rows(t, [dict(zip(cols, vals)) for vals in zip(*cols.values())] if cols else [{}] * n)
        else:
            arrays = {c: pa.array(v, type=_dtype(req, t, c).arrow) for c, v in cols.items()}
            res = {k: a.to_pylist() for k, a in run_arrays(t, arrays, n).items()}
        out.update({f"{t.name}:{o}": v for o, v in res.items()})
    return out


_MISSING = object()


def _dtype(req: TransformRequest, t, col: str):
    if col in t.inputs:
        return req.dtypes[t.inputs[col]]
    if col == t.time:
        return UnixTimestamp
    return next(f.dtype for f in t.request if f.name == col)


def read(online, req: TransformRequest, entity_rows: Sequence[dict], now: datetime,
         full_feature_names: bool) -> online_read.OnlineResponse:
    if not isinstance(entity_rows, (list, tuple)):
        entity_rows = list(entity_rows)
    names = req.names(full_feature_names)
    resp = online_read.read(online, req.resolved, entity_rows, now, True)
    values = {f"{v.name}:{f}": resp.values[f"{v.name}__{f}"] for v, fs in req.resolved for f in fs}
    computed = transform_columns(req, values, entity_rows, now)
    n = len(entity_rows)
    cols: dict[str, list] = {}
    sts: dict[str, list] = {}
    evs: dict[str, str | None] = {}  # column -> the response column whose event timestamps it has (None: none)
    for ref, name in zip(req.refs, names):
        if ref in computed:
            cols[name] = computed[ref]
            sts[name] = _statuses(req, ref.split(":")[0], resp.statuses, n)
            evs[name] = None
        else:
            cols[name] = values[ref]
            sts[name] = resp.statuses[ref.replace(":", "__")]
            evs[name] = ref.replace(":", "__")

    def event_timestamps() -> dict[str, list]:
        return {c: resp.event_timestamps[src] if src else [None] * n for c, src in evs.items()}
    return online_read.OnlineResponse(entity_rows, cols, sts, event_timestamps)


def _statuses(req: TransformRequest, name: str, statuses: dict[str, list], n: int) -> list[str]:
    t = next(t for t in req.transforms if t.name == name)
    views = list(dict.fromkeys(ref.replace(":", "__") for ref in t.inputs.values()))
    lists = [statuses[v] for v in views]
    if all(s.count(PRESENT) == n for s in lists):
        return [PRESENT] * n
    return [next((s[i] for s in lists if s[i] != PRESENT), PRESENT) for i in range(n)]
