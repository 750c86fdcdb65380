"""Instants are UTC with microsecond precision; naive inputs are read as UTC (never as the machine's zone)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pandas as pd

from .errors import ValidationError


def utc(ts: datetime | str | pd.Timestamp, what: str = "timestamp") -> datetime:
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{what}: cannot parse {ts!r} as a timestamp") from exc
    if t is pd.NaT:
        raise ValidationError(f"{what}: missing timestamp")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


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
