"""The MaxCompute engine (``offline.engine: maxcompute``) and the factories of the ``maxcompute`` engine and the
``maxcompute://`` offline store (``maxcompute_store.py``).

The engine pushes the work down to MaxCompute: a training set is the one PIT definition (pit.py, ``window`` form)
rendered in the MaxCompute dialect (``maxcompute_sql.py``) over snapshot-filtered history subqueries, joined to the
entity rows uploaded through the tunnel into a temporary table; the result comes back through the instance tunnel
as Arrow. An aggregated view's features are its own query (aggregation/sql.py ``render_training``, the same
rendering as DuckDB's, transpiled) over the same uploaded rows; the parts are merged by input position here. Only
what the joins need goes up (input position, time, join keys): the other input columns stay here
and are put beside the result in input order, so they come back exactly as DuckDB's engine returns them (the
entity rows are read and normalised by the same embedded DuckDB code). Materialization scans are
``latest_per_entity`` rendered the same way and streamed back in key order. An aggregated view's online tiles
(``tile_scan``) are ``aggregation/tile_sql.py``'s two queries transpiled the same way, the tile ranges uploaded
through the tunnel, the events downloaded; their partials are computed here by the code DuckDB's path uses.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot

from skewless import dtypes
from skewless.aggregation import tile_sql
from skewless.aggregation.definition import AggregatedView
from skewless.aggregation.sql import AggViewQuery, agg_view_query, overflow_message, render_training
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from skewless.errors import ConfigError, EngineError, ValidationError
from skewless.offline.base import FULL_TIES, Engine, HistoryFiles
from skewless.offline.duckdb_engine import DuckDBEngine
from skewless.offline.pit import ENTITY_ROW, PitQuery, ViewQuery, join_key_types, latest_per_entity, q, render, view_queries
from skewless.retrieval import in_input_order, run_duckdb, write_parquet
from skewless.sqlnames import output_names
from skewless.timeutil import UTC_US

from .maxcompute_client import MC_TYPES, Client, Settings
from .maxcompute_sql import MaxCompute
from .maxcompute_store import MaxComputeOfflineStore, snapshot_filter

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BATCH_ROWS = 65_536
_CANON = ((EVENT_TS, dtypes.UnixTimestamp), (CREATED_TS, dtypes.UnixTimestamp), (WRITE_BATCH, dtypes.Int64),
          (WRITE_ROW, dtypes.Int64))


def engine_from_url(url: str, repo_path: Path, options: dict) -> "MaxComputeEngine":
    return MaxComputeEngine(options)


def offline_from_url(url: str, repo_path: Path, options: dict) -> MaxComputeOfflineStore:
    return MaxComputeOfflineStore(Settings.from_url(url, options))


def _us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def _day(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y%m%d")


def _sql_type(d: dtypes.DType) -> str:
    return "BIGINT" if d is dtypes.UnixTimestamp else d.sql  # instants are stored as epoch microseconds


class Session:
    """What ``connect`` hands out: the running query, so another thread can stop it."""

    def __init__(self):
        self.instance = None

    def interrupt(self) -> None:
        instance = self.instance
        if instance is not None:
            try:
                instance.stop()
            except Exception:  # noqa: BLE001 - it already ended: nothing to stop
                pass

    def close(self) -> None:
        self.instance = None


class MaxComputeEngine(Engine):
    name = "maxcompute"
    dialect = MaxCompute
    supports_asof_join = False
    supports_aggregations = True

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        unknown = set(options) - {"memory_limit", "threads"}
        if unknown:
            raise ConfigError(f"unknown maxcompute engine options {sorted(unknown)} (known: memory_limit, threads "
                              "for the local part; connection settings belong to the maxcompute:// offline store)")
        # Entity rows and rows in memory are prepared here, by the embedded engine's own code.
        self.local = DuckDBEngine(memory_limit=options.get("memory_limit"), threads=options.get("threads"))

    def connect(self, *, spare_cores: int = 0) -> Session:
        return Session()

    @staticmethod
    def client_of(files: HistoryFiles) -> Client:
        if isinstance(files.warehouse_client, Client):
            return files.warehouse_client
        raise ConfigError(f"the maxcompute engine computes over maxcompute:// histories only (offline.url), not "
                          f"{files.uris[0] if files.uris else 'a local history'}")

    def history_relation(self, view: FeatureView, files: HistoryFiles, lo_us: int | None = None,
                         hi_us: int | None = None, batch: int | None = None) -> str:
        """The snapshot's rows with the canonical columns in the view's types (DuckDB syntax: pit.py transpiles the
        whole query). ``lo_us``/``hi_us``: event-time bounds, used to skip date partitions."""
        cols = [*view.join_key_dtypes.items(), *_CANON, *((f.name, f.dtype) for f in view.stored_fields)]
        body = ", ".join(q(c) if files.columns.get(c) == d.arrow else
                         f"CAST({q(c)} AS {_sql_type(d)}) AS {q(c)}" if c in files.columns else
                         f"CAST(NULL AS {_sql_type(d)}) AS {q(c)}" for c, d in cols)
        where = [snapshot_filter(files)]
        where += [f"\"ds\" >= '{_day(lo_us)}'"] if lo_us is not None else []
        where += [f"\"ds\" <= '{_day(hi_us)}'"] if hi_us is not None else []
        where += [f"{q(WRITE_BATCH)} = {int(batch)}"] if batch is not None else []
        table = files.uris[0].rsplit("/", 1)[1]
        return f"(SELECT {body} FROM {q(table)} WHERE {' AND '.join(where)})"

    def tile_scan(self, view: AggregatedView, files: HistoryFiles) -> "MaxComputeTileScan":
        """The online tiles' queries (``aggregation.maintain.TileScan``) pushed down to MaxCompute."""
        return MaxComputeTileScan(self, view, files)

    # -- training sets --------------------------------------------------------------------------------------
    def historical(self, entity: Any, requests: list, files: dict[str, HistoryFiles], *,
                   snapshot: dict[str, int | None], features: list[str], timestamp_column: str,
                   full_feature_names: bool, point_in_time: str, event_timestamps: bool) -> "MaxComputeJob":
        keys = join_key_types(requests)
        con = self.local.connect()
        try:
            relation, cols = self.local.entity_relation(con, entity, timestamp_column,
                                                        {k: d.sql for k, d in keys.items()})
            lo, hi = run_duckdb(lambda: con.execute(
                f"SELECT epoch_us(min({q(timestamp_column)})), epoch_us(max({q(timestamp_column)})) "
                f"FROM {relation}").fetchall()[0])
            by_name = {v.name: v for v, _ in requests}

            def history(view: FeatureView) -> str | None:
                f = files[view.name]
                if f.version is None:
                    return None  # no rows: its features are null, MaxCompute need not be asked
                clients.append(self.client_of(f))
                low = None if lo is None or not view.ttl else lo - view.ttl // timedelta(microseconds=1)
                return self.history_relation(view, f, low, hi)

            def agg_history(view: AggregatedView) -> str | None:
                f = files[view.name]
                if f.version is None:
                    return None
                clients.append(self.client_of(f))
                # Events lie in (floor_hop(t - longest window), t]. With an event id a newer version may move its
                # event out of those days and still replace the older one: then every day is read.
                low = None if lo is None or view.event_id is not None else \
                    lo - view.longest_window_us - view.hop_us
                return self.history_relation(view, f, low, None if view.event_id is not None else hi)
            clients: list[Client] = []
            taken = set(cols)
            plain, aggs = [], []  # ViewQuery; (AggViewQuery, computed in MaxCompute)
            outputs = []  # (name, Arrow type, computed) in output order
            tie_levels = {n: f.tie_level for n, f in files.items()}
            for view, feats in requests:
                if isinstance(view, AggregatedView):
                    names = output_names(view.name, feats, taken, full_feature_names)
                    rel = agg_history(view)
                    # Without rows the same query runs here over an empty history (count 0, last_k [], ...).
                    vq = agg_view_query(view, feats, names, rel or self.local.history_relation(view, files[view.name]),
                                        files[view.name].tie_level)
                    aggs.append((vq, rel is not None))
                    outputs += [(a.output, _agg_arrow(a), True) for a in vq.aggs]
                    continue
                v = view_queries([(view, feats)], taken, history, tie_levels, full_feature_names=full_feature_names,
                                 event_timestamps=event_timestamps)[0]
                plain.append(v)
                types = {f.name: f.dtype.arrow for f in by_name[v.view].features}
                outputs += [(f.output, types[f.feature], v.history is not None) for f in v.features]
                outputs += [(v.event_timestamp_output, UTC_US, v.history is not None)] if v.event_timestamp_output \
                    else []
        except BaseException:
            con.close()
            raise
        return MaxComputeJob(con, relation, cols, keys, timestamp_column, clients[0] if clients else None,
                             tuple(v for v in plain if v.history is not None), point_in_time, outputs, snapshot,
                             features, tuple(aggs))

    # -- materialization ------------------------------------------------------------------------------------
    def latest_rows(self, con: Session, view: FeatureView, source: HistoryFiles | pa.Table, start, end,
                    batch_rows: int = 100_000, tie_level: int = FULL_TIES, *,
                    batch: int | None = None) -> pa.RecordBatchReader:
        schema = pa.schema([*((k, d.arrow) for k, d in view.join_key_dtypes.items()),
                            *((c, d.arrow) for c, d in _CANON), *((f.name, f.dtype.arrow) for f in view.stored_fields)])
        if isinstance(source, pa.Table):  # rows in memory (an ingest's online push): no round trip to MaxCompute
            local = self.local.connect()
            try:
                rows = self.local.latest_rows(local, view, source, start, end, batch_rows, tie_level,
                                              batch=batch).read_all()
            finally:
                local.close()
            return rows.cast(schema).to_reader(batch_rows)
        if source.version is None:
            return schema.empty_table().to_reader()
        client = self.client_of(source)
        end_us, start_us = _us(end), None if start is None else _us(start)
        relation = self.history_relation(view, source, start_us, end_us, batch)
        sql = latest_per_entity(relation, tuple(view.join_keys), tuple(view.feature_names), str(end_us),
                                None if start_us is None else str(start_us), tie_level=source.tie_level,
                                dialect=MaxCompute)
        what = f"materialize {view.name!r}"
        con.instance = client.run(sql, what)
        client.wait(con.instance, what)
        return pa.RecordBatchReader.from_batches(schema, client.result(con.instance, what, schema))

    def tie_level(self, view: FeatureView, rows: pa.Table, prior: HistoryFiles | None) -> int:
        """Ties among ``rows`` are found here; ties against the prior history in MaxCompute, with the rows' distinct
        (keys, event, created) uploaded for one join."""
        level = self.local.tie_level(view, rows, None)
        if level == FULL_TIES or prior is None or prior.version is None:
            return level
        client = self.client_of(prior)
        keys = list(view.join_keys)
        new = rows.select([*keys, EVENT_TS, CREATED_TS]).group_by([*keys, EVENT_TS, CREATED_TS]).aggregate([])
        tmp = client.temp_table([*((k, MC_TYPES[d.name]) for k, d in view.join_key_dtypes.items()),
                                 (EVENT_TS, "BIGINT"), (CREATED_TS, "BIGINT")])
        try:
            client.upload(tmp, new)
            on = " AND ".join(f"n.{q(c)} = h.{q(c)}" for c in [*keys, EVENT_TS])
            sql = (f"SELECT max(CASE WHEN n.{q(CREATED_TS)} = h.{q(CREATED_TS)} THEN 2 ELSE 1 END) AS lvl "
                   f"FROM {q(tmp)} AS n JOIN {self.history_relation(view, prior)} AS h ON {on}")
            what = f"tie check of {view.name!r}"
            instance = client.execute(sqlglot.transpile(sql, read="duckdb", write=MaxCompute)[0], what)
            found = pa.Table.from_batches(list(client.result(instance, what, pa.schema([("lvl", pa.int64())]))))
        finally:
            client.drop(tmp)
        values = [v for v in found.column(0).to_pylist() if v is not None] if found.num_rows else []
        return max([level, *values])


class MaxComputeTileScan:
    """``aggregation.maintain.TileScan`` in MaxCompute: ``tile_sql``'s queries (DuckDB spelling) transpiled, as
    training sets are, over the snapshot-filtered history; each chunk's ranges uploaded through the tunnel into one
    temporary table of this scan (a chunk's query reads its own entity numbers from it), the answers downloaded
    through the instance tunnel as Arrow in the types DuckDB answers in. The partials are computed from them by the
    same code as on DuckDB (``aggregation.maintain``)."""

    def __init__(self, engine: MaxComputeEngine, view: AggregatedView, files: HistoryFiles):
        self._client = engine.client_of(files)
        self._view = view
        # Every date: a correction by event_id may move its event to any day, and still replace the older version.
        self._history = engine.history_relation(view, files)
        self._ranges = ""  # the temporary table, created on first use

    # Entities per events query: each query costs MaxCompute's scheduling latency (seconds) and a scan of the
    # history, so chunks are larger than DuckDB's (maintain.ENTITIES_PER_CHUNK).
    entities_per_chunk = 20_000

    def _run(self, sql: str, what: str, schema: pa.Schema) -> pa.Table:
        client = self._client
        instance = client.execute(sqlglot.transpile(sql, read="duckdb", write=MaxCompute)[0], what)
        return pa.Table.from_batches(list(client.result(instance, what, schema)), schema=schema)

    def touched(self, where: str) -> pa.Table:
        return self._run(tile_sql.view_touched_sql(self._view, self._history, where),
                         f"tiles touched in {self._view.name!r}", tile_sql.touched_schema(self._view))

    def events(self, ranges: pa.Table) -> pa.Table:
        client, view = self._client, self._view
        if not self._ranges:
            self._ranges = client.temp_table([*((k, MC_TYPES[d.name]) for k, d in view.join_key_dtypes.items()),
                                              ("__e", "BIGINT"), ("lo", "BIGINT"), ("hi", "BIGINT")])
        client.upload(self._ranges, ranges)
        # The table holds the ranges of the chunks before too: this chunk's query reads its own entities' only.
        e = ranges.column("__e")
        lo, hi = (int(pc.min(e).as_py()), int(pc.max(e).as_py())) if ranges.num_rows else (0, -1)
        mine = f"(SELECT * FROM {q(self._ranges)} WHERE __e >= {lo} AND __e <= {hi})"
        return self._run(tile_sql.view_events_sql(view, self._history, mine), f"tile events of {view.name!r}",
                         tile_sql.events_schema(view))

    def close(self) -> None:
        if self._ranges:
            self._client.drop(self._ranges)
            self._ranges = ""


def _agg_arrow(a) -> pa.DataType:
    """The Arrow type of an aggregation's output (last_k: a list of the column's type)."""
    return pa.list_(a.dtype.arrow) if a.function == "last_k" else a.dtype.arrow


def _int64_sum(a) -> bool:
    return a.function == "sum" and a.dtype is dtypes.Int64


_WIDE_SUM = pa.decimal128(38, 0)  # how an Int64 sum comes back: checked against Int64 here (maxcompute_sql.py)
_INT64_RANGE = (pa.scalar(-(2 ** 63), _WIDE_SUM), pa.scalar(2 ** 63 - 1, _WIDE_SUM))


@dataclasses.dataclass(frozen=True)
class _Part:
    """One query of a training set: its outputs and ENTITY_ROW (last), unordered and in input order."""
    unordered: str
    ordered: str
    schema: pa.Schema  # as the query returns it
    remote: bool  # in MaxCompute (else over the entity rows here)
    sums: tuple[tuple[str, str], ...] = ()  # (view, output) of Int64 sums, returned as DECIMAL(38,0)
    row_first: bool = False  # the ordered form returns ENTITY_ROW first

    @property
    def result_schema(self) -> pa.Schema:
        sums = {name for _, name in self.sums}
        return pa.schema([pa.field(f.name, pa.int64()) if f.name in sums else f for f in self.schema])

    def finish(self, table: pa.Table | pa.RecordBatch):
        """The Int64 sums checked (the spec's overflow error) and cast to Int64."""
        for view, name in self.sums:
            i = table.schema.get_field_index(name)
            col = table.column(i)
            lo, hi = _INT64_RANGE
            if pc.any(pc.or_(pc.less(col, lo), pc.greater(col, hi))).as_py():
                raise ValidationError(overflow_message(view, name).split(":", 1)[1])
            table = table.set_column(i, name, pc.cast(col, pa.int64()))
        return table


def _ordered(sql: str, dialect) -> str:
    wrapped = f"SELECT * FROM ({sql}) AS r ORDER BY {q(ENTITY_ROW)}"
    return wrapped if dialect == "duckdb" else sqlglot.transpile(wrapped, read="duckdb", write=dialect)[0]


class MaxComputeJob:
    """A training set computed in MaxCompute (see RetrievalJob for the contract). The entity rows are uploaded once,
    on first use; ``to_arrow`` restores input order here, ``to_reader``/``to_parquet`` stream it in order. Plain
    views are one query, each aggregated view its own; their columns are merged by input position."""

    def __init__(self, con, relation: str, cols: list[str], keys: dict, timestamp_column: str, client: Client | None,
                 views: tuple[ViewQuery, ...], point_in_time: str, outputs: list, snapshot: dict, features: list,
                 aggs: tuple[tuple[AggViewQuery, bool], ...] = ()):
        self._con, self._relation, self._cols, self._keys = con, relation, cols, keys
        self._ts, self._client, self._outputs = timestamp_column, client, outputs
        self.snapshot, self.features = snapshot, features
        self._uploaded = self._ready = False
        self._table = client.temp_name() if client else ""  # created, and the rows uploaded, on first use
        self._parts: list[_Part] = []
        if views:
            pq_ = PitQuery(q(self._table), (), timestamp_column, views, point_in_time, ordered=False)
            names = {f.output for v in views for f in v.features} | {v.event_timestamp_output for v in views}
            remote = [(n, t) for n, t, r in outputs if r and n in names]
            schema = pa.schema([*remote, (ENTITY_ROW, pa.int64())])
            ordered = render(dataclasses.replace(pq_, entity_columns=(ENTITY_ROW,), ordered=True), dialect=MaxCompute,
                             strategy="window")
            self._parts.append(_Part(render(pq_, dialect=MaxCompute, strategy="window"), ordered, schema, True,
                                     row_first=True))
        for vq, remote in aggs:
            entity = q(self._table) if remote else relation
            sql = render_training(entity, timestamp_column, vq, point_in_time)
            dialect = MaxCompute if remote else "duckdb"
            sums = tuple((vq.view, a.output) for a in vq.aggs if _int64_sum(a)) if remote else ()
            schema = pa.schema([*((a.output, _WIDE_SUM if remote and _int64_sum(a) else _agg_arrow(a)) for a in vq.aggs),
                                (ENTITY_ROW, pa.int64())])
            self._parts.append(_Part(sql if not remote else sqlglot.transpile(sql, read="duckdb", write=MaxCompute)[0],
                                     _ordered(sql, dialect), schema, remote, sums))
        self.sql = self._parts[0].ordered if self._parts else None

    def _entity_sql(self, with_row: bool = False) -> str:
        cols = [q(c) for c in self._cols] + ([q(ENTITY_ROW)] if with_row else [])
        return f"SELECT {', '.join(cols)} FROM {self._relation} ORDER BY {q(ENTITY_ROW)}"

    def _upload(self) -> None:
        """The temporary table with the entity rows' position, time (epoch microseconds) and join keys."""
        if self._ready:
            return
        client = self._client
        if not self._uploaded:
            client.temp_table([(ENTITY_ROW, "BIGINT"), (self._ts, "BIGINT"),
                               *((k, MC_TYPES[d.name]) for k, d in self._keys.items())], self._table)
            self._uploaded = True  # (from here on ``close`` drops it)
        cols = [q(ENTITY_ROW), f"epoch_us({q(self._ts)}) AS {q(self._ts)}", *(q(k) for k in self._keys)]
        # One tunnel commit: a failed upload leaves the table empty, and the next use uploads again.
        run_duckdb(lambda: client.upload(self._table, self._con.sql(
            f"SELECT {', '.join(cols)} FROM {self._relation}").to_arrow_reader(_BATCH_ROWS)))
        self._ready = True

    def _batches(self, part: _Part, ordered: bool) -> Iterator[pa.RecordBatch]:
        """The part's rows (outputs, then ENTITY_ROW), sums checked."""
        if not part.remote:
            reader = run_duckdb(lambda: self._con.sql(part.ordered if ordered else part.unordered)
                                .to_arrow_reader(_BATCH_ROWS))
            return (part.finish(b) for b in run_duckdb(lambda: list(reader)))
        self._upload()
        schema = wire = part.schema
        if ordered and part.row_first:  # the PIT query's ordered form returns ENTITY_ROW first
            wire = pa.schema([schema.field(ENTITY_ROW), *list(schema)[:-1]])
        instance = self._client.execute(part.ordered if ordered else part.unordered, "training set")
        batches = self._client.result(instance, "download the training set", wire)
        if wire is not schema:
            batches = (b.select(schema.names) for b in batches)
        return (part.finish(b) for b in batches)

    def to_arrow(self) -> pa.Table:
        """The training set in memory, in input order (the parts are gathered into it here)."""
        values = {}
        for part in self._parts:
            got = pa.Table.from_batches(list(self._batches(part, ordered=False)), schema=part.result_schema)
            values.update(zip(got.column_names, in_input_order(got)))
        table = run_duckdb(lambda: self._con.sql(self._entity_sql()).to_arrow_reader(_BATCH_ROWS).read_all())
        columns = [*table.columns, *(values[n] if r else pa.nulls(table.num_rows, t) for n, t, r in self._outputs)]
        return pa.table(columns, names=[*table.column_names, *(n for n, _, _ in self._outputs)])

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_df(self):  # Feast's name
        return self.to_pandas()

    def to_reader(self, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Stream the training set in input order: the entity rows read here and each part's rows (ordered by input
        position) are zipped batch by batch."""
        parts = [_Rows(self._batches(p, ordered=True)) for p in self._parts]
        entity = run_duckdb(lambda: self._con.sql(self._entity_sql(with_row=True)).to_arrow_reader(batch_rows))
        fields = [*list(entity.schema)[:-1], *(pa.field(n, t) for n, t, _ in self._outputs)]
        schema = pa.schema(fields)

        def batches() -> Iterator[pa.RecordBatch]:
            for rows in entity:
                n = rows.num_rows
                values = {}
                for remote in parts:
                    part = remote.take(n)
                    if not part.column(ENTITY_ROW).combine_chunks().equals(rows.column(rows.num_columns - 1)):
                        raise EngineError("MaxCompute returned the training set out of input order")
                    values.update((name, part.column(name)) for name in part.column_names if name != ENTITY_ROW)
                columns = [*rows.columns[:-1], *(values[name].combine_chunks() if r else pa.nulls(n, t)
                                                 for name, t, r in self._outputs)]
                yield pa.RecordBatch.from_arrays(columns, schema=schema)
        return pa.RecordBatchReader.from_batches(schema, batches())

    def to_parquet(self, path: str | Path) -> Path:
        """Write the training set to one Parquet file without holding it in memory, with the snapshot beside it."""
        return write_parquet(self.to_reader(), path, self.snapshot)

    def close(self) -> None:
        """Drop the uploaded entity rows now rather than at the end of their lifecycle."""
        if self._uploaded:
            self._client.drop(self._table)
            self._uploaded = self._ready = False
        self._con.close()


class _Rows:
    """Hands out the next ``n`` rows of a stream of batches, whatever sizes the batches come in."""

    def __init__(self, batches: Iterator[pa.RecordBatch]):
        self._batches, self._buffer, self._have = batches, [], 0

    def take(self, n: int) -> pa.Table:
        while self._have < n:
            batch = next(self._batches, None)
            if batch is None:
                raise EngineError("MaxCompute returned fewer rows than there are entity rows")
            self._buffer.append(batch)
            self._have += batch.num_rows
        table = pa.Table.from_batches(self._buffer)
        self._buffer, self._have = table.slice(n).to_batches(), self._have - n
        return table.slice(0, n)
