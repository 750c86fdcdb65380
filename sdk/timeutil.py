"""Instants are UTC with microsecond precision; naive inputs are read as UTC (never as the machine's zone).

Text is parsed as ISO 8601 (``2024-01-13``, ``2024-01-13T08:00:00+02:00``, ...) unless the caller names a format
(``date_format``, strftime codes such as ``%d/%m/%Y``). Nothing is ever guessed per value: ``12/01/2024`` is not
read as 1 December in one row and ``13/01/2024`` as 13 January in the next; without a format it is a
ValidationError naming the column and the first row that is not ISO 8601.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ValidationError

UTC_US = pa.timestamp("us", tz="UTC")  # the one timestamp type of histories and entity rows

ISO = "ISO8601"
_HINT = "use ISO 8601 (e.g. 2024-01-13 or 2024-01-13T08:00:00Z) or give the format explicitly (date_format / " \
        "--date-format, e.g. %d/%m/%Y)"


def _parse(values, fmt: str | None):
    return pd.to_datetime(values, utc=True, format=fmt or ISO)


def utc(ts: datetime | str | pd.Timestamp, what: str = "timestamp", date_format: str | None = None) -> datetime:
    """One instant: a datetime (naive = UTC), a pandas Timestamp, or text in ISO 8601 (or ``date_format``)."""
    try:
        t = _parse([ts], date_format)[0] if isinstance(ts, str) else pd.Timestamp(ts)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(f"{what}: cannot parse {ts!r} as a timestamp with format "
                              f"{date_format or 'ISO 8601'}; {_HINT}") from exc
    if t is pd.NaT:
        raise ValidationError(f"{what}: missing timestamp")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


def parse_timestamps(values: pd.Series, column: str, date_format: str | None = None) -> pd.Series:
    """Text (or mixed objects) -> tz-aware UTC instants; naive values are UTC, mixed zones are fine, nulls stay
    null. One format for the whole column: ISO 8601, or ``date_format``. Raises ValidationError naming the first
    value that does not match."""
    try:
        return _parse(values, date_format)
    except (ValueError, TypeError, OverflowError) as exc:
        for i, v in enumerate(values):
            try:
                _parse([v], date_format)
            except (ValueError, TypeError, OverflowError):
                raise ValidationError(f"column {column!r}: unparseable timestamp {v!r} at row {i} (not "
                                      f"{date_format or 'ISO 8601'}); {_HINT}", column=column, row=i) from exc
        raise ValidationError(f"column {column!r}: cannot parse timestamps: {exc}", column=column) from exc


def now() -> datetime:
    return datetime.now(timezone.utc)


_lock = threading.Lock()
_last = 0


def new_batch_id() -> int:
    """A write-order batch id: nanoseconds since the epoch, strictly increasing within this process."""
    global _last
    with _lock:
        _last = max(time.time_ns(), _last + 1)
        return _last


def to_utc_us(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps -> UTC microseconds. Naive values are UTC; finer units are floored (never rounded up, so a
    value never moves later in time), the same way everywhere: ingest, entity rows and ``now``."""
    t = col.type
    if t == UTC_US:  # already (a cast to its own type is the same values, and a kernel call)
        return col
    if t.tz is None:
        col = pc.cast(col, pa.timestamp(t.unit, tz="UTC"))
    if t.unit == "ns":
        col = pc.floor_temporal(col, unit="microsecond")
    return pc.cast(col, UTC_US, safe=False)
