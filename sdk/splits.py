"""Train / validation / test splits declared with a training-set request (docs/concepts/labels-and-splits.md).

A split is a pure function of an entity row's time and join keys, so it is the same on every run and every engine:

* **by time**: ``Split(time={"validation": t1, "test": t2})``: rows with ``t < t1`` are train, ``t1 <= t < t2``
  validation, ``t >= t2`` test (each cut-off is the first instant of its split; validation is optional);
* **by entity**: ``Split(entity={"train": 0.8, "validation": 0.1, "test": 0.1}, keys=[...])``: every entity (the
  values of ``keys``, default the requested views' join keys) falls in one split, picked by a hash of its key
  values: all rows of an entity are in the same split, and an entity keeps its split when rows are added;
* **both**: a row belongs to a split when its time and its entity both put it there; the rows they disagree on
  belong to none (their split is null): each would leak into the other split through its time or its entity.

The split is computed in Arrow over the rows an engine returns, never in the engine's SQL: DuckDB's ``hash()``,
Spark's ``hash()`` (Murmur3) and MaxCompute's differ from each other and are not promised stable across versions,
while one Arrow function over the same values gives the same split everywhere. The hash is SHA-256 (every engine
also has it, so a split can be checked in SQL) of the seed and the key values in a canonical text form
(``hash_version``); its first 8 bytes, as an unsigned integer, are compared with the cumulative fractions.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DefinitionError, ValidationError
from .timeutil import parse_timestamps, to_utc_us, utc

NAMES = ("train", "validation", "test")
HASH_VERSION = "sha256-len-prefixed-v1"  # recorded with the split: what ``entity_buckets`` computes
_NULL = "~"  # a null key value's canonical text (a value's text starts with its length, a digit)
_TWO_64 = 2 ** 64


def _time_cutoffs(time: Any) -> dict[str, datetime]:
    if not isinstance(time, Mapping) or not time:
        raise DefinitionError("split: time must map 'validation' and/or 'test' to the instant that split starts at, "
                              "e.g. {'test': '2024-04-01'}")
    unknown = sorted(set(map(str, time)) - set(NAMES[1:]))
    if unknown:
        raise DefinitionError(f"split: unknown time split names {unknown}; time cut-offs start 'validation' and "
                              "'test' (train is every row before the first cut-off)")
    if "test" not in time:
        raise DefinitionError("split: a time split needs a 'test' cut-off")
    cut = {}
    for name in NAMES[1:]:
        if name in time:
            try:
                cut[name] = utc(time[name], f"split: {name} cut-off")
            except ValidationError as exc:
                raise DefinitionError(str(exc)) from None
    if "validation" in cut and not cut["validation"] < cut["test"]:
        raise DefinitionError(f"split: the validation cut-off {cut['validation'].isoformat()} must be before the test "
                              f"cut-off {cut['test'].isoformat()} (the splits would overlap or be empty)")
    return cut


def _fractions(entity: Any) -> dict[str, float]:
    if not isinstance(entity, Mapping) or not entity:
        raise DefinitionError("split: entity must map split names to fractions, e.g. {'train': 0.8, 'test': 0.2}")
    unknown = sorted(set(map(str, entity)) - set(NAMES))
    if unknown:
        raise DefinitionError(f"split: unknown entity split names {unknown}; use {list(NAMES)}")
    if "train" not in entity or len(entity) < 2:
        raise DefinitionError("split: an entity split needs 'train' and at least one of 'validation', 'test'")
    out = {}
    for name in NAMES:
        if name in entity:
            f = entity[name]
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or not 0 < f < 1:
                raise DefinitionError(f"split: fraction of {name!r} must be a number between 0 and 1 (exclusive), "
                                      f"not {f!r}")
            out[name] = float(f)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-9:
        raise DefinitionError(f"split: entity fractions {out} sum to {total:g}, not 1")
    return out


class Split:
    """How a training set's rows are split (see the module doc). ``column``: the result's split column. ``seed``:
    another seed gives another (as stable) entity split. ``keys``: the columns naming an entity (default, once the
    request is known: the requested views' join keys); any column of the entity rows may be one."""

    def __init__(self, time: Mapping[str, Any] | None = None, entity: Mapping[str, float] | None = None, *,
                 keys: Sequence[str] | None = None, seed: str = "", column: str = "split",
                 timestamp_column: str | None = None):
        if time is None and entity is None:
            raise DefinitionError("split: declare time cut-offs, entity fractions, or both")
        self.time = _time_cutoffs(time) if time is not None else None
        self.entity = _fractions(entity) if entity is not None else None
        if self.time is not None and self.entity is not None:
            by_time = {"train", *self.time}
            if by_time != set(self.entity):
                raise DefinitionError(f"split: time and entity must name the same splits (time: {sorted(by_time)}, "
                                      f"entity: {sorted(self.entity)}): a row is in a split when both put it there")
        if keys is not None:
            if self.entity is None:
                raise DefinitionError("split: keys name the entity of an entity split; this split has no entity "
                                      "fractions")
            if isinstance(keys, str) or not keys or not all(isinstance(k, str) and k for k in keys):
                raise DefinitionError(f"split: keys must be a non-empty list of column names, not {keys!r}")
            if len(set(keys)) != len(keys):
                raise DefinitionError(f"split: duplicate keys {list(keys)}")
        if not isinstance(seed, str):
            raise DefinitionError("split: seed must be a string")
        if not isinstance(column, str) or not column:
            raise DefinitionError("split: column must be a column name")
        self.keys = tuple(keys) if keys is not None else None
        self.seed, self.column, self.timestamp_column = seed, column, timestamp_column

    @property
    def names(self) -> list[str]:
        """The splits, in order."""
        present = set(self.entity or ()) | ({"train", *self.time} if self.time else set())
        return [n for n in NAMES if n in present]

    # -- the request -------------------------------------------------------------------------------------------
    def bind(self, join_keys: Iterable[str], timestamp_column: str, columns: Sequence[str] | None) -> "Split":
        """This split for one request: keys fixed (default ``join_keys``, in order) and checked against the entity
        rows' ``columns`` (None: not known before reading, checked then), and the rows' time column recorded."""
        keys = self.keys if self.keys is not None else (tuple(dict.fromkeys(join_keys)) if self.entity else None)
        if keys is not None and columns is not None:
            unknown = [k for k in keys if k not in columns]
            if unknown:
                raise DefinitionError(f"split: unknown keys {unknown}: not columns of the entity rows ({list(columns)})")
        bound = Split.from_dict({**self.to_dict(), "keys": list(keys) if keys else None})
        bound.timestamp_column = timestamp_column
        return bound

    # -- which rows ----------------------------------------------------------------------------------------------
    def assign(self, table: pa.Table, key_types: Mapping[str, pa.DataType] | None = None) -> pa.Array:
        """Each row's split name (null: in no split) from its time and key columns. ``key_types``: the declared
        Arrow type of keys that are join keys, so the entity rows as given (a float column holding integer ids)
        split as the engine's result (the key cast to its declared type) does."""
        n = table.num_rows
        by_time = by_entity = None
        if self.time is not None:
            by_time = self.time_split(_column(table, self.timestamp_column or "event_timestamp"))
        if self.entity is not None:
            cols = [_column(table, k) for k in self.keys or ()]
            by_entity = self.entity_split(cols, [(key_types or {}).get(k) for k in self.keys or ()], n)
        if by_time is None:
            return by_entity
        if by_entity is None:
            return by_time
        return pc.if_else(pc.equal(by_time, by_entity), by_time, pa.scalar(None, pa.string()))

    def time_split(self, ts: pa.ChunkedArray | pa.Array) -> pa.Array:
        us = times_us(ts)
        names = ["train", *self.time]
        cut = np.array([(t - _EPOCH) // _US for t in self.time.values()], dtype=np.int64)
        idx = np.searchsorted(cut, pc.fill_null(us, 0).to_numpy(zero_copy_only=False), side="right")
        out = pa.array(names, pa.string()).take(pa.array(idx))
        return pc.if_else(pc.is_valid(us), out, pa.scalar(None, pa.string()))

    def entity_split(self, columns: list, declared: list, n: int) -> pa.Array:
        buckets = entity_buckets(columns, declared, self.seed, n)
        names = list(self.entity)
        bounds = np.array([min(_TWO_64 - 1, int(float(c) * _TWO_64))
                           for c in np.cumsum(list(self.entity.values()))[:-1]],
                          dtype=np.uint64)
        return pa.array(names, pa.string()).take(pa.array(np.searchsorted(bounds, buckets, side="right")))

    @property
    def columns(self) -> list[str]:
        """The columns the split reads: the time column (time split) and the keys (entity split)."""
        cols = [self.timestamp_column or "event_timestamp"] if self.time is not None else []
        return cols + [k for k in self.keys or () if k not in cols]

    def count(self, tables: Iterable[pa.Table], key_types: Mapping[str, pa.DataType] | None = None) -> dict:
        """Per split (and ``none`` for rows in no split, when there are any): its rows, and the times of its first
        and last row (ISO 8601, UTC) when the rows carry their time."""
        out: dict[str, dict] = {n: {"rows": 0} for n in self.names}
        bounds: dict[str, list[int]] = {}
        ts_col = self.timestamp_column or "event_timestamp"
        for table in tables:
            names = self.assign(table, key_types)
            times = (pc.cast(to_utc_us(table.column(ts_col)), pa.int64()).combine_chunks()
                     if ts_col in table.column_names and pa.types.is_timestamp(table.schema.field(ts_col).type)
                     else None)
            for name in [*self.names, None]:
                mask = pc.is_null(names) if name is None else pc.fill_null(pc.equal(names, name), False)
                n = pc.sum(mask).as_py() or 0
                key = name or "none"
                if not n:
                    continue
                out.setdefault(key, {"rows": 0})["rows"] += n
                if times is not None:
                    mm = pc.min_max(pc.filter(times, mask)).as_py()
                    if mm["min"] is not None:
                        lo, hi = bounds.get(key, (mm["min"], mm["max"]))
                        bounds[key] = [min(lo, mm["min"]), max(hi, mm["max"])]
        for key, (lo, hi) in bounds.items():
            out[key].update(first=iso_us(lo), last=iso_us(hi))
        return out

    # -- the record ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict = {"column": self.column}
        if self.time is not None:
            d["time"] = {k: v.isoformat() for k, v in self.time.items()}
        if self.entity is not None:
            d.update(entity=dict(self.entity), keys=list(self.keys) if self.keys else None, seed=self.seed,
                     hash=HASH_VERSION)
        if self.timestamp_column is not None:
            d["timestamp_column"] = self.timestamp_column
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Split":
        if d.get("hash", HASH_VERSION) != HASH_VERSION:
            raise DefinitionError(f"split: recorded with entity hash {d['hash']!r}; this skewless computes "
                                  f"{HASH_VERSION!r}")
        return cls(d.get("time"), d.get("entity"), keys=d.get("keys"), seed=d.get("seed", ""),
                   column=d.get("column", "split"), timestamp_column=d.get("timestamp_column"))

    @classmethod
    def of(cls, split: "Split | Mapping") -> "Split":
        """A Split, or its dict form (as recorded, or written by hand)."""
        if isinstance(split, Split):
            return split
        if isinstance(split, Mapping):
            unknown = sorted(set(split) - {"time", "entity", "keys", "seed", "column", "hash", "timestamp_column"})
            if unknown:
                raise DefinitionError(f"split: unknown fields {unknown}")
            return cls.from_dict(split)
        raise DefinitionError(f"split must be a skewless.Split or its dict form, not {type(split).__name__}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Split) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Split({self.to_dict()})"


_EPOCH, _US = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)


def times_us(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A time column as UTC epoch microseconds (int64, nulls kept); text is parsed as the engine reads it."""
    if isinstance(ts, pa.Array):
        ts = pa.chunked_array([ts])
    if pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):  # as the engine reads text times
        ts = pa.chunked_array([pa.array(parse_timestamps(ts.to_pandas(), "split time"), pa.timestamp("us", "UTC"))])
    if not pa.types.is_timestamp(ts.type):
        raise ValidationError(f"split: the time column holds {ts.type}, not timestamps")
    return pc.cast(to_utc_us(ts), pa.int64()).combine_chunks()


def iso_us(us: int) -> str:
    """Epoch microseconds as ISO 8601 (UTC)."""
    return (_EPOCH + us * _US).isoformat()


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValidationError(f"split: the rows have no column {name!r}", column=name)
    return table.column(name)


def _canonical_cast(arr: pa.Array, declared: pa.DataType) -> pa.Array:
    try:
        return arr.cast(declared)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"split: a key column of type {arr.type} does not convert to its declared "
                              f"{declared}: {exc}") from exc


def _canonical_text(col: pa.ChunkedArray | pa.Array, declared: pa.DataType | None) -> pa.Array:
    """A key column as text, the same for the same values whatever their Arrow type: integers and decimals in
    decimal, booleans ``true``/``false``, timestamps as UTC epoch microseconds, bytes in hex; each value prefixed
    with its length and ``:`` so that joined keys cannot run into each other; nulls as ``~``."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if declared is not None and arr.type != declared:
        arr = _canonical_cast(arr, declared)
    t = arr.type
    if pa.types.is_timestamp(t):
        arr = pc.cast(to_utc_us(pa.chunked_array([arr])).combine_chunks(), pa.int64())
    elif pa.types.is_date(t):
        arr = pc.cast(pc.cast(arr, pa.date32()), pa.int32())
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) or pa.types.is_fixed_size_binary(arr.type):
        arr = pa.array([None if v is None else v.hex() for v in arr.to_pylist()], pa.string())
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)
            or pa.types.is_decimal(arr.type) or pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise ValidationError(f"split: cannot hash a key column of type {arr.type}")
    text = pc.cast(arr, pa.string())
    prefixed = pc.binary_join_element_wise(pc.cast(pc.utf8_length(text), pa.string()), text, ":")
    return pc.fill_null(prefixed, _NULL)


def entity_buckets(columns: list, declared: list, seed: str, n: int) -> np.ndarray:
    """Per row, the unsigned 64-bit bucket of its entity: the first 8 bytes (big-endian) of
    ``sha256(seed + "\\n" + canonical key text)``. Each distinct entity is hashed once."""
    if not columns:
        texts, indices = pa.array([""], pa.string()), np.zeros(n, dtype=np.int64)
    elif len(columns) == 1:  # one key: its distinct values first, so only they are turned into text
        col = columns[0].combine_chunks() if isinstance(columns[0], pa.ChunkedArray) else columns[0]
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if declared[0] is not None and col.type != declared[0]:
            col = _canonical_cast(col, declared[0])
        encoded = col.dictionary_encode(null_encoding="encode")
        texts = _canonical_text(encoded.dictionary, None)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
    else:
        parts = [_canonical_text(c, d) for c, d in zip(columns, declared)]
        encoded = pc.binary_join_element_wise(*parts, "").dictionary_encode()
        texts, indices = encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)
    prefix = seed.encode() + b"\n"
    uniq = np.fromiter((int.from_bytes(hashlib.sha256(prefix + s.encode()).digest()[:8], "big")
                        for s in texts.to_pylist()), dtype=np.uint64, count=len(texts))
    return uniq[indices]
