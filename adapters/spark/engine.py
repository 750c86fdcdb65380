"""The Spark engine (``offline.engine: spark``): the one PIT definition (pit.py, ``window`` form), the windowed
aggregations (aggregation/sql.py) and the online tiles' queries (aggregation/tile_sql.py), all written once in
DuckDB's spelling and transpiled to Spark SQL (``spark_sql.py``), run by a SparkSession (``session.py``).

Histories are the Delta tables the offline store hands out as ``HistoryFiles``: the store resolves the snapshot's
file list (delta-rs), and Spark reads those Parquet files with the view's full schema (files written before a
feature was added read it as null). Spark reads local paths; there is no ``s3a://`` here (no hadoop-aws jar can be
had: Maven Central is not reachable), so files on an object store are first staged to local disk through the
store's pyarrow filesystem, file by file and streamed (bounded memory; a data file of a Delta table never changes,
so a staged copy is reused). On a cluster the same SQL would read ``s3a://`` paths instead: that is untested here.

Entity rows are read and normalised by the embedded DuckDB code (as the MaxCompute engine does) and handed to Spark
as a Parquet file. Materialization into an online store that takes writes from many processes (Redis, Tair) is
written by the executors (``write_latest``, ``materialize.py``); otherwise its scans (``latest_rows``) are
``latest_per_entity`` in key order written by Spark as Parquet (one file per sorted range) and streamed back file by
file, so neither side holds a view whole.
Ingest-time checks over rows in memory (``tie_level``, ``packing_stats``) and scans of rows in memory run on the
embedded DuckDB engine, as on MaxCompute.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import sqlglot

from skewless.aggregation import tile_sql
from skewless.aggregation.definition import AggregatedView
from skewless.errors import ConfigError
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from skewless.offline.base import FULL_TIES, Engine, HistoryFiles
from skewless.offline.duckdb_engine import DuckDBEngine
from skewless.offline.pit import latest_per_entity, q
from skewless.timeutil import UTC_US

from .job import SparkJob
from .materialize import write_parts
from .session import Session, SparkSettings, run_spark, session, stream_parts, unique_name
from .spark_sql import SparkSkewless

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CANON = ((EVENT_TS, "TIMESTAMPTZ", UTC_US), (CREATED_TS, "TIMESTAMPTZ", UTC_US), (WRITE_BATCH, "BIGINT", pa.int64()),
          (WRITE_ROW, "BIGINT", pa.int64()))


def engine_from_url(url: str, repo_path: Path, options: dict) -> "SparkEngine":
    return SparkEngine(options)


def to_spark_sql(sql: str) -> str:
    """DuckDB-spelled SQL (what the core renders) in Spark SQL."""
    return sqlglot.transpile(sql, read="duckdb", write=SparkSkewless)[0]


def rows_schema(view: FeatureView) -> pa.Schema:
    """The columns of ``latest_rows`` (and of the rows written online): join keys, ordering tuple, features."""
    types = {f.name: f.dtype.arrow for f in view.features}
    return pa.schema([*((k, d.arrow) for k, d in view.join_key_dtypes.items()), *((c, a) for c, _, a in _CANON),
                      *((f, types[f]) for f in view.feature_names)])


def timestamp_sql(t: datetime) -> str:
    """An instant as an exact Spark expression (DuckDB spelling passes it through): microseconds since the epoch."""
    return f"timestamp_micros({(t - EPOCH) // timedelta(microseconds=1)})"


class SparkEngine(Engine):
    """Runs training sets, materialization scans and tile queries on Spark (local mode here, any master given)."""

    name = "spark"
    dialect = SparkSkewless
    supports_asof_join = False
    supports_aggregations = True

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        self.settings = SparkSettings.from_options(options)
        # Entity rows, rows in memory and ingest's tie checks are handled by the embedded engine's own code.
        self.local = DuckDBEngine(memory_limit=options.get("memory_limit"), threads=options.get("threads"))
        self._stage = None  # local copies of object-store history files (see module docstring)

    @property
    def spark(self):
        return session(self.settings)

    def connect(self, *, spare_cores: int = 0) -> Session:
        return Session(self.spark)

    def scratch(self) -> str:
        """A folder of its own under the Spark session's temporary space (the caller removes it)."""
        return tempfile.mkdtemp(prefix="skewless-spark-job-")

    # -- relations ------------------------------------------------------------------------------------------
    def _local_paths(self, files: HistoryFiles) -> list[str]:
        if files.filesystem is None:
            return [u.removeprefix("file://") for u in files.uris]
        if self._stage is None:
            self._stage = tempfile.mkdtemp(prefix="skewless-spark-stage-")
        local = pafs.LocalFileSystem()
        paths = []
        for uri in files.uris:
            path = os.path.join(self._stage, hashlib.sha256(uri.encode()).hexdigest()[:32] + ".parquet")
            if not os.path.exists(path):
                tmp = f"{path}.{os.getpid()}.tmp"
                pafs.copy_files(uri.split("://", 1)[-1], tmp, source_filesystem=files.filesystem,
                                destination_filesystem=local)
                os.replace(tmp, path)
            paths.append(path)
        return paths

    def history_relation(self, view: FeatureView, files: HistoryFiles, batch: int | None = None,
                         views: list[str] | None = None) -> str:
        """A subquery (DuckDB spelling) with the canonical history columns in the view's declared types, over a
        temporary view of the snapshot's files registered in the Spark session (its name appended to ``views``:
        the caller drops it when done, ``drop_views``)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        cols = [*((k, d.sql, d.arrow) for k, d in view.join_key_dtypes.items()), *_CANON,
                *((f.name, f.dtype.sql, f.dtype.arrow) for f in view.stored_fields)]
        if not files.uris:
            body = ", ".join(f"CAST(NULL AS {t}) AS {q(c)}" for c, t, _ in cols)
            return f"(SELECT {body} WHERE false)"
        name = unique_name("hist")
        schema = from_arrow_schema(pa.schema(files.columns), prefer_timestamp_ntz=True)
        frame = run_spark(lambda: self.spark.read.schema(schema).parquet(*self._local_paths(files)),
                          f"read the history of {view.name!r}")
        frame.createOrReplaceTempView(name)
        if views is not None:
            views.append(name)
        body = ", ".join(q(c) if files.columns.get(c) == a else f"CAST({q(c)} AS {t}) AS {q(c)}"
                         if c in files.columns else f"CAST(NULL AS {t}) AS {q(c)}" for c, t, a in cols)
        where = f" WHERE {q(WRITE_BATCH)} = {int(batch)}" if batch is not None else ""
        return f"(SELECT {body} FROM {q(name)}{where})"

    def drop_views(self, views: list[str]) -> None:
        """Drop the temporary views a job registered (they would otherwise live as long as the session)."""
        while views:
            self.spark.catalog.dropTempView(views.pop())

    def tile_scan(self, view: AggregatedView, files: HistoryFiles) -> "SparkTileScan":
        """The online tiles' queries (``aggregation.maintain.TileScan``) on Spark."""
        return SparkTileScan(self, view, files)

    def table(self, sql: str, schema: pa.Schema, what: str) -> pa.Table:
        """A Spark SQL query's (small) answer collected as Arrow in ``schema``'s types, in the query's order."""
        got = run_spark(lambda: self.spark.sql(sql).toArrow(), what)
        return pa.table([got.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)

    def write_sorted(self, con: Session | None, sql: str, folder: str, what: str) -> list[str]:
        """Spark writes the query's rows as Parquet into ``folder`` (one file per partition, in the query's order
        when it sorts: a global sort range-partitions); the part files in order."""
        def run():
            if con is not None:
                con.bind()
            self.spark.sql(sql).write.mode("overwrite").parquet(folder)
        run_spark(run, what)
        return sorted(str(p) for p in Path(folder).glob("part-*.parquet"))

    # -- training sets --------------------------------------------------------------------------------------
    def historical(self, entity: Any, requests: list, files: dict[str, HistoryFiles], *,
                   snapshot: dict[str, int | None], features: list[str], timestamp_column: str,
                   full_feature_names: bool, point_in_time: str, event_timestamps: bool):
        return SparkJob.build(self, entity, requests, files, snapshot=snapshot, features=features,
                              timestamp_column=timestamp_column, full_feature_names=full_feature_names,
                              point_in_time=point_in_time, event_timestamps=event_timestamps)

    # -- materialization ------------------------------------------------------------------------------------
    def _latest_sql(self, view: FeatureView, source: HistoryFiles, start, end, views: list[str], *,
                    batch: int | None = None, ordered: bool = True) -> str:
        relation = self.history_relation(view, source, batch, views)
        return latest_per_entity(relation, tuple(view.join_keys), tuple(view.feature_names), timestamp_sql(end),
                                 None if start is None else timestamp_sql(start), tie_level=source.tie_level,
                                 dialect=SparkSkewless, ordered=ordered)

    def latest_rows(self, con: Session, view: FeatureView, source: HistoryFiles | pa.Table, start, end,
                    batch_rows: int = 100_000, tie_level: int = FULL_TIES, *,
                    batch: int | None = None) -> pa.RecordBatchReader:
        schema = rows_schema(view)
        if isinstance(source, pa.Table):  # rows in memory (an ingest's online push): no round trip to Spark
            local = self.local.connect()
            try:
                rows = self.local.latest_rows(local, view, source, start, end, batch_rows, tie_level,
                                              batch=batch).read_all()
            finally:
                local.close()
            return rows.cast(schema).to_reader(batch_rows)
        if not source.uris:
            return schema.empty_table().to_reader()
        views: list[str] = []
        folder = self.scratch()
        try:
            sql = self._latest_sql(view, source, start, end, views, batch=batch)
            parts = self.write_sorted(con, sql, os.path.join(folder, "rows"), f"materialize {view.name!r}")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self.drop_views(views)
        return pa.RecordBatchReader.from_batches(schema, stream_parts(parts, schema, batch_rows, folder))

    def writes_online(self, online) -> bool:
        accepts = bool(getattr(online, "accepts_worker_writes", False))
        if self.settings.materialize_writes == "workers" and not accepts:
            raise ConfigError(f"spark engine option materialize_writes: workers needs an online store that takes "
                              f"writes from many processes (Redis, Tair); {type(online).__name__} does not "
                              f"(use materialize_writes: driver, or leave it unset)")
        return accepts and self.settings.materialize_writes != "driver"

    def write_parts(self) -> int:
        return self.settings.materialize_partitions or 2 * self.spark.sparkContext.defaultParallelism

    def write_latest(self, view: FeatureView, files: HistoryFiles, start, end, online, *, parts: int,
                     skip: set[int], part_meta: str) -> dict[int, int]:
        """Executors write the winners (``materialize.write_parts``); see ``Engine.write_latest``."""
        if not files.uris:
            return {}
        views: list[str] = []
        try:
            sql = self._latest_sql(view, files, start, end, views, ordered=False)
            return write_parts(self, view, sql, rows_schema(view), online, parts, skip, part_meta)
        finally:
            self.drop_views(views)

    def tie_level(self, view: FeatureView, rows: pa.Table, prior: HistoryFiles | None) -> int:
        return self.local.tie_level(view, rows, prior)

    def packing_stats(self, view: FeatureView, prior: HistoryFiles) -> tuple | None:
        return self.local.packing_stats(view, prior)


class SparkTileScan:
    """``aggregation.maintain.TileScan`` on Spark: ``tile_sql``'s queries transpiled over the history's temporary
    view; each chunk's ranges handed to Spark as Arrow; the answers collected as Arrow in DuckDB's types."""

    entities_per_chunk = 20_000  # each query costs Spark's scheduling (tens of ms) and a scan of the history

    def __init__(self, engine: SparkEngine, view: AggregatedView, files: HistoryFiles):
        self._engine, self._view, self._views = engine, view, []
        self._history = engine.history_relation(view, files, views=self._views)

    def touched(self, where: str) -> pa.Table:
        return self._engine.table(to_spark_sql(tile_sql.view_touched_sql(self._view, self._history, where)),
                                  tile_sql.touched_schema(self._view), f"tiles touched in {self._view.name!r}")

    def events(self, ranges: pa.Table) -> pa.Table:
        name = unique_name("ranges")
        spark = self._engine.spark
        run_spark(lambda: spark.createDataFrame(ranges).createOrReplaceTempView(name), "tile ranges")
        try:
            return self._engine.table(to_spark_sql(tile_sql.view_events_sql(self._view, self._history, q(name))),
                                      tile_sql.events_schema(self._view), f"tile events of {self._view.name!r}")
        finally:
            spark.catalog.dropTempView(name)

    def close(self) -> None:
        self._engine.drop_views(self._views)
