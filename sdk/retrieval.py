"""Point-in-time-correct training sets (historical retrieval)."""

from __future__ import annotations

import glob
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .aggregation.sql import OVERFLOW
from .errors import EngineError, ValidationError
from .splits import Split
from .timeutil import parse_timestamps


_BATCH_ROWS = 122_880  # DuckDB's row-group size


def entity_input(entity: Any, column: str, date_format: str | None) -> Any:
    """In-memory entity rows checked (no duplicate column names) and with a text timestamp ``column`` parsed to UTC
    instants here, with ``date_format`` (default ISO 8601), so a bad value is a ValidationError naming its row,
    never a SQL cast error in the engine. Parquet paths and typed columns pass through unchanged."""
    names = list(map(str, entity.columns)) if isinstance(entity, pd.DataFrame) else \
        entity.schema.names if isinstance(entity, (pa.Table, pa.RecordBatch)) else []
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValidationError(f"entity rows: duplicate column names {dup}: each column must appear once",
                              column=dup[0])
    if isinstance(entity, pd.DataFrame) and column in entity.columns:
        if pd.api.types.is_object_dtype(entity[column].dtype) or pd.api.types.is_string_dtype(entity[column].dtype):
            return entity.assign(**{column: parse_timestamps(entity[column], column, date_format)})
    elif isinstance(entity, (pa.Table, pa.RecordBatch)) and column in entity.schema.names:
        if pa.types.is_string(entity.schema.field(column).type) or pa.types.is_large_string(
                entity.schema.field(column).type):
            table = entity if isinstance(entity, pa.Table) else pa.Table.from_batches([entity])
            parsed = parse_timestamps(table.column(column).to_pandas(), column, date_format)
            return table.set_column(table.schema.get_field_index(column), column, pa.array(parsed))
    return entity


def run_duckdb(fn):
    """``fn()``, with DuckDB's errors about the entity rows or memory as skewless errors."""
    try:
        return fn()
    except duckdb.ConversionException as exc:
        # DuckDB's message spans lines (the SQL around the cast, naming internal relations): keep its first line
        raise ValidationError(f"entity rows: {(str(exc).splitlines() or [''])[0]}") from exc
    except duckdb.InvalidInputException as exc:
        message = str(exc)
        if OVERFLOW not in message:
            raise
        # An aggregation the spec makes an error (an Int64 sum outside Int64): the query raised it by name.
        raise ValidationError(message.split(OVERFLOW, 1)[1].splitlines()[0]) from exc
    except duckdb.OutOfMemoryException as exc:
        raise EngineError("the offline engine ran out of memory; raise offline.options.memory_limit in "
                          "skewless.yaml (or SKEWLESS_DUCKDB_MEMORY), or stream with to_parquet()") from exc


class RetrievalJob:
    """A training set not yet computed. ``snapshot`` records the history version each view was read at, so
    ``store.get_historical_features(..., snapshot=job.snapshot)`` rebuilds the identical result later.

    ``to_arrow``/``to_pandas`` build the result in memory (input order restored in Arrow, which is far cheaper than
    sorting wide rows in SQL); ``to_parquet``/``to_reader`` stream it in order without holding it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, plan, snapshot: dict[str, int | None], features: list[str]):
        self._con, self._plan, self.snapshot, self.features = con, plan, snapshot, features
        self.sql = plan.ordered

    def _run(self, fn):
        return run_duckdb(fn)

    def to_arrow(self) -> pa.Table:
        """The training set in memory: input columns as given, then each view's features joined one view at a time
        and put back in input order with a parallel gather (cheaper than sorting wide rows in SQL)."""
        def fetch(sql: str) -> pa.Table:
            # Streamed out in moderate batches, so the result never sits in DuckDB's buffer pool next to the join.
            return self._run(lambda: self._con.sql(sql).to_arrow_reader(_BATCH_ROWS).read_all())

        table = fetch(self._plan.entity)
        columns, names = list(table.columns), list(table.column_names)
        # One view ahead: DuckDB joins the next view (releasing the GIL) while Arrow puts this one in order, which
        # fills the cores the join leaves idle; never more than one view waits, so memory stays one part higher.
        with ThreadPoolExecutor(max_workers=1) as ahead:
            pending = ahead.submit(fetch, self._plan.per_view[0]) if self._plan.per_view else None
            for i, gather in enumerate(self._plan.gathers):
                part = pending.result()
                pending = ahead.submit(fetch, self._plan.per_view[i + 1]) if i + 1 < len(self._plan.per_view) else None
                if gather is None:
                    columns += in_input_order(part)
                    names += part.column_names[:-1]
                else:  # the join returned each winner's position first: read its features by position
                    rank = input_rank(part.column(part.num_columns - 1))
                    columns += gather.take(part.column(0), rank) + in_input_order(part.drop_columns(
                        [part.column_names[0]]), rank)
                    names += list(gather.names) + part.column_names[1:-1]
                del part
        return pa.table(columns, names=names)

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_df(self):  # Feast's name
        return self.to_pandas()

    def to_reader(self, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Stream the result (for training sets larger than memory)."""
        return self._run(lambda: self._con.sql(self.sql).to_arrow_reader(batch_rows))

    def to_parquet(self, path: str | Path) -> Path:
        """Write the result to one Parquet file without holding it in memory, with the snapshot beside it."""
        path = output_path(path)
        tmp = path.with_name(path.name + ".tmp")
        self._run(lambda: self._con.execute(f"COPY ({self.sql}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' "
                                            "(FORMAT parquet)"))
        tmp.replace(path)
        path.with_name(path.name + ".snapshot.json").write_text(json.dumps(self.snapshot, indent=1))
        return path


def output_path(path: str | Path) -> Path:
    """``path`` with its folder made: a ValidationError naming it when it cannot be a folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a path the user gave that cannot be a folder (a file in the way, no permission)
        raise ValidationError(f"cannot write the training set to {path}: {exc.strerror or exc}") from exc
    return path


def write_parquet(reader: pa.RecordBatchReader, path: str | Path, snapshot: dict) -> Path:
    """A training set's batches to one Parquet file at a local ``path`` without holding them in memory (written
    beside it, then renamed: a failure leaves no half file under the name), its snapshot beside it."""
    path = output_path(path)
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    tmp.replace(path)
    path.with_name(path.name + ".snapshot.json").write_text(json.dumps(snapshot, indent=1))
    return path


def input_rank(position: pa.ChunkedArray) -> np.ndarray:
    """Where each row goes in input order: its input position when those are 0..n-1 (one entity file or table),
    else the rank of its (file, row) position."""
    position = position.to_numpy()
    n = len(position)
    if n and position.min() == 0 and position.max() == n - 1:
        return position
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(position, kind="stable")] = np.arange(n, dtype=np.int64)
    return rank


def in_input_order(part: pa.Table, rank: np.ndarray | None = None) -> list[pa.Array]:
    """The columns of ``part`` but the last (the input position), gathered into input order (``rank``: its
    ``input_rank``, when already known)."""
    if part.num_columns == 1:
        return []
    if rank is None:
        rank = input_rank(part.column(part.num_columns - 1))
    order = np.empty(len(rank), dtype=np.int64)  # the inverse: which row comes i-th
    order[rank] = np.arange(len(rank), dtype=np.int64)
    order = pa.array(order)
    columns = list(part.columns[:-1])
    # A random gather is memory-bound: columns go in parallel (Arrow releases the GIL).
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda c: c.combine_chunks().take(order), columns))


class LocatedJob:
    """A training-set job (any engine's) whose ``to_parquet`` also writes to object-store URLs (``s3://``,
    ``oss://``: streamed batch by batch to a local file, never collected, then uploaded whole, so a failed export
    leaves no object); everything else is the job's own. It holds the local
    copy of an entity table that came from a query or an object store for as long as the job lives."""

    def __init__(self, job, config, keep=None, *, store=None, entity=None, feature_service: str | None = None,
                 point_in_time: str = "event", labels: list[str] | None = None, split: Split | None = None,
                 key_types: dict[str, pa.DataType] | None = None, timestamp_column: str = "event_timestamp",
                 allowed_leakage: dict | None = None):
        self._job, self._config = job, config
        # On the job itself: ``get_historical_features(...).to_pandas()`` drops this wrapper before the job runs.
        job._entity_copy = keep
        self._store, self._entity = store, entity
        self.feature_service, self.point_in_time = feature_service, point_in_time
        self.labels, self.split, self._key_types = list(labels or []), split, key_types or {}
        self.timestamp_column, self.allowed_leakage = timestamp_column, dict(allowed_leakage or {})

    @property
    def entity_fingerprint(self) -> tuple[str | None, int | None]:
        """(sha256, rows) of the entity rows, computed when asked (registering), never on every retrieval."""
        from .training_sets import fingerprint

        return fingerprint(self._entity)

    @property
    def split_rows(self) -> dict | None:
        """Rows per split and each split's first and last row time, from the entity rows alone (the split depends
        on nothing else), computed when asked (registering); None without a split."""
        if self.split is None:
            return None
        return self.split.count(entity_tables(self._entity, self.split.columns), self._key_types)

    def register(self, name: str, *, description: str = "", new_version: bool = False):
        """Register this training set under ``name`` (see ``skewless.training_sets``); returns the
        ``TrainingSet``. Its ``registered`` attribute, (name, version), is what ``package_model`` records."""
        from . import training_sets

        ts, version = training_sets.register(self._store, training_sets.from_job(self, name, description=description),
                                             new_version=new_version)
        self.registered = (ts.name, version)
        self._keep_rows(ts.name, version)
        return ts

    def _keep_rows(self, name: str, version: int) -> None:
        """The entity rows' times and entity hashes, for the leakage guard of stages fit on this training set
        (skewless.training_rows)."""
        from . import training_rows

        columns = entity_columns(self._entity) or []
        keys = [k for k in self._key_types if k in columns]
        if self.timestamp_column not in columns:
            return
        try:
            rows = training_rows.build(entity_tables(self._entity, [*keys, self.timestamp_column]), keys,
                                       self._key_types, self.timestamp_column, self.split)
        except (ValidationError, pa.ArrowException):
            # rows the engine read but the index cannot (a key not castable to its declared type): the training set
            # is registered all the same; a stage fit on it is reported as not checkable by the guard
            return
        training_rows.write(self._store.registry.store, name, version, rows)

    def __getattr__(self, name):
        return getattr(self._job, name)

    def to_parquet(self, path):
        from . import sources

        if isinstance(path, str) and sources.on_object_store(path):
            return sources.write_parquet_at(self._config, self._job.to_reader(), path, self._job.snapshot)
        return self._job.to_parquet(path)


def _parquet_where(entity: str | Path) -> str | list[str]:
    text = str(entity)
    return sorted(glob.glob(text, recursive=True)) if any(ch in text for ch in "*?[") else text


def entity_columns(entity: Any) -> list[str] | None:
    """The column names of the entity rows as given to retrieval (None: not readable here; the engine says why)."""
    if isinstance(entity, (str, Path)):
        import pyarrow.dataset as ds

        try:
            return ds.dataset(_parquet_where(entity), format="parquet").schema.names
        except (OSError, ValueError, pa.ArrowException):
            return None
    if isinstance(entity, (pa.Table, pa.RecordBatch)):
        return entity.schema.names
    return list(map(str, entity.columns)) if hasattr(entity, "columns") else None


def entity_tables(entity: Any, columns: list[str]) -> Iterator[pa.Table]:
    """``columns`` of the entity rows as given to retrieval (a pandas or Arrow table, or a Parquet file, folder or
    glob), in input order, in parts (a Parquet input is streamed, never read whole)."""
    if isinstance(entity, (str, Path)):
        import pyarrow.dataset as ds

        for batch in ds.dataset(_parquet_where(entity), format="parquet").to_batches(columns=columns):
            yield pa.Table.from_batches([batch])
        return
    if isinstance(entity, pa.RecordBatch):
        entity = pa.Table.from_batches([entity])
    if not isinstance(entity, pa.Table):
        entity = pa.Table.from_pandas(entity[columns], preserve_index=False)
    yield entity.select(columns)


class MappedJob:
    """A training-set job whose result is another job's with each part mapped in Arrow by ``_apply`` (same
    snapshot): in memory, streamed in input order, or written to Parquet."""

    def __init__(self, job):
        self._job = job
        self.snapshot, self.features, self.sql = job.snapshot, list(job.features), job.sql

    def _apply(self, table: pa.Table, row_offset: int = 0) -> pa.Table:
        raise NotImplementedError

    def to_arrow(self) -> pa.Table:
        return self._apply(self._job.to_arrow())

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_df(self):  # Feast's name
        return self.to_pandas()

    def to_reader(self, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Streamed in input order, each batch mapped (``row_offset``: its first row's input position)."""
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
        return write_parquet(self.to_reader(), path, self.snapshot)


class LabelledJob(MappedJob):
    """The training set with its labels last (after the features, under their output names) and then, with a
    split, the split column (skewless.splits: computed here in Arrow, the same on every engine)."""

    def __init__(self, job, labels: list[tuple[str, str]], split: Split | None,
                 key_types: dict[str, pa.DataType]):
        super().__init__(job)
        self._labels, self._split, self._key_types = labels, split, key_types

    def to_spark(self):
        """An EngineError: this result is finished in Arrow (``to_arrow``, ``to_reader``, ``to_parquet``)."""
        raise EngineError("a training set with a split (or labels beside transforms) is finished in Arrow: use "
                          "to_arrow(), to_reader() or to_parquet(), not to_spark()")

    def _apply(self, table: pa.Table, row_offset: int = 0) -> pa.Table:
        moved = {c for c, _ in self._labels}
        names = [c for c in table.column_names if c not in moved]
        taken = set(names)
        for _, out in self._labels:
            if out in taken:
                raise ValidationError(f"label column {out!r} collides with another column (never a silent "
                                      "overwrite); use full_feature_names=True or rename the input column", column=out)
            taken.add(out)
        columns = [table.column(c) for c in names] + [table.column(c) for c, _ in self._labels]
        names += [out for _, out in self._labels]
        if self._split is not None:
            if self._split.column in taken:
                raise ValidationError(f"split column {self._split.column!r} collides with another column; give the "
                                      "split another column=", column=self._split.column)
            columns.append(self._split.assign(table, self._key_types))
            names.append(self._split.column)
        return pa.table(columns, names=names)


def polars_to_arrow(entity: Any) -> Any:
    """A polars DataFrame (or LazyFrame) as a pyarrow Table, without importing polars (it is the caller's)."""
    module = type(entity).__module__ or ""
    if module.startswith("polars"):
        if hasattr(entity, "collect") and not hasattr(entity, "to_arrow"):
            entity = entity.collect()
        return entity.to_arrow()
    return entity
