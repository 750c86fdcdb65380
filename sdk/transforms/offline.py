"""Transforms in historical retrieval: the training set of the views' features (read with full names, including
transform inputs nobody requested), then each transform run over it with request fields from the entity table's
columns and the entity row's timestamp as its time, then the requested columns in the requested order."""

from __future__ import annotations

import pyarrow as pa

from ..dtypes import UnixTimestamp
from ..errors import ValidationError
from ..retrieval import MappedJob
from .resolve import TransformRequest
from .run import run_arrays
from .values import request_column


def input_columns(req: TransformRequest, t, table: pa.Table, timestamp_column: str) -> dict[str, pa.Array]:
    """The transform's input columns from a retrieval result (full feature names) and its entity columns."""
    cols: dict[str, pa.Array] = {}
    for col, ref in t.inputs.items():
        arr = table.column(ref.replace(":", "__")).combine_chunks()
        dt = req.dtypes[ref]
        cols[col] = arr if arr.type == dt.arrow else arr.cast(dt.arrow)
    for f in t.request:
        if f.name not in table.column_names:
            raise ValidationError(f"transform {t.name!r}, row 0: request field {f.name!r} is not a column of the "
                                  "entity table (offline, request fields come from its columns)", column=f.name, row=0)
        cols[f.name] = request_column(table.column(f.name), f.dtype, t.name, f.name)
    if t.time:
        ts = table.column(timestamp_column).combine_chunks()
        cols[t.time] = ts if ts.type == UnixTimestamp.arrow else ts.cast(UnixTimestamp.arrow)
    return cols


def apply(req: TransformRequest, table: pa.Table, *, timestamp_column: str, full_feature_names: bool,
          row_offset: int = 0) -> pa.Table:
    """``table``: a retrieval result with full feature names. Its other columns (the entity table's) first, then
    the requested features and transform outputs."""
    names = req.names(full_feature_names)
    read = {f"{v.name}__{f}" for v, fs in req.resolved for f in fs}
    outputs: dict[str, pa.Array] = {}
    for t in req.transforms:
        res = run_arrays(t, input_columns(req, t, table, timestamp_column), table.num_rows, row_offset)
        outputs.update({f"{t.name}__{o}": a for o, a in res.items()})
    keep = [c for c in table.column_names if c not in read]
    cols = [table.column(c) for c in keep]
    for ref in req.refs:
        full = ref.replace(":", "__")
        cols.append(outputs[full] if full in outputs else table.column(full))
    return pa.table(cols, names=keep + names)


class TransformedJob(MappedJob):
    """A RetrievalJob whose result gets the requested transforms' outputs (same methods, same snapshot)."""

    def __init__(self, job, req: TransformRequest, *, timestamp_column: str, full_feature_names: bool):
        super().__init__(job)
        self._req, self._ts, self._full = req, timestamp_column, full_feature_names
        self.features = list(req.refs)

    def _apply(self, table: pa.Table, row_offset: int = 0) -> pa.Table:
        return apply(self._req, table, timestamp_column=self._ts, full_feature_names=self._full,
                     row_offset=row_offset)
