"""Transforms in historical retrieval: the training set of the views' features (read with full names, including
transform inputs nobody requested), then each transform run over it with request fields from the entity table's
columns and the entity row's timestamp as its time, then the requested columns in the requested order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..dtypes import UnixTimestamp
from ..errors import ValidationError
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


class TransformedJob:
    """A RetrievalJob whose result gets the requested transforms' outputs (same methods, same snapshot)."""

    def __init__(self, job, req: TransformRequest, *, timestamp_column: str, full_feature_names: bool):
        self._job, self._req = job, req
        self._ts, self._full = timestamp_column, full_feature_names
        self.snapshot, self.features, self.sql = job.snapshot, list(req.refs), job.sql

    def _apply(self, table: pa.Table, row_offset: int = 0) -> pa.Table:
        return apply(self._req, table, timestamp_column=self._ts, full_feature_names=self._full,
                     row_offset=row_offset)

    def to_arrow(self) -> pa.Table:
        return self._apply(self._job.to_arrow())

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_df(self):  # Feast's name
        return self.to_pandas()

    def to_reader(self, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Streamed in input order, each batch transformed (errors name rows in input numbering)."""
        source = self._job.to_reader(batch_rows)

        def batches() -> Iterator[pa.RecordBatch]:
            offset = 0
            for b in source:
                out = self._apply(pa.Table.from_batches([b]), offset)
                offset += b.num_rows
                yield from out.to_batches()
        it = batches()
        first = next(it, None)
        if first is None:
            empty = self._apply(source.schema.empty_table())
            return pa.RecordBatchReader.from_batches(empty.schema, iter(()))
        schema = first.schema

        def chained() -> Iterator[pa.RecordBatch]:
            yield first
            for b in it:
                yield b.cast(schema) if b.schema != schema else b
        return pa.RecordBatchReader.from_batches(schema, chained())

    def to_parquet(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        reader = self.to_reader()
        with pq.ParquetWriter(tmp, reader.schema) as w:
            for b in reader:
                w.write_batch(b)
        tmp.replace(path)
        path.with_name(path.name + ".snapshot.json").write_text(json.dumps(self.snapshot, indent=1))
        return path
