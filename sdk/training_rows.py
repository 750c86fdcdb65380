"""The rows a registered training set was built from, kept for the leakage guard (skewless.stages.leakage): per
entity row its time, a hash of its entity and, when it was registered with a split, its split.

A registered training set records a fingerprint of its entity rows, not the rows: the guard must know which rows
a stage was fit on to tell whether any is in a later request's test split, by time (the row's time) and by entity
(the same entity among that request's test entities). The entity is kept as a 64-bit hash of its join keys'
values (``splits.entity_buckets`` under a fixed seed, keys in name order), never the key values: the guard
compares hashes of the request's own test entities against them. Written once per training-set version as a
registry-store record ``training_sets/<name>/v<version>.rows.parquet`` (create-if-absent: a re-registration
finds it there); a store keeping no records keeps none (the guard then says it cannot check).
"""

from __future__ import annotations

import io
import json
from typing import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ConflictError, NotFoundError
from .splits import Split, entity_buckets, times_us

SEED = "skewless-fit-rows-v1"
_META = b"skewless.rows"


def record_key(name: str, version: int) -> str:
    return f"training_sets/{name}/v{version:010d}.rows.parquet"


def entity_hashes(table: pa.Table, keys: list[str], key_types: Mapping[str, pa.DataType]) -> pa.Array:
    """Each row's entity hash over ``keys`` (taken in name order, so both sides agree whatever the order)."""
    keys = sorted(keys)
    return pa.array(entity_buckets([table.column(k) for k in keys], [key_types.get(k) for k in keys], SEED,
                                   table.num_rows), pa.uint64())


def build(tables: Iterable[pa.Table], keys: list[str], key_types: Mapping[str, pa.DataType], time_column: str,
          split: Split | None) -> pa.Table:
    """``t`` (epoch microseconds), ``entity`` (hash) and, with a split, ``split`` of every entity row."""
    parts = []
    for t in tables:
        cols = {"t": times_us(t.column(time_column)), "entity": entity_hashes(t, keys, key_types)}
        if split is not None:
            cols["split"] = split.assign(t, key_types)
        parts.append(pa.table(cols))
    schema = pa.schema([("t", pa.int64()), ("entity", pa.uint64())] + ([("split", pa.string())] if split else []))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.replace_schema_metadata({_META: json.dumps({"keys": sorted(keys)}).encode()})


def write(registry_store, name: str, version: int, rows: pa.Table) -> bool:
    """Keep ``rows`` for version ``version`` of training set ``name``; False when the store keeps no records."""
    sink = io.BytesIO()
    pq.write_table(rows, sink, compression="zstd")
    try:
        registry_store.put_record(record_key(name, version), sink.getvalue())
    except ConflictError:  # registered before: the same definition, so the same rows
        pass
    except NotImplementedError:
        return False
    return True


def read(registry_store, name: str, version: int) -> tuple[pa.Table, list[str]] | None:
    """(rows, the key names their entity hash covers); None when nothing was kept."""
    try:
        data = registry_store.read_record(record_key(name, version))
    except (NotFoundError, NotImplementedError):
        return None
    table = pq.read_table(io.BytesIO(data))
    meta = json.loads((table.schema.metadata or {})[_META])
    return table, list(meta["keys"])


def of_split(rows: pa.Table, split: str | None) -> pa.Table:
    """The rows of one recorded split (all rows for None)."""
    if split is None:
        return rows
    return rows.filter(pc.fill_null(pc.equal(rows.column("split"), split), False))
