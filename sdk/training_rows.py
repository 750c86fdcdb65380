"""The rows a registered training set was built from, kept for the leakage guard (skewless.stages.leakage): per
entity row its time, a hash of its entity and, when it was registered with a split, its split.

A registered training set records a fingerprint of its entity rows, not the rows: the guard must know which rows
a stage was fit on to tell whether any is in a later request's test split, by time (the row's time) and by entity
(the same entity among that request's test entities). The entity is kept as a 64-bit hash of its join keys'
values (``splits.entity_buckets`` under a fixed seed, keys in name order), never the key values: the guard
compares hashes of the request's own test entities against them. Written once per training-set version as a
registry-store record ``training_sets/<name>/v<version>.rows.parquet`` (create-if-absent: a re-registration
finds it there); a store keeping no records keeps none (the guard then says it cannot check).

With more than one join key, each key's own hash (the same function over that column alone) is kept too, as column
``entity.<key>``: ``forget`` names one entity's keys, which may be some of a training set's keys, and finds its rows
by them (``erase``), rewriting the record without them (``RegistryStore.replace_record``). With one key, ``entity``
is that key's hash. A record written before the per-key columns has none: ``forget`` can then erase from it only
when its keys are exactly the entity's (``erase`` returns None otherwise: not erasable).
"""

from __future__ import annotations

import io
import json
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import ConflictError, NotFoundError
from .splits import Split, entity_buckets, times_us

SEED = "skewless-fit-rows-v1"
_META = b"skewless.rows"


def record_key(name: str, version: int) -> str:
    return f"training_sets/{name}/v{version:010d}.rows.parquet"


def key_column(key: str) -> str:
    """The column holding one join key's own hash (records with more than one key)."""
    return f"entity.{key}"


def entity_hashes(table: pa.Table, keys: list[str], key_types: Mapping[str, pa.DataType]) -> pa.Array:
    """Each row's entity hash over ``keys`` (taken in name order, so both sides agree whatever the order)."""
    keys = sorted(keys)
    return pa.array(entity_buckets([table.column(k) for k in keys], [key_types.get(k) for k in keys], SEED,
                                   table.num_rows), pa.uint64())


def build(tables: Iterable[pa.Table], keys: list[str], key_types: Mapping[str, pa.DataType], time_column: str,
          split: Split | None) -> pa.Table:
    """``t`` (epoch microseconds), ``entity`` (hash), with several keys ``entity.<key>`` (each key's hash) and,
    with a split, ``split`` of every entity row."""
    per_key = sorted(keys) if len(keys) > 1 else []
    parts = []
    for t in tables:
        cols = {"t": times_us(t.column(time_column)), "entity": entity_hashes(t, keys, key_types)}
        cols.update({key_column(k): entity_hashes(t, [k], key_types) for k in per_key})
        if split is not None:
            cols["split"] = split.assign(t, key_types)
        parts.append(pa.table(cols))
    schema = pa.schema([("t", pa.int64()), ("entity", pa.uint64())] + [(key_column(k), pa.uint64()) for k in per_key]
                       + ([("split", pa.string())] if split else []))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.replace_schema_metadata({_META: json.dumps({"keys": sorted(keys)}).encode()})


def _encode(rows: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(rows, sink, compression="zstd")
    return sink.getvalue()


def write(registry_store, name: str, version: int, rows: pa.Table) -> bool:
    """Keep ``rows`` for version ``version`` of training set ``name``; False when the store keeps no records."""
    try:
        registry_store.put_record(record_key(name, version), _encode(rows))
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
    return _decode(data)


def _decode(data: bytes) -> tuple[pa.Table, list[str]]:
    table = pq.read_table(io.BytesIO(data))
    meta = json.loads((table.schema.metadata or {})[_META])
    return table, list(meta["keys"])


def recorded(registry_store) -> list[tuple[str, int]]:
    """(name, version) of every training-set version whose rows are kept."""
    out = []
    for key in registry_store.record_keys("training_sets/"):
        name, _, file = key[len("training_sets/"):].rpartition("/")
        if file.startswith("v") and file.endswith(".rows.parquet"):
            out.append((name, int(file[1:-len(".rows.parquet")])))
    return out


def matching(rows: pa.Table, keys: list[str], entity_keys: list[str], key_types: Mapping[str, pa.DataType],
             values: list[tuple]) -> pa.Array | None:
    """Per row of a record over ``keys``, whether its entity has one of ``values`` (tuples in ``entity_keys``
    order) as its ``entity_keys``: all false when the record is not keyed by all of them; None when it is but
    cannot tell (written before the per-key columns, with keys beyond the entity's)."""
    if not set(entity_keys) <= set(keys):
        return pa.array(np.zeros(rows.num_rows, dtype=bool))
    forgotten = pa.table({k: pa.array([v[i] for v in values], key_types[k]) for i, k in enumerate(entity_keys)})
    if sorted(entity_keys) == sorted(keys):
        return pc.is_in(rows.column("entity"), value_set=entity_hashes(forgotten, entity_keys, key_types))
    if not all(key_column(k) in rows.column_names for k in entity_keys):
        return None
    # each key's hash among the forgotten values' (a superset: it pairs one value's key with another's) ...
    hashes = {k: entity_hashes(forgotten, [k], key_types).to_numpy() for k in entity_keys}
    mask = np.ones(rows.num_rows, dtype=bool)
    for k in entity_keys:
        mask &= np.isin(rows.column(key_column(k)).to_numpy(), hashes[k])
    # ... then, for the few candidates, the exact combination
    wanted = set(zip(*(hashes[k].tolist() for k in entity_keys)))
    columns = [rows.column(key_column(k)).to_numpy() for k in entity_keys]
    for i in np.flatnonzero(mask):
        mask[i] = tuple(int(c[i]) for c in columns) in wanted
    return pa.array(mask)


def erase(registry_store, name: str, version: int, entity_keys: list[str], key_types: Mapping[str, pa.DataType],
          values: list[tuple], *, dry_run: bool = False) -> int | None:
    """Remove the rows of the entities ``values`` from the record of ``name`` version ``version`` (rewritten whole,
    only when it holds any); the rows removed (found, with ``dry_run``); None when the record cannot tell them."""
    data = registry_store.read_record(record_key(name, version))
    rows, keys = _decode(data)
    mask = matching(rows, keys, entity_keys, key_types, values)
    if mask is None:
        return None
    found = pc.sum(mask).as_py() or 0
    if found and not dry_run:
        left = rows.filter(pc.invert(mask)).replace_schema_metadata(rows.schema.metadata)
        registry_store.replace_record(record_key(name, version), _encode(left))
    return found


def of_split(rows: pa.Table, split: str | None) -> pa.Table:
    """The rows of one recorded split (all rows for None)."""
    if split is None:
        return rows
    return rows.filter(pc.fill_null(pc.equal(rows.column("split"), split), False))
