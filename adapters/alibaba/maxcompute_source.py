"""MaxCompute tables and queries as batch sources (``skewless.MaxComputeSource``): the plugin table's ``table`` role.

A source ingest runs one SQL task, ``SELECT * FROM <table> WHERE <partition condition> AND <watermark> > <last>``
(a query: ``SELECT * FROM (<query>) WHERE <watermark> > <last>``), so MaxCompute prunes the partitions and filters
the rows, and reads its result through the instance tunnel as Arrow.
The rows come in the order MaxCompute returns them (it keeps no file order): rows that tie on every time column are
ordered by their write order within one ingest, which is then MaxCompute's.

The watermark must be an integer column (BIGINT: a load sequence, epoch milliseconds): a DATETIME is a wall time in
the project's time zone, which the comparison here could not see.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyarrow as pa

from skewless.errors import ValidationError

from .maxcompute_client import Client, Settings

_INTEGERS = ("tinyint", "smallint", "int", "bigint")


def reader_from_url(url: str, repo_path: Path, options: dict):
    """``maxcompute://[project]`` and the ``sources: {maxcompute: ...}`` options -> ``read(source, after)``."""
    return partial(read, Client(Settings.from_url(url, options)))


def read(client: Client, source, after: int | None) -> pa.Table:
    """The rows of ``source`` (a MaxComputeSource) in its partitions, those above ``after`` when it has a watermark."""
    if source.query is not None:
        return _read_query(client, source, after)
    name = source.table
    with client.errors(f"look up source table {name}"):
        schema = client.odps.get_table(name).table_schema
    types = {c.name.lower(): str(c.type).lower() for c in schema.columns}
    conditions = [f"({source.partition})"] if source.partition else []
    if source.watermark is not None:
        _check_watermark(source.watermark, types.get(source.watermark.lower()), f"MaxCompute table {name}", types)
        if after is not None:
            conditions.append(f"`{source.watermark}` > {int(after)}")
    sql = f"SELECT * FROM `{name}`" + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
    return _result(client, sql, f"read source table {name}",
                   lambda: pa.table({c.name: pa.array([], pa.null()) for c in schema.columns}))


def _read_query(client: Client, source, after: int | None) -> pa.Table:
    """A query's rows; the watermark condition wraps it (on its own lines: a trailing -- comment stays closed)."""
    sql = source.query.strip().rstrip(";")
    if source.watermark is not None and after is not None:
        sql = f"SELECT * FROM (\n{sql}\n) __src WHERE `{source.watermark}` > {int(after)}"
    table = _result(client, sql, "run the source query", lambda: None)
    if table is None:
        return pa.table({})
    if source.watermark is not None:
        fields = {f.name.lower(): f for f in table.schema}
        f = fields.get(source.watermark.lower())
        kind = None if f is None else "bigint" if pa.types.is_integer(f.type) else str(f.type)
        _check_watermark(source.watermark, kind, "the MaxCompute source query", fields)
    return table


def _check_watermark(column: str, kind: str | None, where: str, columns) -> None:
    if kind is None:
        raise ValidationError(f"{where}: no watermark column {column!r} (columns: {list(columns)})", column=column)
    if kind not in _INTEGERS:
        raise ValidationError(f"watermark column {column!r} of {where} holds {kind}; it must be an integer column "
                              "(BIGINT)", column=column)


def _result(client: Client, sql: str, what: str, empty):
    instance = client.execute(sql, what)
    with client.errors(what):
        with instance.open_reader(tunnel=True, arrow=True, limit=False) as reader:
            batches = list(reader)
    return pa.Table.from_batches(batches) if batches else empty()
