"""The MaxCompute edge: connection settings, the pyodps client, SQL runs, tunnel uploads and downloads, the column
type mapping, and vendor errors translated into skewless's.

Instants (event/created times, UnixTimestamp features, entity times) are stored as BIGINT microseconds since the
epoch, UTC: MaxCompute's DATETIME is millisecond and its TIMESTAMP goes through a per-client time zone and a
struct wire format in the tunnel; an integer keeps microsecond precision exactly and compares the same everywhere.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import requests

from skewless import dtypes
from skewless.errors import ConfigError, EngineError, NotFoundError, SkewlessError, StoreUnavailable

# Every SQL task runs with these: MaxCompute 2.0 types (INT, FLOAT, BINARY), scans of whole partitioned tables (the
# snapshot filter is on write batches, partition pruning is an optimisation), ORDER BY without LIMIT (materialize
# reads winners in key order).
HINTS = {"odps.sql.type.system.odps2": "true", "odps.sql.allow.fullscan": "true",
         "odps.sql.validate.orderby.limit": "false"}
# dtype name -> MaxCompute column type. UnixTimestamp is an instant: BIGINT microseconds.
MC_TYPES = {d.name: t for d, t in ((dtypes.Int32, "INT"), (dtypes.Int64, "BIGINT"), (dtypes.Float32, "FLOAT"),
                                    (dtypes.Float64, "DOUBLE"), (dtypes.String, "STRING"), (dtypes.Bool, "BOOLEAN"),
                                    (dtypes.Bytes, "BINARY"), (dtypes.UnixTimestamp, "BIGINT"))}
_AUTH_ERRORS = ("SignatureNotMatch", "InvalidAccessKeyId", "Unauthorized", "AuthorizationRequired", "NoPermission",
                "AuthenticationRequestExpired", "InvalidAccessKeyIdNotFound")


@dataclass(frozen=True)
class Settings:
    """Where and as whom: ``maxcompute://<project>?endpoint=...&tunnel_endpoint=...&table_prefix=...``; options
    override the URL; the AccessKey comes from options or ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET."""

    project: str
    endpoint: str
    access_id: str
    secret: str = field(repr=False)
    tunnel_endpoint: str | None = None
    table_prefix: str = "skewless_"

    @classmethod
    def from_url(cls, url: str, options: dict | None = None) -> "Settings":
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        opts = {**query, **{k: v for k, v in (options or {}).items() if v is not None}}
        project = opts.get("project") or parts.netloc
        endpoint = opts.get("endpoint")
        access_id = opts.get("access_id") or os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = opts.get("secret_access_key") or os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        missing = [n for n, v in (("project", project), ("endpoint", endpoint), ("access_id", access_id),
                                  ("secret_access_key", secret)) if not v]
        if missing:
            raise ConfigError(f"MaxCompute store {parts.scheme}://{parts.netloc}: missing {', '.join(missing)} "
                              "(in the URL query, the options, or ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET)")
        prefix = str(opts.get("table_prefix", "skewless_")).lower()
        if not all(c.isalnum() or c == "_" for c in prefix):
            raise ConfigError(f"MaxCompute table_prefix {prefix!r}: letters, digits and underscores only")
        return cls(project, endpoint.rstrip("/"), access_id, secret, opts.get("tunnel_endpoint"), prefix)


def bq(name: str) -> str:
    """A MaxCompute (backtick) identifier."""
    return "`" + name.replace("`", "``") + "`"


def sq(value: str) -> str:
    """A MaxCompute string literal (Hive-style: quotes and backslashes escaped by a backslash)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def arrow_of(dtype_name: str) -> pa.DataType:
    return dtypes.by_name(dtype_name).arrow


def dtype_name_of(t: pa.DataType) -> str:
    """The dtype a canonical history column of Arrow type ``t`` has (ingest writes only these types)."""
    for d in dtypes.ALL.values():
        if d.arrow == t:
            return d.name
    raise EngineError(f"MaxCompute: no column type for Arrow type {t}")


def to_wire(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Instants -> BIGINT epoch microseconds (the stored form); every other column as is."""
    cols = [pc.cast(c, pa.int64()) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def from_wire(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A result batch as ``schema``: columns by position (MaxCompute may change the case of names), cast to the
    Arrow types DuckDB's engine returns (instants: BIGINT microseconds -> timestamp[us, UTC])."""
    cols = [c if c.type == f.type else pc.cast(c, f.type) for c, f in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class Client:
    """One pyodps client per store (thread-safe for what is used here: each call is its own HTTP request)."""

    def __init__(self, settings: Settings):
        from odps import ODPS
        from odps.tunnel import TableTunnel

        self.settings = settings
        self.odps = ODPS(settings.access_id, settings.secret, project=settings.project, endpoint=settings.endpoint,
                         tunnel_endpoint=settings.tunnel_endpoint)
        self._tunnel = TableTunnel(self.odps, endpoint=settings.tunnel_endpoint)
        self._lock = threading.Lock()

    # -- errors ---------------------------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        return str(text).replace(self.settings.secret, "***")

    @contextlib.contextmanager
    def errors(self, what: str, query: bool = False) -> Iterator[None]:
        """Vendor errors -> skewless errors, naming the endpoint and never the secret. ``query``: a failed SQL task
        is an EngineError whatever the cause (a table missing under a query is not a missing object's lookup)."""
        from odps import errors as odps_errors

        endpoint = self.settings.endpoint
        try:
            yield
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, odps_errors.ConnectTimeout) as exc:
            raise StoreUnavailable(f"cannot reach MaxCompute at {endpoint} ({what}): "
                                   f"{self._clean(exc).splitlines()[0][:300]}", endpoint=endpoint) from exc
        except odps_errors.NoSuchObject as exc:
            if query:
                raise EngineError(f"MaxCompute ({what}): {self._clean(exc)}") from exc
            raise NotFoundError(f"MaxCompute ({what}): {self._clean(exc)}") from exc
        except odps_errors.ODPSError as exc:
            name = type(exc).__name__
            code = getattr(exc, "code", None) or ""
            if name in _AUTH_ERRORS or code in _AUTH_ERRORS:
                raise ConfigError(f"MaxCompute at {endpoint} refused the AccessKey {self.settings.access_id!r} "
                                  f"({what}): {name}") from exc
            raise EngineError(f"MaxCompute ({what}): {self._clean(exc)}") from exc

    # -- metadata and SQL -----------------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        with self.errors(f"look up table {table}"):
            return self.odps.exist_table(table)

    def tables(self, prefix: str) -> list[str]:
        with self.errors(f"list tables {prefix}*"):
            return [t.name.lower() for t in self.odps.list_tables(prefix=prefix)]

    def run(self, sql: str, what: str):
        """Start one SQL task; the instance (wait with ``wait``)."""
        with self.errors(what):
            return self.odps.run_sql(sql, hints=HINTS)

    def wait(self, instance, what: str) -> None:
        with self.errors(what, query=True):
            instance.wait_for_success()

    def execute(self, sql: str, what: str):
        instance = self.run(sql, what)
        self.wait(instance, what)
        return instance

    def result(self, instance, what: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """A finished query's rows, in its order, through the instance tunnel as Arrow, converted to ``schema``."""
        with self.errors(what):
            with instance.open_reader(tunnel=True, arrow=True, limit=False) as reader:
                for batch in reader:
                    if batch.num_columns != len(schema):
                        raise EngineError(f"MaxCompute ({what}): {batch.num_columns} columns, expected {len(schema)}")
                    yield from_wire(batch, schema)

    def temp_name(self) -> str:
        return f"{self.settings.table_prefix}t_{uuid.uuid4().hex}"

    def temp_table(self, columns: list[tuple[str, str]], name: str | None = None) -> str:
        """A new table of its own for rows a query needs (entity rows, keys to check); MaxCompute removes it after a
        day (LIFECYCLE 1) if ``drop`` is never reached."""
        name = name or self.temp_name()
        cols = ", ".join(f"`{c}` {t}" for c, t in columns)
        self.execute(f"CREATE TABLE `{name}` ({cols}) LIFECYCLE 1", f"create temporary table {name}")
        return name

    def drop(self, table: str) -> None:
        """Best effort: a temporary table left behind expires by its lifecycle."""
        try:
            self.execute(f"DROP TABLE IF EXISTS `{table}`", f"drop {table}")
        except SkewlessError:
            pass

    # -- tunnel ---------------------------------------------------------------------------------------------
    def upload(self, table: str, data: pa.Table | pa.RecordBatchReader, partition: str | None = None) -> None:
        """Rows into ``table`` (``partition``: e.g. ``ds='20240101'``, created if missing) as one tunnel commit:
        all of them or, if anything fails before the commit, none. Columns the table has and ``data`` lacks are
        written as null (features added to the table after these rows' view version)."""
        from odps.tunnel.io.types import odps_schema_to_arrow_schema

        batches = data.to_batches(max_chunksize=65_536) if isinstance(data, pa.Table) else data
        with self.errors(f"upload to {table}"):
            session = self._tunnel.create_upload_session(table, partition_spec=partition,
                                                         create_partition=partition is not None)
            schema = odps_schema_to_arrow_schema(session.schema)
            with session.open_arrow_writer(0) as writer:
                for batch in batches:
                    wire = to_wire(batch)
                    at = {n.lower(): i for i, n in enumerate(wire.schema.names)}  # MaxCompute names: any case
                    # the writer casts to the table's types (e.g. int64 -> INT)
                    writer.write(pa.RecordBatch.from_arrays(
                        [wire.column(at[f.name.lower()]) if f.name.lower() in at else pa.nulls(wire.num_rows, f.type)
                         for f in schema], names=schema.names))
            session.commit([0])

    def download(self, table: str) -> pa.Table:
        """A small table's rows (commit records) through the table tunnel."""
        with self.errors(f"read {table}"):
            session = self._tunnel.create_download_session(table)
            with session.open_arrow_reader(0, session.count) as reader:
                return reader.read()
