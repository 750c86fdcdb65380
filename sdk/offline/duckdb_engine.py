"""The embedded offline engine: DuckDB over the Parquet files of each view's history.

DuckDB streams and spills (``memory_limit`` + ``temp_directory``), so entity tables and histories larger than
memory work: nothing here pulls a whole history into Python.
"""

from __future__ import annotations

import atexit
import dataclasses
import glob
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import dtypes
from ..definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from ..aggregation.definition import AggregatedView
from ..aggregation import tile_sql
from ..aggregation.sql import AggViewQuery, agg_view_query, render_training
from ..errors import ValidationError
from ..sqlnames import output_names
from ..timeutil import parse_timestamps, to_utc_us  # floors sub-microsecond times exactly as ingest does
from .base import EVENT_TIES, FULL_TIES, NO_TIES, Engine, HistoryFiles, distinct_keys
from .gather import POSITION, PositionGather, position_sql
from .key_packing import packing, packing_stats_sql
from .pit import ENTITY_ROW, PitQuery, ViewQuery, join_key_types, latest_per_entity, q, render, view_queries

if TYPE_CHECKING:
    from ..retrieval import RetrievalJob

_CANON = {EVENT_TS: "TIMESTAMPTZ", CREATED_TS: "TIMESTAMPTZ", WRITE_BATCH: "BIGINT", WRITE_ROW: "BIGINT"}


def _sql_list(items: Iterable[str]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


@dataclasses.dataclass(frozen=True)
class PitPlan:
    """A training set as SQL: ``ordered`` streams whole rows in input order; ``entity`` gives the input columns
    in input order and each of ``per_view`` one view's features (or their position, see ``gathers``), unordered,
    with the input position last."""

    ordered: str
    entity: str
    per_view: tuple[str, ...]
    # Per view: None when its query returns the features, else the PositionGather that reads them by the
    # position the (narrow) query returns in their place.
    gathers: tuple[PositionGather | None, ...]


# small_session's databases: (memory limit, threads, spill folder) -> (pid, database), shared by every engine of
# the process with those settings.
_SMALL: dict[tuple, tuple[int, duckdb.DuckDBPyConnection]] = {}
_SMALL_LOCK = threading.Lock()


class DuckDBEngine(Engine):
    """Runs point-in-time joins and materialization scans with DuckDB."""

    name = "duckdb"
    dialect = "duckdb"
    supports_asof_join = True
    supports_aggregations = True

    def __init__(self, *, memory_limit: str | None = None, threads: int | None = None,
                 temp_directory: str | None = None):
        self.memory_limit = memory_limit or os.environ.get("SKEWLESS_DUCKDB_MEMORY", "1536MB")
        self.threads = threads
        # Spill files go to a folder of this process's own: concurrent processes must not share one.
        self.temp_directory = temp_directory or os.path.join(tempfile.gettempdir(), f"skewless-spill-{os.getpid()}")

    def connect(self, *, spare_cores: int = 0) -> duckdb.DuckDBPyConnection:
        """A connection of its own. ``spare_cores``: run on that many fewer threads than configured (at least one),
        leaving cores to work that runs alongside (materialize writes online while it scans the next view)."""
        # Results come back in input order through an explicit position column, never through DuckDB's
        # insertion-order preservation, which costs memory in joins.
        con = duckdb.connect(config={"memory_limit": self.memory_limit, "temp_directory": self.temp_directory,
                                     "preserve_insertion_order": False,
                                     **({"threads": self.threads} if self.threads else {})})
        con.execute("SET TimeZone = 'UTC'")
        if spare_cores:
            threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
            con.execute(f"SET threads = {max(1, int(threads) - spare_cores)}")
        return con

    def small_session(self) -> duckdb.DuckDBPyConnection:
        """A session for the write path's small, short queries (an append's tie check, a micro-batch's winners): a
        cursor of one database kept per process and settings (``_SMALL``), ~0.5 ms instead of the ~10-40 ms a
        database of its own (``connect``) costs, which every stream micro-batch paid twice, and every new engine
        (a FeatureStore opened again in the same process: a scheduler's next incremental ingest) paid once. Same
        settings; temporary tables and registered relations stay the cursor's own. Never with spare cores: threads
        are a database-wide setting."""
        key = (self.memory_limit, self.threads, self.temp_directory)
        with _SMALL_LOCK:
            shared = _SMALL.get(key)
            if shared is None or shared[0] != os.getpid():  # a forked child opens its own
                shared = _SMALL[key] = (os.getpid(), self.connect())
                # Closed at exit: an open database at interpreter exit makes DuckDB's bindings print reference-leak
                # warnings.
                atexit.register(shared[1].close)
            con = shared[1].cursor()
        con.execute("SET TimeZone = 'UTC'")
        return con

    # -- relations ------------------------------------------------------------------------------------------
    def history_relation(self, view: FeatureView, files: HistoryFiles,
                         con: duckdb.DuckDBPyConnection | None = None, *, position: bool = False) -> str:
        """A subquery with the canonical history columns, cast to the view's declared types; with ``position``
        (local files only, see ``_gatherable``) also each row's POSITION in ``files.uris``.

        Histories on an object store (``files.filesystem`` set) are registered on ``con`` as a pyarrow dataset:
        DuckDB scans it lazily with projection and filter pushdown, so nothing is pulled into memory whole."""
        cols = [(k, d.sql) for k, d in view.join_key_dtypes.items()] + list(_CANON.items())
        cols += [(f.name, f.dtype.sql) for f in view.stored_fields]
        if not files.uris:
            body = ", ".join(f"CAST(NULL AS {t}) AS {q(c)}" for c, t in cols)
            return f"(SELECT {body} WHERE false)"
        stored = {c: _arrow_sql(t) for c, t in files.columns.items()}
        body = ", ".join(q(c) if stored.get(c) == t else
                         f"CAST({q(c)} AS {t}) AS {q(c)}" if c in stored else f"CAST(NULL AS {t}) AS {q(c)}"
                         for c, t in cols)
        if files.filesystem is not None:
            return f"(SELECT {body} FROM {self._register_dataset(con, files)})"
        # union_by_name only when the view's schema grew: older files then lack the newer columns.
        union = ", union_by_name = true" if files.evolved else ""
        if position:
            body, union = f"{body}, {position_sql()} AS {q(POSITION)}", f"{union}, file_row_number = true"
        return f"(SELECT {body} FROM read_parquet({_sql_list(files.uris)}{union}))"

    def tile_scan(self, view: AggregatedView, files: HistoryFiles) -> "DuckDBTileScan":
        """The online tiles' queries (``aggregation.maintain.TileScan``) over ``files``, on a session of its own."""
        return DuckDBTileScan(self, view, files)

    @staticmethod
    def _register_dataset(con: duckdb.DuckDBPyConnection | None, files: HistoryFiles) -> str:
        if con is None:
            raise TypeError("history_relation needs the connection to scan a history on an object store")
        import pyarrow.dataset as ds

        # The table's full schema: files written before a feature was added read it as null.
        paths = [u.split("://", 1)[-1] for u in files.uris]
        dataset = ds.dataset(paths, schema=pa.schema(files.columns), format="parquet", filesystem=files.filesystem)
        name = f"__skewless_hist_{abs(hash((files.view, files.version, id(con)))):x}"
        con.register(name, dataset)
        return name

    def entity_relation(self, con: duckdb.DuckDBPyConnection, entity: Any, timestamp_column: str,
                        key_types: dict[str, str]) -> tuple[str, list[str]]:
        """Register the entity rows; return (relation, pass-through columns in order).

        The relation carries ENTITY_ROW (input position), the timestamp as TIMESTAMPTZ in UTC (naive = UTC) and
        join keys cast to the views' key types."""
        if isinstance(entity, (str, Path)):
            files = parquet_files(str(entity))
            src = f"read_parquet({_sql_list(files)}{', filename = true' if len(files) > 1 else ''}, file_row_number = true)"
            try:
                described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_list(files)})").fetchall()
            except (duckdb.InvalidInputException, duckdb.IOException) as exc:  # not Parquet, truncated, corrupt
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ValidationError(f"entity rows {entity}: not a readable Parquet file ({reason})") from exc
            cols, types = [r[0] for r in described], {r[0]: r[1] for r in described}
            # Input position without a window over the whole input: (file index, row in file).
            row = ("file_row_number" if len(files) == 1 else
                   f"(CAST(list_position({_sql_list(files)}, filename) AS BIGINT) << 40) + file_row_number")
        else:
            table = _entity_arrow(entity, timestamp_column)
            cols = table.column_names
            con.register("__skewless_entity_raw", table.append_column(
                ENTITY_ROW, pa.array(range(table.num_rows), pa.int64())))
            src, row = "__skewless_entity_raw", q(ENTITY_ROW)
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        if timestamp_column not in cols:
            raise ValidationError(f"entity rows have no timestamp column {timestamp_column!r} (columns: {cols})",
                                  column=timestamp_column)
        missing = [k for k in key_types if k not in cols]
        if missing:
            raise ValidationError(f"entity rows lack join key columns {missing} (columns: {cols})", column=missing[0])
        if ENTITY_ROW in cols:
            raise ValidationError(f"entity column name {ENTITY_ROW!r} is reserved", column=ENTITY_ROW)
        exprs = []
        for c in cols:
            if c == timestamp_column and types.get(c) in ("TIMESTAMP_NS", "TIMESTAMPTZ_NS"):  # floor, as ingest does (never round)
                ns = f"epoch_ns({q(c)})"  # integer floor division: a double would round at this magnitude
                us = f"({ns} // 1000 - CASE WHEN {ns} % 1000 < 0 THEN 1 ELSE 0 END)"
                exprs.append(f"CAST(make_timestamp({us}) AS TIMESTAMPTZ) AS {q(c)}")
            elif c == timestamp_column and types.get(c) != "TIMESTAMP WITH TIME ZONE":
                exprs.append(f"CAST({q(c)} AS TIMESTAMPTZ) AS {q(c)}")
            elif c in key_types and types.get(c) != key_types[c]:
                exprs.append(f"CAST({q(c)} AS {key_types[c]}) AS {q(c)}")
            else:
                exprs.append(q(c))
        con.execute(f"CREATE TEMP VIEW __skewless_entity AS SELECT {', '.join(exprs)}, {row} AS {q(ENTITY_ROW)} "
                    f"FROM {src}")
        return "__skewless_entity", cols

    # -- queries --------------------------------------------------------------------------------------------
    def historical(self, entity: Any, requests: list[tuple[FeatureView, list[str]]], files: dict[str, HistoryFiles],
                   *, snapshot: dict[str, int | None], features: list[str], **kw) -> "RetrievalJob":
        from ..retrieval import RetrievalJob

        con = self.connect()
        try:
            plan = self.pit_sql(con, entity, requests, files, **kw)
        except BaseException:
            con.close()
            raise
        return RetrievalJob(con, plan, snapshot, features)

    def pit_sql(self, con: duckdb.DuckDBPyConnection, entity: Any, requests: list[tuple[FeatureView, list[str]]],
                files: dict[str, HistoryFiles], *, timestamp_column: str, full_feature_names: bool,
                point_in_time: str, event_timestamps: bool, strategy: str | None = None) -> PitPlan:
        key_types = {k: d.sql for k, d in join_key_types(requests).items()}
        relation, cols = self.entity_relation(con, entity, timestamp_column, key_types)
        taken = set(cols)
        # One query per requested view, in request order: a plain view's PIT join, or an aggregated view's range
        # join (aggregation/sql.py); output names are checked against the input columns and each other in order.
        parts: list = []
        for view, feats in requests:
            if isinstance(view, AggregatedView):
                outputs = output_names(view.name, feats, taken, full_feature_names)
                parts.append(agg_view_query(view, feats, outputs, self.history_relation(view, files[view.name], con),
                                            files[view.name].tie_level))
            else:
                parts.append(view_queries([(view, feats)], taken,
                                          lambda v: self.history_relation(v, files[v.name], con),
                                          {view.name: files[view.name].tie_level}, full_feature_names=full_feature_names,
                                          event_timestamps=event_timestamps)[0])
        asof = point_in_time == "event" and strategy in (None, "asof")
        if asof:
            # At tie level 1 the ASOF key is (event, created). Whether it fits a BIGINT was recorded at ingest, or
            # else (histories written before it was) one cheap scan finds out.
            parts = [dataclasses.replace(v, packing=files[v.view].key_packing if files[v.view].key_packing_known
                                         else packing(con.execute(packing_stats_sql(v.history)).fetchall()[0]))
                     if isinstance(v, ViewQuery) and v.tie_level == EVENT_TIES else v for v in parts]
        views = tuple(v for v in parts if isinstance(v, ViewQuery))
        pq = PitQuery(relation, tuple(cols), timestamp_column, views, point_in_time)
        # The same query, also split per view: one narrow join at a time needs less memory and sorts less payload
        # than a chain of joins that carries every earlier view's features through every later join.
        # Where the join is an ASOF over local Parquet, it is narrow: it returns the winner's position, and the
        # features are read afterwards by position (offline/gather.py), instead of riding through the join's sort.
        per_view, gathers, wide = [], [], []
        for (view, _), v in zip(requests, parts):
            if isinstance(v, AggViewQuery):
                sql = render_training(relation, timestamp_column, v, point_in_time, dialect=self.dialect)
                per_view.append(sql)
                wide.append((sql, [a.output for a in v.aggs]))
                gathers.append(None)
                continue
            one = dataclasses.replace(pq, views=(v,), entity_columns=(), ordered=False)
            wide.append((render(one, dialect=self.dialect, strategy=strategy),
                         [f.output for f in v.features] + ([v.event_timestamp_output] if v.event_timestamp_output
                                                           else [])))
            gather = _gatherable(view, files[view.name], v.features) if asof else None
            if gather is not None:
                one = dataclasses.replace(one, views=(dataclasses.replace(
                    v, position=POSITION, history=self.history_relation(view, files[view.name], con, position=True)),))
            per_view.append(render(one, dialect=self.dialect, strategy=strategy))
            gathers.append(gather)
        entity_sql = f"SELECT {', '.join(q(c) for c in cols)} FROM {relation} ORDER BY {q(ENTITY_ROW)}"
        if len(views) == len(parts):
            ordered = render(pq, dialect=self.dialect, strategy=strategy)
        else:  # the per-view results joined back on the input position
            ordered = _ordered(relation, cols, wide)
        return PitPlan(ordered, entity_sql, tuple(per_view), tuple(gathers))

    def tie_level(self, view: FeatureView, rows: pa.Table, prior: HistoryFiles | None) -> int:
        """The tie level (HistoryFiles.tie_level) of ``rows`` among themselves and against ``prior`` history."""
        keys = [q(c) for c in view.join_keys]
        by_event, by_created = ", ".join(keys + [q(EVENT_TS)]), ", ".join(keys + [q(EVENT_TS), q(CREATED_TS)])
        con = self.small_session()
        try:
            con.register("__skewless_new", rows)
            hist = self.history_relation(view, prior, con) if prior is not None and prior.uris else None
            first = pc.min(rows.column(EVENT_TS)).value if hist is not None and rows.num_rows else None
            if first is not None:
                # Only history rows at or after the new rows' first event can tie with them: a literal bound that
                # DuckDB pushes into the Parquet scan, so row groups before it (all of an older history, when rows
                # arrive in time order: incremental source ingests) are skipped by their statistics, not read.
                hist = f"(SELECT * FROM {hist} WHERE {q(EVENT_TS)} >= make_timestamptz({int(first)}))"

            # Rows of distinct keys tie with none of themselves: only the history is asked (one query, not two).
            among = not distinct_keys(rows, list(view.join_keys))

            def ties(cols: str) -> bool:
                if among and con.execute(
                        f"SELECT 1 FROM __skewless_new GROUP BY {cols} HAVING count(*) > 1 LIMIT 1").fetchone():
                    return True
                return hist is not None and con.execute(
                    f"SELECT 1 FROM __skewless_new SEMI JOIN {hist} AS h USING ({cols}) LIMIT 1").fetchone() is not None
            # A tie on (keys, event, created) is one on (keys, event) too: without the latter, neither (one check).
            if not ties(by_event):
                return NO_TIES
            return FULL_TIES if ties(by_created) else EVENT_TIES
        finally:
            con.close()

    def packing_stats(self, view: FeatureView, prior: HistoryFiles) -> tuple | None:
        """The ``packing_stats_sql`` row of a history snapshot (for the store's recorded key packing); None when the
        scan fails (times so extreme their difference overflows): the store then records nothing."""
        con = self.small_session()
        try:
            return con.execute(packing_stats_sql(self.history_relation(view, prior, con))).fetchall()[0]
        except duckdb.Error:
            return None
        finally:
            con.close()

    def latest_rows(self, con: duckdb.DuckDBPyConnection, view: FeatureView, source: HistoryFiles | pa.Table | str,
                    start, end, batch_rows: int = 100_000, tie_level: int = FULL_TIES, *,
                    batch: int | None = None) -> pa.RecordBatchReader:
        """Per entity, the winner at ``end`` among rows with event in [start, end] (start None: unbounded), in key
        order, streamed. ``source``: a history snapshot (its recorded tie level picks the cheapest exact query; only
        write ``batch`` when given), rows in memory, or the name of a relation with the same columns; the ties of
        the last two are described by ``tie_level``."""
        con.execute("CREATE OR REPLACE TEMP TABLE __skewless_bounds AS SELECT CAST($1 AS TIMESTAMPTZ) AS s, "
                    "CAST($2 AS TIMESTAMPTZ) AS e", [start, end])
        if isinstance(source, pa.Table):
            con.register("__skewless_rows", source)
            relation = "__skewless_rows"
        elif isinstance(source, str):
            relation = source
        else:
            relation, tie_level = self.history_relation(view, source, con), source.tie_level
        if batch is not None:
            relation = f"(SELECT * FROM {relation} WHERE {q(WRITE_BATCH)} = {int(batch)})"
        sql = latest_per_entity(relation, tuple(view.join_keys), tuple(view.feature_names),
                                "(SELECT e FROM __skewless_bounds)",
                                "(SELECT s FROM __skewless_bounds)" if start is not None else None,
                                tie_level=tie_level, dialect=self.dialect)
        return con.sql(sql).to_arrow_reader(batch_rows)


def _ordered(relation: str, cols: list[str], parts: list[tuple[str, list[str]]]) -> str:
    """Whole rows in input order from per-view queries that each return their outputs and ENTITY_ROW."""
    select = [f"e.{q(c)}" for c in cols]
    joins = []
    for i, (sql, outputs) in enumerate(parts):
        select += [f"p{i}.{q(o)}" for o in outputs]
        joins.append(f"LEFT JOIN ({sql}) AS p{i} ON p{i}.{q(ENTITY_ROW)} = e.{q(ENTITY_ROW)}")
    return (f"SELECT {', '.join(select)} FROM {relation} AS e " + " ".join(joins) + f" ORDER BY e.{q(ENTITY_ROW)}")


def _gatherable(view: FeatureView, files: HistoryFiles, features) -> PositionGather | None:
    """A PositionGather for ``features`` (pit.FeatureColumn) of this history when reading them by position gives
    exactly what the join would carry: local Parquet files that all have every column, stored in the declared
    types (no cast to mirror). None otherwise: the join then carries the features itself."""
    if files.filesystem is not None or not files.uris or files.evolved:
        return None
    if {"file_index", "file_row_number"} & set(files.columns):  # would shadow DuckDB's virtual columns
        return None
    declared = {f.name: f.dtype.arrow for f in view.stored_fields}
    if any(files.columns.get(f.feature) != declared[f.feature] for f in features):
        return None
    return PositionGather(tuple(u.removeprefix("file://") for u in files.uris), tuple(f.feature for f in features),
                          tuple(f.output for f in features), tuple(declared[f.feature] for f in features))


def _arrow_sql(t: pa.DataType) -> str | None:
    """The DuckDB type a stored Arrow column reads as, for the types skewless writes (None: always cast)."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    for d in dtypes.ALL.values():
        if d.arrow == t:
            return d.sql
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    return None


def parquet_files(path: str) -> list[str]:
    """A Parquet file, a folder of them, or a glob -> the sorted list of files (input order = this order)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
    else:
        files = [path]
    if not files or not all(Path(f).exists() for f in files):
        raise ValidationError(f"no Parquet file at {path!r}")
    return files


def _entity_arrow(entity: Any, ts: str) -> pa.Table:
    if isinstance(entity, pd.DataFrame):
        df = entity
        if ts in df.columns and not isinstance(df[ts].dtype, pd.DatetimeTZDtype):
            df = df.copy()
            df[ts] = parse_timestamps(df[ts], ts)
        table = pa.Table.from_pandas(df, preserve_index=False)
    elif isinstance(entity, pa.RecordBatch):
        table = pa.Table.from_batches([entity])
    elif isinstance(entity, pa.Table):
        table = entity
    else:
        raise ValidationError("entity rows must be a pandas or polars DataFrame, a pyarrow Table, a Parquet path or "
                              f"glob, or a SQL query, not {type(entity).__name__}")
    if ts in table.column_names and pa.types.is_timestamp(table.schema.field(ts).type):
        table = table.set_column(table.column_names.index(ts), ts, to_utc_us(table.column(ts)))
    return table


class DuckDBTileScan:
    """``aggregation.maintain.TileScan`` on DuckDB: ``tile_sql`` as written, the ranges registered as Arrow."""

    _RANGES = "__skewless_ranges"

    def __init__(self, engine: DuckDBEngine, view: AggregatedView, files: HistoryFiles):
        # a cursor of the process's shared database (``small_session``): a database of its own costs ~15-60 ms to
        # open and close, a tenth of an ingest of 100k events; the ranges and datasets it registers stay its own
        self._con = engine.small_session()
        self._view = view
        self._history = engine.history_relation(view, files, self._con)
        self._events = tile_sql.view_events_sql(view, self._history, self._RANGES)

    def touched(self, where: str) -> pa.Table:
        return self._con.sql(tile_sql.view_touched_sql(self._view, self._history, where)).to_arrow_table()

    def count(self, where: str) -> tuple[int, int]:
        total, matching = self._con.execute(tile_sql.count_sql(self._history, where)).fetchall()[0]
        return int(total), int(matching)

    def events(self, ranges: pa.Table) -> pa.Table:
        self._con.register(self._RANGES, ranges)
        try:
            return self._con.sql(self._events).to_arrow_table()
        finally:
            self._con.unregister(self._RANGES)

    def close(self) -> None:
        self._con.close()
