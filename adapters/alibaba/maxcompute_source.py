"""MaxCompute tables as batch sources (``skewless.MaxComputeSource``): the plugin table's ``table`` role.

A source ingest runs one SQL task, ``SELECT * FROM <table> WHERE <partition condition> AND <watermark> > <last>``, so
MaxCompute prunes the partitions and filters the rows, and reads its result through the instance tunnel as Arrow.
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
    name = source.table
    with client.errors(f"look up source table {name}"):
        schema = client.odps.get_table(name).table_schema
    types = {c.name.lower(): str(c.type).lower() for c in schema.columns}
    conditions = [f"({source.partition})"] if source.partition else []
    if source.watermark is not None:
        wm = source.watermark
        if wm.lower() not in types:
            raise ValidationError(f"MaxCompute table {name}: no watermark column {wm!r} (columns: {list(types)})",
                                  column=wm)
        if types[wm.lower()] not in _INTEGERS:
            raise ValidationError(f"watermark column {wm!r} of MaxCompute table {name} holds {types[wm.lower()]}; it "
                                  "must be an integer column (BIGINT)", column=wm)
        if after is not None:
            conditions.append(f"`{wm}` > {int(after)}")
    sql = f"SELECT * FROM `{name}`" + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
    what = f"read source table {name}"
    instance = client.execute(sql, what)
    with client.errors(what):
        with instance.open_reader(tunnel=True, arrow=True, limit=False) as reader:
            batches = list(reader)
    if not batches:
        return pa.table({c.name: pa.array([], pa.null()) for c in schema.columns})
    return pa.Table.from_batches(batches)
