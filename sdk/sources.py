"""Reading a view's batch source (``definitions.DataSource``) where its data lives, and only the rows above a
watermark when the source declares one.

Where: a path source's URL picks a ``Place`` from the plugin table's ``source`` role (local paths here; ``s3://`` and
``oss://`` in their cloud's adapter), so the core never imports a cloud SDK. Files are scanned as one pyarrow dataset
over that filesystem: the watermark filter is pushed into the scan (Parquet row groups whose statistics lie below it
are skipped). Delta tables are read at their newest version through deltalake; SQL sources run in DuckDB over
their named tables, registered as those datasets.

The cloud options come from skewless.yaml: ``sources: {s3: {...}, oss: {...}}`` (the S3/OSS option names), else the
offline store's ``storage_options`` when it lives on the same scheme, else the environment's defaults.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
from pyarrow import fs as pafs

from . import plugins
from .definitions import DataSource, SqlSource
from .ingest import _duplicates
from .errors import ConfigError, DefinitionError, SkewlessError, StoreUnavailable, ValidationError
from .sqlnames import q

_GLOB = "*?["
_SUFFIX = {"parquet": (".parquet", ".parq"), "csv": (".csv",)}


@dataclass(frozen=True)
class Place:
    """Where a source URL's files are: a pyarrow filesystem and the path in it (``bucket/key`` on object stores);
    ``delta_uri``/``delta_options`` for deltalake (``delta_uri`` None: Delta tables cannot be read there)."""

    filesystem: pafs.FileSystem
    path: str
    url: str
    delta_uri: str | None = None
    delta_options: dict[str, str] | None = None


def options_for(config, url: str) -> dict:
    """The options of a source URL's scheme (see the module docstring)."""
    scheme = plugins.scheme_of(url)
    if scheme in config.source_options:
        return dict(config.source_options[scheme])
    if plugins.scheme_of(config.offline.url) == scheme:
        return dict(config.offline.options)
    return {}


def place(config, url: str) -> Place:
    return plugins.load("source", url)(url, config.repo_path, options_for(config, url))


def _translate(exc: Exception, where: str) -> SkewlessError:
    if isinstance(exc, SkewlessError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return ValidationError(f"{where}: no such file")
    if isinstance(exc, (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)):
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ValidationError(f"{where}: not readable ({reason})")
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StoreUnavailable(f"{where}: cannot read ({reason})", endpoint=where)


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob as shells (and Python's ``glob``) read it: ``*`` and ``?`` stay within one path component, ``**``
    crosses them, ``[...]`` is a set."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def files(p: Place, kind: str) -> list[str]:
    """A file, a folder (recursively: the files with ``kind``'s suffix) or a glob -> sorted paths in ``p``'s
    filesystem (the sorted order is the row order, which decides ties between otherwise equal rows)."""
    path = p.path
    try:
        if any(ch in path for ch in _GLOB):
            parts = path.split("/")
            first = next(i for i, part in enumerate(parts) if any(ch in part for ch in _GLOB))
            base = "/".join(parts[:first]) or "/"
            infos = p.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            pattern = _glob_regex(path)
            found = [i.path for i in infos if i.type == pafs.FileType.File and pattern.fullmatch(i.path)]
        else:
            info = p.filesystem.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                infos = p.filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
                found = [i.path for i in infos if i.type == pafs.FileType.File and
                         i.path.lower().endswith(_SUFFIX[kind]) and "/_" not in i.path[len(path):] and
                         "/." not in i.path[len(path):]]
            else:
                found = [path] if info.type == pafs.FileType.File else []
    except Exception as exc:  # noqa: BLE001 - every failure of a listing becomes a typed error
        raise _translate(exc, p.url) from exc
    if not found:
        raise ValidationError(f"no {kind.upper() if kind == 'csv' else kind.capitalize()} file at {p.url!r}")
    return sorted(found)


def dataset(p: Place, kind: str) -> ds.Dataset:
    """The source's rows as one lazily read dataset (``kind``: parquet, csv or delta)."""
    try:
        if kind == "delta":
            if p.delta_uri is None:
                raise ConfigError(f"Delta sources cannot be read from {p.url!r}; use a Parquet source (or local/s3://)")
            from deltalake import DeltaTable
            from deltalake.exceptions import TableNotFoundError

            try:
                return DeltaTable(p.delta_uri, storage_options=p.delta_options).to_pyarrow_dataset()
            except TableNotFoundError as exc:
                raise ValidationError(f"no Delta table at {p.url!r}") from exc
        paths = files(p, kind)
        if kind == "parquet":
            return _parquet_dataset(p, paths)
        fmt = ds.CsvFileFormat(convert_options=pcsv.ConvertOptions(timestamp_parsers=[pcsv.ISO8601]))
        factory = ds.FileSystemDatasetFactory(p.filesystem, paths, fmt, ds.FileSystemFactoryOptions())
        # Every file's columns, unioned by name (a feature added later is missing, read as null, from older files);
        # one header block read per file, the price of not dropping a later file's columns.
        schema = factory.inspect(promote_options="default") if len(paths) > 1 else factory.inspect()
        _duplicates(schema.names)
        return factory.finish(schema)
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, p.url) from exc


def _parquet_dataset(p: Place, paths: list[str]) -> ds.FileSystemDataset:
    """Parquet files as one dataset, each footer read once: it gives the file's columns (unioned by name across
    files, as for CSV) and stays in its fragment with the row groups' statistics, which the scan and ``read``'s
    watermark pruning then use without reading it again (a factory's ``inspect`` read every footer, and the scan
    read each again). On object stores the footers are fetched in parallel: one round trip each."""
    fmt = ds.ParquetFileFormat()
    frags = [fmt.make_fragment(path, p.filesystem) for path in paths]
    if len(frags) > 1 and not isinstance(p.filesystem, pafs.LocalFileSystem):
        with ThreadPoolExecutor(min(16, len(frags))) as pool:
            list(pool.map(lambda f: f.ensure_complete_metadata(), frags))
    else:
        for f in frags:
            f.ensure_complete_metadata()
    schemas = [f.physical_schema for f in frags]
    for s in schemas:
        _duplicates(s.names)
    schema = pa.unify_schemas(schemas, promote_options="default") if len(schemas) > 1 else schemas[0]
    return ds.FileSystemDataset(frags, schema, fmt, p.filesystem)


def _prune(data: ds.FileSystemDataset, flt: ds.Expression) -> ds.FileSystemDataset:
    """``data`` (of ``_parquet_dataset``) without the row groups (and files) whose statistics exclude ``flt``: an
    incremental ingest's scan then opens the new files only, instead of visiting every file of the source to skip
    it. The same decision the scan takes per row group (a group without statistics is kept), taken once on the
    footers already read; the order of the files is kept."""
    frags = [f.subset(flt, data.schema) for f in data.get_fragments()]
    return ds.FileSystemDataset([f for f in frags if f.num_row_groups], data.schema, data.format, data.filesystem)


# -- watermarks ----------------------------------------------------------------------------------------------------
def _watermark_type(t: pa.DataType, column: str) -> None:
    if not (pa.types.is_timestamp(t) or pa.types.is_integer(t)):
        raise ValidationError(f"watermark column {column!r} holds {t}; it must hold timestamps or integers",
                              column=column)


def watermark_value(col: pa.ChunkedArray, column: str) -> int:
    """The newest value of a watermark column as an integer (timestamps: UTC microseconds). Nulls are an error: a
    row without a watermark could never be told apart from one already ingested."""
    _watermark_type(col.type, column)
    if col.null_count:
        row = next(i for i, v in enumerate(col.to_pylist()) if v is None)
        raise ValidationError(f"watermark column {column!r} is null at row {row}", column=column, row=row)
    if pa.types.is_timestamp(col.type):
        col = pc.cast(pc.cast(col, pa.timestamp("us", col.type.tz)), pa.int64())
    return int(pc.max(col).as_py())


def _above(t: pa.DataType, after: int) -> pa.Scalar:
    """``after`` as a scalar of the column's type (timestamps: from UTC microseconds; naive columns are UTC)."""
    if pa.types.is_timestamp(t):
        return pa.scalar(after, pa.int64()).cast(pa.timestamp("us", t.tz)).cast(t)
    return pa.scalar(after, pa.int64()).cast(t)


def _sql_literal(t: pa.DataType, after: int) -> str:
    if pa.types.is_timestamp(t):
        iso = _above(pa.timestamp("us"), after).as_py().isoformat(sep=" ")
        return f"TIMESTAMPTZ '{iso}+00'" if t.tz else f"TIMESTAMP '{iso}'"
    return str(int(after))


# -- reading -------------------------------------------------------------------------------------------------------
def read(config, source: DataSource, after: int | None = None) -> pa.Table:
    """The source's rows (those whose ``source.watermark`` column is above ``after``, when given), in file order."""
    if isinstance(source, SqlSource):
        return _read_sql(config, source, after)
    if source.type == "maxcompute":  # a table in a warehouse: its adapter runs the query (plugin role "table")
        return plugins.load("table", source.url)(source.url, config.repo_path, options_for(config, source.url))(
            source, after)
    data = dataset(place(config, source.path), source.type)
    where = source.path
    flt = None
    if source.watermark is not None:
        if source.watermark not in data.schema.names:
            raise ValidationError(f"{where}: no watermark column {source.watermark!r} (columns: {data.schema.names})",
                                  column=source.watermark)
        t = data.schema.field(source.watermark).type
        _watermark_type(t, source.watermark)
        if after is not None:
            flt = ds.field(source.watermark) > _above(t, after)
    try:
        if flt is not None and source.type == "parquet":  # footers read by _parquet_dataset: no reads here
            data = _prune(data, flt)
        return data.to_table(filter=flt)
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, where) from exc


def _read_sql(config, source: SqlSource, after: int | None) -> pa.Table:
    con = duckdb.connect()
    try:
        # Relative paths in the query (read_parquet('data/x.parquet')) are relative to the repo, as everywhere.
        con.execute(f"SET file_search_path = '{str(config.repo_path).replace(chr(39), chr(39) * 2)}'")
        _one_select(con, source.query, "source query", DefinitionError)
        for name, table in source.tables.items():
            con.register(name, dataset(place(config, table.path), table.type))
        # A relation, not text wrapped around the query: a query ending in a -- comment or a ';' stays whole.
        rel = con.sql(source.query)
        if source.watermark is not None:
            schema = rel.limit(0).to_arrow_table().schema
            if source.watermark not in schema.names:
                raise ValidationError(f"source query: no watermark column {source.watermark!r} (columns: "
                                      f"{schema.names})", column=source.watermark)
            t = schema.field(source.watermark).type
            _watermark_type(t, source.watermark)
            if after is not None:
                rel = rel.filter(f"{q(source.watermark)} > {_sql_literal(t, after)}")
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise _query_error(exc, "source query", DefinitionError) from exc
    finally:
        con.close()


def _query_error(exc: duckdb.Error, what: str, bad_query: type[SkewlessError]) -> SkewlessError:
    """A DuckDB error of a user's query, typed: a query that does not parse or bind is ``bad_query``; one that
    failed while running is a ValidationError. The first line only (DuckDB appends hints and context)."""
    first = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)):
        return bad_query(f"{what}: {first}")
    return ValidationError(f"{what} failed: {first}")


def _one_select(con: duckdb.DuckDBPyConnection, query: str, what: str, error: type[SkewlessError]) -> None:
    """A source or entity query reads: exactly one SELECT (WITH/FROM/VALUES are SELECTs too). Anything else would run with
    the ingest's rights and its result taken as the rows: ``COPY ... TO`` writes files, ``ATTACH`` opens databases,
    and a second statement's result would silently replace the first's."""
    kinds = [st.type.name for st in con.extract_statements(query)]
    if kinds != ["SELECT"]:
        raise error(f"{what} must be one SELECT statement; it holds {len(kinds)} statement(s): "
                              f"{', '.join(kinds) or 'none'}")


# -- entity tables and training sets at URLs -------------------------------------------------------------------------
_SQL_START = re.compile(r"^\s*(\(\s*)*(select|with|from|values)\s", re.IGNORECASE)


def is_query(value: str) -> bool:
    """A string entity table that is a SQL query (as Feast takes one) rather than a path: it starts as one."""
    return bool(_SQL_START.match(value))


def on_object_store(value: str) -> bool:
    return "://" in value and plugins.scheme_of(value) != "file"


def entity_files(config, value: str, into: Path) -> str:
    """An entity table given as a query or an object-store path/glob -> a local Parquet path the engine streams
    (disk, not memory: the query's result is written by DuckDB as it runs, remote files are copied as streams)."""
    if is_query(value):
        target = into / "entity.parquet"
        con = duckdb.connect()
        try:
            con.execute(f"SET file_search_path = '{_sql_text(str(config.repo_path))}'")
            _one_select(con, value, "entity query", ValidationError)
            con.sql(value).write_parquet(str(target))  # streamed to disk by DuckDB as the query runs
        except duckdb.Error as exc:
            raise _query_error(exc, "entity query", ValidationError) from exc
        finally:
            con.close()
        return str(target)
    p = place(config, value)
    for i, path in enumerate(files(p, "parquet")):  # in sorted order: the names keep it (input order)
        try:
            pafs.copy_files(path, str(into / f"part-{i:06d}.parquet"), source_filesystem=p.filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, value) from exc
    return str(into / "part-*.parquet")


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


def write_parquet_at(config, reader: pa.RecordBatchReader, url: str, snapshot: dict) -> str:
    """Stream ``reader`` into one Parquet object at ``url``, with the snapshot beside it as ``<url>.snapshot.json``.

    The batches go to a local temporary file (bounded memory), uploaded only once the stream is complete: closing an
    object-store upload completes it (pyarrow's S3 stream, our OSS spool), so writing in place left a truncated but
    valid Parquet file where the training set should be when the stream failed midway. A crash mid-upload leaves an
    incomplete multipart upload, never an object."""
    import json
    import tempfile

    import pyarrow.parquet as pq

    p = place(config, url)
    try:
        with tempfile.TemporaryDirectory(prefix="skewless-export-") as tmp:
            part = str(Path(tmp) / "set.parquet")
            with pq.ParquetWriter(part, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
            pafs.copy_files(part, p.path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=p.filesystem)
        with p.filesystem.open_output_stream(p.path + ".snapshot.json") as out:
            out.write(json.dumps(snapshot, indent=1).encode())
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, url) from exc
    return url
