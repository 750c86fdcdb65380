"""Counting a history snapshot's rows of given entity keys, straight from its Parquet files (pyarrow's dataset
scan with a filter pushed to the row groups): forget's "which training sets held the entity", and the tests'
full scans."""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads


class HistoryFiles(Protocol):
    """What a count needs of ``base.HistoryFiles`` (named structurally: ``base.OfflineStore.count_key_rows``
    imports this module, so it cannot import ``base``)."""

    uris: list[str]
    filesystem: Any


def _paths(files: HistoryFiles) -> list[str]:
    if files.filesystem is None:
        return [u.removeprefix("file://") for u in files.uris]
    return [u.split("://", 1)[1] if "://" in u else u for u in files.uris]


def count_rows(files: HistoryFiles, key_dtypes: dict, keys: list[tuple]) -> int:
    """Rows of ``files`` whose columns ``key_dtypes`` equal one of ``keys`` (0 for a snapshot without files)."""
    if not files.uris or not keys:
        return 0
    cols = list(key_dtypes)
    if len(cols) == 1:
        expr = pc.field(cols[0]).isin([k[0] for k in keys])
    else:
        expr = None
        for k in keys:
            one = None
            for c, v in zip(cols, k):
                one = pc.field(c) == v if one is None else one & (pc.field(c) == v)
            expr = one if expr is None else expr | one
    dataset = pads.dataset(_paths(files), format="parquet", filesystem=files.filesystem)
    return dataset.count_rows(filter=expr)


def plain_types(table: pa.Table) -> pa.Table:
    """``table`` with string and binary *view* columns as plain ones: the files a Delta DELETE (delta-rs, through
    DataFusion) rewrites store them so, and tables read from files of both kinds must concatenate."""
    fields = [pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else
                       pa.binary() if pa.types.is_binary_view(f.type) else f.type, f.nullable, f.metadata)
              for f in table.schema]
    schema = pa.schema(fields, table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def read_rows(files: HistoryFiles, columns: list[str] | None = None) -> pa.Table:
    """Every row of a history snapshot (a stage's view input), files of older schemas read with the newer
    columns as null; an empty table for a snapshot without files."""
    if not files.uris:
        return pa.table({})
    import pyarrow.parquet as pq

    tables = [plain_types(pq.read_table(p, filesystem=files.filesystem, columns=columns)) for p in _paths(files)]
    return pa.concat_tables(tables, promote_options="default")
