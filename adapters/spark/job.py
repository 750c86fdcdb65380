"""A training set computed by Spark (``SparkJob``; see ``skewless.retrieval.RetrievalJob`` for the contract).

The entity rows are read and normalised by the embedded DuckDB code, exactly as for the DuckDB engine, and handed
to Spark as Parquet: a narrow file (input position, time, join keys) for the feature queries, and — only when the
whole set is asked of Spark (``to_spark``, ``to_parquet``, ``to_reader``) — a wide one with every input column.
The feature queries are the one PIT definition (pit.py, ``window`` form, every plain view in one query) and one
``render_training`` query per aggregated view, in request order, each returning its outputs and the input position.

* ``to_arrow``/``to_pandas``: the feature columns are collected (Arrow) and put in input order beside the input
  columns read here, so the result has exactly the DuckDB engine's columns and types.
* ``to_spark()``: the whole set as a Spark DataFrame, in input order (nothing collected).
* ``to_parquet(folder)``: written by Spark (one Parquet file per partition, in input order), never collected.
* ``to_reader``: Spark writes the set to a scratch folder; its files are streamed back in order, in ``to_arrow``'s
  types.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from skewless.aggregation.definition import AggregatedView
from skewless.aggregation.sql import agg_view_query, render_training
from skewless.offline.pit import ENTITY_ROW, PitQuery, join_key_types, q, render, view_queries
from skewless.retrieval import in_input_order, output_path, run_duckdb
from skewless.sqlnames import output_names
from skewless.timeutil import UTC_US

from .session import stream_parts, unique_name
from .spark_sql import SparkSkewless


def read_own_parquet(spark, path: str):
    """A Parquet file written here, as a Spark DataFrame with its schema given: Spark would otherwise run a job to
    read the footer and infer it (in a fresh process, ~0.3-1 s of the first call for cold code); the file's own
    Arrow schema maps to what Spark infers (tests/adapters/spark/test_spark_engine.py checks every key type)."""
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    try:
        schema = from_arrow_schema(pq.read_schema(path), prefer_timestamp_ntz=True)
    except TypeError:  # a type pyspark does not map from Arrow (e.g. unsigned integers): Spark infers it
        return spark.read.parquet(path)
    return spark.read.schema(schema).parquet(path)


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclasses.dataclass(frozen=True)
class _Part:
    sql: str  # Spark SQL: the outputs, then ENTITY_ROW; any order
    schema: pa.Schema  # the outputs' Arrow types (and ENTITY_ROW)


class SparkJob:
    # ``engine``: the SparkEngine that built it (engine.py imports this module, so it is not imported here).
    def __init__(self, engine, con, relation: str, cols: list[str], timestamp_column: str,
                 keys: list[str], parts: list[_Part], snapshot: dict, features: list, folder: str, narrow: str,
                 order: list[str]):
        self._engine, self._con, self._relation, self._cols = engine, con, relation, cols
        self._order = order  # the outputs in request order (the plain views' one query holds several views')
        self._ts, self._keys, self._parts, self._folder, self._narrow = timestamp_column, keys, parts, folder, narrow
        self.snapshot, self.features = snapshot, features
        self._wide = ""
        self._views: list[str] = []
        self.sql = parts[0].sql if parts else None

    @classmethod
    def build(cls, engine, entity: Any, requests: list, files: dict, *, snapshot: dict, features: list,
              timestamp_column: str, full_feature_names: bool, point_in_time: str, event_timestamps: bool
              ) -> "SparkJob":
        keys = join_key_types(requests)
        con = engine.local.connect()
        folder = engine.scratch()
        views: list[str] = []  # the Spark temporary views it registers, dropped at close
        try:
            relation, cols = engine.local.entity_relation(con, entity, timestamp_column,
                                                          {k: d.sql for k, d in keys.items()})
            narrow = unique_name("entity")
            path = os.path.join(folder, "entity-narrow.parquet")
            select = ", ".join(q(c) for c in (ENTITY_ROW, timestamp_column, *keys))
            run_duckdb(lambda: con.execute(f"COPY (SELECT {select} FROM {relation}) TO '{path}' (FORMAT parquet)"))
            read_own_parquet(engine.spark, path).createOrReplaceTempView(narrow)
            views.append(narrow)
            taken, plain, parts, order = set(cols), [], [], []
            tie_levels = {n: f.tie_level for n, f in files.items()}
            for view, feats in requests:  # one part per aggregated view; the plain views' features in one part
                if isinstance(view, AggregatedView):
                    names = output_names(view.name, feats, taken, full_feature_names)
                    vq = agg_view_query(view, feats, names, engine.history_relation(view, files[view.name], views=views),
                                        files[view.name].tie_level)
                    schema = pa.schema([*((a.output, pa.list_(a.dtype.arrow) if a.function == "last_k"
                                           else a.dtype.arrow) for a in vq.aggs), (ENTITY_ROW, pa.int64())])
                    parts.append(_Part(render_training(q(narrow), timestamp_column, vq, point_in_time,
                                                       dialect=SparkSkewless), schema))
                    order += schema.names[:-1]
                    continue
                v = view_queries([(view, feats)], taken, lambda fv: engine.history_relation(fv, files[fv.name], views=views),
                                 tie_levels, full_feature_names=full_feature_names, event_timestamps=event_timestamps)[0]
                types = {f.name: f.dtype.arrow for f in view.features}
                fields = [(f.output, types[f.feature]) for f in v.features]
                fields += [(v.event_timestamp_output, UTC_US)] if v.event_timestamp_output else []
                plain.append((len(parts), v, fields))
                order += [n for n, _ in fields]
                parts.append(None)  # placeholder: the plain views' one query takes the first plain view's place
            if plain:
                pq_ = PitQuery(q(narrow), (), timestamp_column, tuple(v for _, v, _ in plain), point_in_time,
                               ordered=False)
                schema = pa.schema([f for _, _, fs in plain for f in fs] + [(ENTITY_ROW, pa.int64())])
                parts[plain[0][0]] = _Part(render(pq_, dialect=SparkSkewless, strategy="window"), schema)
            parts = [p for p in parts if p is not None]
        except BaseException:
            con.close()
            engine.drop_views(views)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = cls(engine, con, relation, cols, timestamp_column, list(keys), parts, snapshot, features, folder,
                  narrow, order)
        job._views = views
        return job

    # -- the result -----------------------------------------------------------------------------------------
    def _entity_schema(self) -> pa.Schema:
        return run_duckdb(lambda: self._con.sql(
            f"SELECT {', '.join(q(c) for c in self._cols)} FROM {self._relation} LIMIT 0").to_arrow_table().schema)

    def schema(self) -> pa.Schema:
        """The result's columns and types (the same as the DuckDB engine's)."""
        fields = {f.name: f for p in self._parts for f in list(p.schema)[:-1]}
        return pa.schema([*self._entity_schema(), *(fields[n] for n in self._order)])

    def to_arrow(self) -> pa.Table:
        """The training set in memory, in input order: each part's feature columns collected and gathered into
        input order beside the input columns read here."""
        values: dict[str, pa.Array] = {}
        for part in self._parts:
            got = self._engine.table(part.sql, part.schema, "training set")
            values.update(zip(part.schema.names[:-1], in_input_order(got)))
        entity = run_duckdb(lambda: self._con.sql(f"SELECT {', '.join(q(c) for c in self._cols)} FROM "
                                                  f"{self._relation} ORDER BY {q(ENTITY_ROW)}").to_arrow_table())
        return pa.table([*entity.columns, *(values[n] for n in self._order)], names=[*entity.column_names, *self._order])

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_df(self):  # Feast's name
        return self.to_pandas()

    def _wide_view(self) -> str:
        """Every input column and the input position as a Spark temporary view (written once, on first use)."""
        if not self._wide:
            path = os.path.join(self._folder, "entity-wide.parquet")
            cols = ", ".join(q(c) for c in (*self._cols, ENTITY_ROW))
            run_duckdb(lambda: self._con.execute(
                f"COPY (SELECT {cols} FROM {self._relation}) TO '{path}' (FORMAT parquet)"))
            name = unique_name("entity_wide")
            read_own_parquet(self._engine.spark, path).createOrReplaceTempView(name)
            self._views.append(name)
            self._wide = name
        return self._wide

    def spark_sql(self) -> str:
        """The whole training set as one Spark SQL query, in input order."""
        select = [f"e.{_bq(c)}" for c in self._cols]
        joins, alias = [], {}
        for i, part in enumerate(self._parts):
            alias.update((n, f"p{i}") for n in part.schema.names[:-1])
            joins.append(f"LEFT JOIN ({part.sql}) AS p{i} ON p{i}.{_bq(ENTITY_ROW)} = e.{_bq(ENTITY_ROW)}")
        select += [f"{alias[n]}.{_bq(n)}" for n in self._order]
        return (f"SELECT {', '.join(select)} FROM {_bq(self._wide_view())} AS e " + " ".join(joins)
                + f" ORDER BY e.{_bq(ENTITY_ROW)}")

    def to_spark(self):
        """The training set as a Spark DataFrame, in input order (computed by Spark when an action runs)."""
        return self._engine.spark.sql(self.spark_sql())

    def to_reader(self, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Stream the training set in input order: written by Spark to a scratch folder, read back file by file."""
        folder = os.path.join(self._folder, unique_name("reader"))
        parts = self._engine.write_sorted(None, self.spark_sql(), folder, "training set")
        schema = self.schema()
        return pa.RecordBatchReader.from_batches(schema, stream_parts(parts, schema, batch_rows, folder))

    def to_parquet(self, path: str | Path) -> Path:
        """Write the training set with Spark, never collected: ``path`` becomes a folder of Parquet files (one per
        partition, in input order; pyarrow and pandas read the folder as one table), the snapshot beside it."""
        path = output_path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self._engine.write_sorted(None, self.spark_sql(), str(tmp), "write the training set")
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        tmp.replace(path)
        path.with_name(path.name + ".snapshot.json").write_text(json.dumps(self.snapshot, indent=1))
        return path

    def close(self) -> None:
        self._con.close()
        self._engine.drop_views(self._views)
        shutil.rmtree(self._folder, ignore_errors=True)

    def __del__(self):  # the scratch folder goes with the job (close() removes it earlier)
        folder = getattr(self, "_folder", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
