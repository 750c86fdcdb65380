"""Validating and writing new feature rows.

``prepare`` turns user data into the canonical history layout or raises ValidationError naming the column and the
first bad row; nothing is written before it succeeds. ``ingest`` then writes offline and online as one logical
operation: a "pending" marker in the online store is set before the offline commit and cleared after the online
push, and ``repair_pending`` (run by every materialize) re-pushes what a crash left between the two.

Every batch has an identity (``identity``: the caller's batch id, else a hash of its rows) recorded in its offline
commit, so a rerun of a batch that was committed (say the process died before its online push) completes the online
part and reports ``already_ingested`` instead of appending the rows a second time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from . import dtypes
from .definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW, FeatureView
from .errors import ValidationError
from .pii import show
from .timeutil import UTC_US, parse_timestamps, to_utc_us

PENDING = "pending/"
MAX_BATCH_ID = 256  # characters of a caller-given batch id


def _first_bad(col: pa.ChunkedArray, ok) -> int:
    for i, v in enumerate(col.to_pylist()):
        if not ok(v):
            return i
    return -1


def _first_unfit(col: pa.ChunkedArray, target: pa.DataType) -> int:
    """Row of the first value that does not cast to ``target`` (-1: all do, or no value of this type can). A binary
    search over prefixes (a prefix casts iff every value in it does): log2(n) casts instead of one per row."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    def casts(n: int) -> bool:
        try:
            pc.cast(arr.slice(0, n), target)
            return True
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return False

    try:
        pc.cast(arr.slice(0, 0), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return -1
    if casts(len(arr)):
        return -1
    lo, hi = 0, len(arr)  # casts(lo) holds, casts(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if casts(mid) else (lo, mid)
    return hi - 1


def read_file(path: str | Path) -> pa.Table:
    """A Parquet or CSV (by its suffix) file as a table. An empty, corrupt or misnamed file is a ValidationError
    naming the file. CSV timestamps are inferred as ISO 8601 only (other text stays text, parsed by ingest with
    ``date_format``)."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"{p}: no such file")
    kind = "CSV" if p.suffix.lower() == ".csv" else "Parquet"
    try:
        if kind == "CSV":
            return pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(timestamp_parsers=[pcsv.ISO8601]))
        _duplicates(pq.read_schema(p).names)  # read_table's own error for these names a FieldRef, not the column
        return pq.read_table(p)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValidationError(f"{p}: not a readable {kind} file ({reason})") from exc


def _duplicates(names) -> None:
    seen, dup = set(), []
    for n in map(str, names):
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    if dup:
        raise ValidationError(f"duplicate column names {dup}: each column must appear once", column=dup[0])


def _to_arrow(data: Any, ts_columns: list[str], date_format: str | None = None) -> pa.Table:
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        _duplicates(data.column_names)
        return data
    if not isinstance(data, pd.DataFrame):
        raise ValidationError(f"ingest takes a pandas DataFrame or a pyarrow Table, not {type(data).__name__}")
    df = data
    _duplicates(df.columns)
    conv = {}
    for c in ts_columns:  # text (or mixed-zone objects) -> instants; numbers are left for the dtype check
        if c in df.columns and (pd.api.types.is_object_dtype(df[c].dtype) or pd.api.types.is_string_dtype(df[c].dtype)):
            conv[c] = parse_timestamps(df[c], c, date_format)
    if conv:
        df = df.assign(**conv)
    arrays, names = [], []
    for c in df.columns:
        try:
            arrays.append(pa.array(df[c], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            row = _first_other_type(df[c])
            raise ValidationError(f"column {c!r}: mixed or unsupported values ({exc})"
                                  + (f"; first bad row {row}" if row is not None else ""), column=str(c),
                                  row=row) from exc
        names.append(str(c))
    return pa.Table.from_arrays(arrays, names=names)


def _first_other_type(values) -> int | None:
    """Row of the first value whose type differs from the first non-null value's."""
    first = None
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and v != v):
            continue
        if first is None:
            first = type(v)
        elif type(v) is not first:
            return i
    return None


def _timestamps(table: pa.Table, name: str, required: bool, date_format: str | None = None
                ) -> pa.ChunkedArray | None:
    col = table.column(name)
    t = col.type
    if pa.types.is_null(t):  # an all-null column without a type: no timestamps given
        col, t = pa.chunked_array([pa.nulls(len(col), UTC_US)]), UTC_US
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = pa.chunked_array([pa.array(parse_timestamps(pd.Series(col.to_pylist(), dtype=object), name,
                                                          date_format))])
        t = col.type
    if pa.types.is_date(t):
        col = pc.cast(col, pa.timestamp("us"))
        t = col.type
    if not pa.types.is_timestamp(t):
        raise ValidationError(f"column {name!r}: expected timestamps, got {t} (epoch numbers are ambiguous: "
                              f"convert them to timestamps)", column=name, row=0)
    if required and col.null_count:
        row = _first_bad(col, lambda v: v is not None)
        raise ValidationError(f"column {name!r}: missing timestamp at row {row}", column=name, row=row)
    return to_utc_us(col)


def prepare(view: FeatureView, data: Any, *, batch: int, write_time: datetime, date_format: str | None = None
            ) -> pa.Table:
    """Validate ``data`` against ``view`` and return it in the canonical history layout. Text timestamps are ISO
    8601 unless ``date_format`` (strftime codes, one for every timestamp column) says otherwise."""
    if getattr(data, "num_rows", None) == 0 or (isinstance(data, pd.DataFrame) and data.empty):
        raise ValidationError(f"ingest into {view.name!r}: no rows")
    src = view.source
    ev_name = src.timestamp_field if src else EVENT_TS
    cr_name = (src.created_timestamp_column if src else None) or CREATED_TS
    table = _to_arrow(data, [ev_name, cr_name, EVENT_TS], date_format)
    if src and src.field_mapping:
        table = table.rename_columns([src.field_mapping.get(c, c) for c in table.column_names])
    if ev_name not in table.column_names and EVENT_TS in table.column_names:
        ev_name = EVENT_TS
    required = list(view.join_keys) + [ev_name] + view.stored_names
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValidationError(f"ingest into {view.name!r}: missing columns {missing} "
                              f"(got {table.column_names})", column=missing[0])
    out: dict[str, pa.ChunkedArray] = {}
    for k, dt in view.join_key_dtypes.items():
        col = table.column(k)
        if col.null_count:
            row = _first_bad(col, lambda v: v is not None)
            raise ValidationError(f"join key {k!r} is null at row {row}", column=k, row=row)
        out[k] = _cast(col, k, dt, date_format, k in view.pii_names)
    out[EVENT_TS] = _timestamps(table, ev_name, required=True, date_format=date_format)
    if cr_name in table.column_names:
        cr = _timestamps(table, cr_name, required=False, date_format=date_format)
        out[CREATED_TS] = pc.fill_null(cr, pa.scalar(write_time, UTC_US)) if cr.null_count else cr
    else:  # absent: the write time is the time the row became known
        out[CREATED_TS] = pa.chunked_array([_repeat_time(write_time, table.num_rows)])
    out[WRITE_BATCH] = pa.chunked_array([pa.repeat(pa.scalar(batch, pa.int64()), table.num_rows)])
    out[WRITE_ROW] = _row_numbers(table.num_rows)
    for f in view.stored_fields:
        out[f.name] = _cast(table.column(f.name), f.name, f.dtype, date_format, f.pii)
    return pa.table(out)


_EPOCH, _ONE_US = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(microseconds=1)


def _repeat_time(t: datetime, n: int) -> pa.Array:
    """``t`` as UTC µs, ``n`` times: made from its integer (Arrow's scalar of a zoned datetime converts it through
    Python's datetime calls; both were visible in a 100-row push paced 10 ms apart, its caches cold)."""
    if t.tzinfo is None:  # naive: Arrow's reading of it (as UTC)
        return pa.repeat(pa.scalar(t, UTC_US), n)
    return pa.repeat(pa.scalar((t - _EPOCH) // _ONE_US, pa.int64()), n).view(UTC_US)


@functools.lru_cache(maxsize=64)
def _small_row_numbers(n: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(np.arange(n, dtype=np.int64))])


def _row_numbers(n: int) -> pa.ChunkedArray:
    """0..n-1, the write row column; an immutable Arrow array shared by the writes of up to 4,096 rows (pushes,
    micro-batches), made afresh past that."""
    return _small_row_numbers(n) if n <= 4096 else pa.chunked_array([pa.array(np.arange(n, dtype=np.int64))])


def _cast(col: pa.ChunkedArray, name: str, dt: dtypes.DType, date_format: str | None = None,
          hidden: bool = False) -> pa.ChunkedArray:
    """``col`` as ``dt``; a ValidationError quoting the first value that is not (``***`` for PII: skewless.pii)."""
    if col.type == dt.arrow and dt is not dtypes.UnixTimestamp:
        # already the declared type (a push's columns, a typed frame's): a cast would be the same values, and a
        # kernel call (~10-30 µs each with the caches cold, four of them in a push of three features)
        return col
    if dt is dtypes.UnixTimestamp:
        try:
            return _timestamps(pa.table({name: col}), name, required=False, date_format=date_format)
        except ValidationError as exc:
            if not hidden:
                raise
            # the parser quotes the value; a PII timestamp (a birth date) is named by its row alone
            raise ValidationError(f"column {name!r}: the value at row {exc.row} is not a timestamp "
                                  f"({date_format or 'ISO 8601'}; personal data: not quoted)", column=name,
                                  row=exc.row) from None
    if not dtypes.arrow_compatible(col.type, dt):
        # The first value that is not a {dt} (e.g. the 'n/a' that made a CSV column text); when every value would
        # cast, the column's type itself is the mismatch and its first value is named.
        row = _first_unfit(col, dt.arrow)
        if row >= 0:
            raise ValidationError(f"column {name!r}: value {show(col[row].as_py(), hidden)} at row {row} does not match "
                                  f"declared {dt} (the column holds {col.type})", column=name, row=row)
        row = _first_bad(col, lambda v: v is None)
        raise ValidationError(f"column {name!r}: dtype {col.type} does not match declared {dt}"
                              + (f" (first non-null value at row {row})" if row >= 0 else ""),
                              column=name, row=max(row, 0))
    try:
        return pc.cast(col, dt.arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row = _first_unfit(col, dt.arrow)
        raise ValidationError(f"column {name!r}: value at row {max(row, 0)} does not fit {dt} ({exc})",
                              column=name, row=max(row, 0)) from exc


def pending_key(view: str, batch: int) -> str:
    return f"{PENDING}{view}/{batch}"


def mark_pending(online, view: str, batch: int) -> None:
    online.set_meta(pending_key(view, batch), json.dumps({"at": datetime.now(timezone.utc).isoformat()}))


def pending_batches(online, view: str) -> list[int]:
    return sorted(int(k.rsplit("/", 1)[1]) for k in online.list_meta(f"{PENDING}{view}/"))


@dataclass(frozen=True)
class IngestResult:
    """What ``FeatureStore.ingest`` did. ``version``: the history version holding the rows (the one that committed
    them, or, for a batch committed long before, a later one); ``already_ingested``: the batch had been committed by
    an earlier run, so nothing was appended (its online push was completed if it had not finished). A push to
    the online store only (``FeatureStore.push(to="online")``) appends nothing: ``version`` None."""

    view: str
    version: int | None
    rows: int
    batch_id: str | None  # None: an online push whose caller asked for no identity (``push(identify=False)``)
    already_ingested: bool = False


def check_batch_id(batch_id: str | None) -> None:
    """A ValidationError unless ``batch_id`` is None or a usable batch id."""
    if batch_id is not None and (
            not isinstance(batch_id, str) or not batch_id.strip() or len(batch_id) > MAX_BATCH_ID or
            any(c in "'\"\\" or not c.isprintable() for c in batch_id)):
        raise ValidationError(f"batch_id must be a non-empty printable string of at most {MAX_BATCH_ID} "
                              f"characters without quotes or backslashes, not {str(batch_id)[:40]!r}")


def identity(rows: pa.Table, write_time: datetime, batch_id: str | None) -> str:
    """The batch's identity: ``batch_id`` when the caller gives one, else ``sha256:`` of its canonical rows. The
    hash leaves out what differs between two runs of the same data: the write batch and row columns, and created
    times that ingest filled in with ``write_time`` (hashed as null)."""
    if batch_id is not None:
        check_batch_id(batch_id)
        return batch_id
    table = rows.drop_columns([WRITE_BATCH, WRITE_ROW])
    i = table.column_names.index(CREATED_TS)
    created = table.column(i)
    filled = pc.equal(created, pa.scalar(write_time, UTC_US))
    table = table.set_column(i, CREATED_TS, pc.if_else(filled, pa.scalar(None, UTC_US), created))
    h = hashlib.sha256(str(table.schema).encode())
    for col in table.columns:
        # What each row holds, not how Arrow laid it out: which rows are null, then the non-null values packed
        # afresh (``filter`` copies them to offset 0, leaving out bytes under null slots, which are undefined).
        col = col.combine_chunks()
        if col.null_count == 0 and _byte_width(col.type):
            # No nulls: the same bytes without the copies (all rows valid; the values are the data buffer's bytes
            # of these rows, which is what ``filter`` would copy out).
            w = _byte_width(col.type)
            h.update(b"\x01" * len(col))
            h.update(memoryview(col.buffers()[1])[col.offset * w:(col.offset + len(col)) * w])
            continue
        valid = pc.is_valid(col)
        h.update(valid.to_numpy(zero_copy_only=False).tobytes())
        values = col.filter(valid)
        if pa.types.is_boolean(col.type):  # a bitmap: the bits past the last value are undefined too
            h.update(values.to_numpy(zero_copy_only=False).tobytes())
            continue
        for buf in values.buffers()[1:]:
            if buf is not None:
                h.update(buf)
    return "sha256:" + h.hexdigest()


def _byte_width(t: pa.DataType) -> int:
    """Bytes per value of a fixed-width number or timestamp type (0: any other type)."""
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t):
        return t.bit_width // 8
    return 0
