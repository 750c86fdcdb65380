"""Storage of the local MaxCompute emulator: one DuckDB file per project (``<state>/maxcompute/<project>.duckdb``)
holding the tables (partition columns are real columns, after the data columns), a catalog of table metadata in
MaxCompute types (``__mc_tables``) and the partition list (``__mc_partitions``). Every write is one DuckDB
transaction: rows and the partitions they create appear together or not at all.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from odps.models import TableSchema
from odps.tunnel.io.types import odps_schema_to_arrow_schema

from .maxcompute_emulator_sql import (ALREADY_EXISTS, NO_SUCH_TABLE, RUNTIME_ERROR, SEMANTIC_ERROR, Column, SqlError, Statement,
                             duck_type, mc_type_of, plan)

_CATALOG = ("CREATE TABLE IF NOT EXISTS __mc_tables (name VARCHAR PRIMARY KEY, meta VARCHAR NOT NULL);"
            "CREATE TABLE IF NOT EXISTS __mc_partitions (table_name VARCHAR, spec VARCHAR, created DOUBLE, "
            "PRIMARY KEY (table_name, spec));")
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class TableMeta:
    name: str
    columns: list[Column]
    partition_columns: list[Column] = field(default_factory=list)
    comment: str = ""
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)

    @classmethod
    def load(cls, doc: str) -> "TableMeta":
        d = json.loads(doc)
        d["columns"] = [Column(**c) for c in d["columns"]]
        d["partition_columns"] = [Column(**c) for c in d["partition_columns"]]
        return cls(**d)

    def dump(self) -> str:
        return json.dumps(asdict(self))

    def odps_schema(self) -> TableSchema:
        return TableSchema.from_lists([c.name for c in self.columns], [c.type for c in self.columns],
                                      [c.name for c in self.partition_columns],
                                      [c.type for c in self.partition_columns])

    def schema_doc(self) -> dict:
        """The table schema JSON MaxCompute returns (REST table metadata and tunnel sessions)."""
        def cols(cs):
            return [{"name": c.name, "type": c.type, "comment": c.comment, "isNullable": True} for c in cs]
        return {"tableName": self.name, "comment": self.comment, "columns": cols(self.columns),
                "partitionKeys": cols(self.partition_columns), "createTime": int(self.created),
                "lastDDLTime": int(self.created), "lastModifiedTime": int(self.modified), "isVirtualView": False,
                "lifecycle": -1, "owner": "ALIYUN$local", "tableLabel": "", "size": 0}

    def spec_string(self, spec: dict[str, str]) -> str:
        """Canonical ``a=1,b=2`` in partition-column order; the spec must name every partition column."""
        names = [c.name for c in self.partition_columns]
        if not names:
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception", f"table {self.name} is not partitioned")
        if sorted(spec) != sorted(names):
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                           f"partition spec {spec} of table {self.name} must name exactly {names}")
        return ",".join(f"{n}={spec[n]}" for n in names)

    def spec_filter(self, spec: dict[str, str]) -> str:
        return " AND ".join(f"{_q(c.name)} = CAST({_lit(spec[c.name])} AS {duck_type(c.type)})"
                            for c in self.partition_columns)


def parse_spec_string(spec: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in spec.split(",")) if spec else {}


@dataclass
class Result:
    """A query's rows with their MaxCompute schema (column names and types)."""
    names: list[str]
    types: list[str]
    table: pa.Table

    def odps_schema(self) -> TableSchema:
        return TableSchema.from_lists(self.names, self.types)

    def schema_doc(self) -> dict:
        return {"columns": [{"name": n, "type": t, "comment": "", "isNullable": True}
                            for n, t in zip(self.names, self.types)], "partitionKeys": []}


class Project:
    def __init__(self, name: str, path: Path):
        self.name = name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # one connection per project; requests take turns
        self.con = duckdb.connect(str(path))
        self._run("SET TimeZone = 'UTC'")  # MaxCompute's project time zone, here: all times are UTC
        for ddl in _CATALOG.split(";")[:-1]:
            self._run(ddl)

    def _run(self, sql: str, params=None) -> list[tuple]:
        """Execute and drain (DuckDB refuses new work on a connection with an unfinished result), holding the
        project lock: the connection is shared by the server's threads."""
        with self.lock:
            return (self.con.execute(sql, params) if params is not None else self.con.execute(sql)).fetchall()

    # -- catalog --------------------------------------------------------------------------------------------------
    def table(self, name: str) -> TableMeta | None:
        rows = self._run("SELECT meta FROM __mc_tables WHERE name = ?", [name.lower()])
        return TableMeta.load(rows[0][0]) if rows else None

    def require(self, name: str) -> TableMeta:
        meta = self.table(name)
        if meta is None:
            raise SqlError(NO_SUCH_TABLE, "Table not found", f"table {self.name}.{name} cannot be resolved")
        return meta

    def tables(self) -> list[TableMeta]:
        return [TableMeta.load(r[0]) for r in self._run("SELECT meta FROM __mc_tables ORDER BY name")]

    def partitions(self, name: str) -> list[tuple[str, float]]:
        return self._run("SELECT spec, created FROM __mc_partitions WHERE table_name = ? ORDER BY spec",
                                [name])

    def has_partition(self, name: str, spec: str) -> bool:
        return bool(self._run("SELECT 1 FROM __mc_partitions WHERE table_name = ? AND spec = ?", [name, spec]))

    def _create(self, meta: TableMeta, if_not_exists: bool) -> bool:
        if meta.name.startswith("__mc_"):
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception", "table names starting __mc_ are reserved")
        if self.table(meta.name) is not None:
            if if_not_exists:
                return False
            raise SqlError(ALREADY_EXISTS, "Table or view already exists", f"{self.name}.{meta.name}")
        names = [c.name for c in meta.columns + meta.partition_columns]
        if len(set(names)) != len(names):
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception", f"duplicate column names in {names}")
        cols = ", ".join(f"{_q(c.name)} {duck_type(c.type)}" for c in meta.columns + meta.partition_columns)
        self._run(f"CREATE TABLE {_q(meta.name)} ({cols})")
        self._run("INSERT INTO __mc_tables VALUES (?, ?)", [meta.name, meta.dump()])
        return True

    def _drop(self, name: str, if_exists: bool) -> None:
        if self.table(name) is None:
            if if_exists:
                return
            self.require(name)
        self._run(f"DROP TABLE {_q(name)}")
        self._run("DELETE FROM __mc_tables WHERE name = ?", [name])
        self._run("DELETE FROM __mc_partitions WHERE table_name = ?", [name])

    def _add_partition(self, meta: TableMeta, spec: str) -> None:
        self._run("INSERT INTO __mc_partitions VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         [meta.name, spec, time.time()])

    def _touch(self, meta: TableMeta) -> None:
        meta.modified = time.time()
        self._run("UPDATE __mc_tables SET meta = ? WHERE name = ?", [meta.dump(), meta.name])

    # -- transactions ---------------------------------------------------------------------------------------------
    def atomic(self, fn, *args, **kw):
        with self.lock:
            self._run("BEGIN TRANSACTION")
            try:
                out = fn(*args, **kw)
            except duckdb.Error as exc:  # e.g. a value that does not convert on INSERT: the task fails, loudly
                self._run("ROLLBACK")
                raise SqlError(RUNTIME_ERROR, "Runtime error", f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                self._run("ROLLBACK")
                raise
            self._run("COMMIT")
            return out

    # -- data -----------------------------------------------------------------------------------------------------
    def _write(self, meta: TableMeta, data: pa.Table, static: dict[str, str], dynamic: list[str], overwrite: bool,
               create_partition: bool) -> int:
        """Rows of ``data`` (by position: the data columns, then the dynamic partition columns) into ``meta``."""
        pnames = [c.name for c in meta.partition_columns]
        if pnames and list(static) + dynamic != pnames:
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                           f"table {meta.name} is partitioned by {pnames}: a write must name them all, got "
                           f"{list(static) + dynamic}")
        if not pnames and (static or dynamic):
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception", f"table {meta.name} is not partitioned")
        expected = len(meta.columns) + len(dynamic)
        if data.num_columns != expected:
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                           f"table {meta.name} expects {expected} columns, the data has {data.num_columns}")
        src = data.rename_columns([f"c{i}" for i in range(data.num_columns)])
        self.con.register("__mc_src", src)
        try:
            pcols = {c.name: c for c in meta.partition_columns}
            select = [f"CAST(c{i} AS {duck_type(c.type)})" for i, c in enumerate(meta.columns)]
            select += [f"CAST({_lit(v)} AS {duck_type(pcols[k].type)})" for k, v in static.items()]
            select += [f"CAST(c{len(meta.columns) + j} AS {duck_type(pcols[k].type)})" for j, k in enumerate(dynamic)]
            specs = [dict(static)] if pnames and not dynamic else []
            if dynamic:
                cols = ", ".join(f"CAST(c{len(meta.columns) + j} AS VARCHAR)" for j in range(len(dynamic)))
                for row in self._run(f"SELECT DISTINCT {cols} FROM __mc_src"):
                    if any(v is None for v in row):
                        raise SqlError(RUNTIME_ERROR, "Runtime error", f"NULL dynamic partition value for {dynamic}")
                    specs.append({**static, **dict(zip(dynamic, row))})
            for spec in specs:
                key = meta.spec_string(spec)
                if not self.has_partition(meta.name, key):
                    if not create_partition:
                        raise SqlError("NoSuchPartition", "Partition not found", f"{meta.name} partition {key}")
                    self._add_partition(meta, key)
                if overwrite:
                    self._run(f"DELETE FROM {_q(meta.name)} WHERE {meta.spec_filter(spec)}")
            if overwrite and not pnames:
                self._run(f"DELETE FROM {_q(meta.name)}")
            names = [c.name for c in meta.columns] + list(static) + dynamic
            self._run(f"INSERT INTO {_q(meta.name)} ({', '.join(map(_q, names))}) SELECT {', '.join(select)} "
                      "FROM __mc_src")
        finally:
            try:
                self.con.unregister("__mc_src")
            except duckdb.Error:  # the transaction is aborted: keep the real error; the next register replaces it
                pass
        self._touch(meta)
        return data.num_rows

    def write(self, name: str, data: pa.Table, spec: dict[str, str], overwrite: bool, create_partition: bool) -> int:
        return self.atomic(lambda: self._write(self.require(name), data, spec, [], overwrite, create_partition))

    def read(self, meta: TableMeta, spec: dict[str, str] | None) -> pa.Table:
        """The data columns (as the tunnel serves them) of the whole table or one partition."""
        cols = ", ".join(_q(c.name) for c in meta.columns)
        where = f" WHERE {meta.spec_filter(spec)}" if spec else ""
        with self.lock:
            return self.con.sql(f"SELECT {cols} FROM {_q(meta.name)}{where}").to_arrow_table()

    def _query(self, sql: str) -> Result:
        try:
            rel = self.con.sql(sql)
            duck_types = [str(t) for t in rel.types]
            table = rel.to_arrow_table()
        except duckdb.Error as exc:
            raise SqlError(RUNTIME_ERROR, "Runtime error", f"{type(exc).__name__}: {exc}") from exc
        names = [n.lower() if _IDENT.fullmatch(n.lower()) else f"_c{i}" for i, n in enumerate(rel.columns)]
        types = [mc_type_of(d) for d in duck_types]
        target = odps_schema_to_arrow_schema(TableSchema.from_lists(names, types))
        try:  # HUGEINT sums, microsecond and zoned timestamps reach MaxCompute's types; overflow raises
            arrays = [pc.cast(a, f.type) if a.type != f.type else a for a, f in zip(table.columns, target)]
        except pa.ArrowInvalid as exc:
            raise SqlError(RUNTIME_ERROR, "Runtime error", f"result value out of range: {exc}") from exc
        return Result(names, types, pa.Table.from_arrays(arrays, names=names))

    # -- SQL ------------------------------------------------------------------------------------------------------
    def execute(self, sql: str) -> Result | None:
        """Run one SQL task atomically; the result of its last query, if it ends with one."""
        statements, _settings = plan(sql, self.name)  # SET k=v settings are accepted and ignored
        return self.atomic(lambda: [self._statement(st) for st in statements][-1])

    def _statement(self, st: Statement) -> Result | None:
        for t in sorted(st.tables):
            self.require(t)
        if st.kind == "query":
            return self._query(st.query)
        if st.kind == "create":
            self._create(TableMeta(st.table, st.columns, st.partition_columns, st.comment), st.if_exists)
        elif st.kind == "ctas":
            if self.table(st.table) is not None and st.if_exists:
                return None
            res = self._query(st.query)
            if len(set(res.names)) != len(res.names):
                raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception", f"duplicate columns {res.names}")
            meta = TableMeta(st.table, [Column(n, t) for n, t in zip(res.names, res.types)])
            self._create(meta, False)
            self._write(meta, res.table, {}, [], False, True)
        elif st.kind == "drop":
            self._drop(st.table, st.if_exists)
        elif st.kind == "add_columns":
            self._add_columns(st)
        elif st.kind in ("add_partitions", "drop_partitions", "truncate"):
            self._partitions(st)
        elif st.kind == "insert":
            res = self._query(st.query)
            spec = st.partitions[0] if st.partitions else {}
            self._write(self.require(st.table), res.table, spec, st.dynamic, st.overwrite, True)
        return None

    def _add_columns(self, st: Statement) -> None:
        """New data columns go after the old ones and before the partition columns (MaxCompute's order, which
        ``SELECT *`` shows), so the DuckDB table is rebuilt; old rows read NULL in them."""
        meta = self.require(st.table)
        known = {c.name for c in meta.columns + meta.partition_columns}
        new = [c for c in st.columns if c.name not in known]
        if len(new) < len(st.columns) and not st.if_exists:
            raise SqlError(SEMANTIC_ERROR, "Semantic analysis exception",
                           f"column(s) {sorted(known & {c.name for c in st.columns})} already exist in {meta.name}")
        if not new:
            return
        old = [_q(c.name) for c in meta.columns + meta.partition_columns]
        meta.columns += new
        self._run(f"ALTER TABLE {_q(meta.name)} RENAME TO __mc_rebuild")
        cols = ", ".join(f"{_q(c.name)} {duck_type(c.type)}" for c in meta.columns + meta.partition_columns)
        self._run(f"CREATE TABLE {_q(meta.name)} ({cols})")
        self._run(f"INSERT INTO {_q(meta.name)} ({', '.join(old)}) SELECT {', '.join(old)} FROM __mc_rebuild")
        self._run("DROP TABLE __mc_rebuild")
        self._touch(meta)

    def _partitions(self, st: Statement) -> None:
        meta = self.require(st.table)
        if st.kind == "truncate" and not st.partitions:
            self._run(f"DELETE FROM {_q(meta.name)}")
        for spec in st.partitions:
            key = meta.spec_string(spec)
            exists = self.has_partition(meta.name, key)
            if st.kind == "add_partitions":
                if exists and not st.if_exists:
                    raise SqlError(ALREADY_EXISTS, "Partition already exists", f"{meta.name} partition {key}")
                self._add_partition(meta, key)
                continue
            if not exists:
                if st.kind == "drop_partitions" and st.if_exists:
                    continue
                raise SqlError("NoSuchPartition", "Partition not found", f"{meta.name} partition {key}")
            self._run(f"DELETE FROM {_q(meta.name)} WHERE {meta.spec_filter(spec)}")
            if st.kind == "drop_partitions":
                self._run("DELETE FROM __mc_partitions WHERE table_name = ? AND spec = ?", [meta.name, key])
        self._touch(meta)
