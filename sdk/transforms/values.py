"""Values in and out of a transform, checked against their declared dtypes.

Outputs: a value of the wrong type is a TransformError naming the transform, the output and the row; a null is
only ever one the transform returned itself (None, or NaN/NaT in a pandas column of an integer, string or time
output, pandas' missing value there); NaN in a float output stays NaN. Request fields: a value that does not fit
its dtype, or a missing one, is a ValidationError naming the transform, the field and the row.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import dtypes
from ..dtypes import DType
from ..errors import TransformError, ValidationError

_INT_RANGE = {"Int32": (-2**31, 2**31 - 1), "Int64": (-2**63, 2**63 - 1)}


class BadValue(Exception):
    """A value that does not fit a dtype (internal: the caller names the transform and row)."""


def _is_null(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT


def to_dtype(v: Any, dt: DType) -> Any:
    """``v`` as the Python value of ``dt`` (what Arrow's ``to_pylist`` gives), or BadValue."""
    if _is_null(v):
        return None
    name = dt.name
    if name in _INT_RANGE:
        if isinstance(v, (bool, np.bool_)):
            raise BadValue("a boolean")
        if isinstance(v, (float, np.floating)):
            if v != v:
                return None
            if not float(v).is_integer():
                raise BadValue("not an integer")
        elif not isinstance(v, (int, np.integer)):
            raise BadValue(f"a {type(v).__name__}")
        n = int(v)
        lo, hi = _INT_RANGE[name]
        if not lo <= n <= hi:
            raise BadValue(f"out of the {name} range")
        return n
    if name in ("Float32", "Float64"):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise BadValue(f"a {type(v).__name__}")
        f = float(v)
        return float(np.float32(f)) if name == "Float32" else f
    if name == "String":
        if not isinstance(v, str):
            raise BadValue(f"a {type(v).__name__}")
        return v
    if name == "Bool":
        if not isinstance(v, (bool, np.bool_)):
            raise BadValue(f"a {type(v).__name__}")
        return bool(v)
    if name == "Bytes":
        if not isinstance(v, bytes):
            raise BadValue(f"a {type(v).__name__}")
        return v
    if name == "UnixTimestamp":
        if isinstance(v, np.datetime64):
            v = pd.Timestamp(v)
        if not isinstance(v, datetime) or v.tzinfo is None:
            raise BadValue("not a timezone-aware datetime")
        ts = pd.Timestamp(v).tz_convert("UTC")
        return ts.to_pydatetime(warn=False).replace(tzinfo=timezone.utc)
    raise BadValue(f"unsupported dtype {name}")  # pragma: no cover - every dtype is handled above


def _vector_ok(series: pd.Series, dt: DType) -> bool:
    """Whether the column's pandas dtype already guarantees every value fits (the fast path)."""
    kind = series.dtype.kind  # pandas' nullable Int64/Float64/boolean dtypes have NumPy's kinds too
    name = dt.name
    if name == "Int64":
        return kind in "iu" and not (kind == "u" and series.dtype.itemsize == 8)
    if name == "Int32":
        return kind == "i" and series.dtype.itemsize <= 4
    if name in ("Float32", "Float64"):
        return kind in "if"
    if name == "Bool":
        return kind == "b"
    if name == "UnixTimestamp":
        return isinstance(series.dtype, pd.DatetimeTZDtype)
    return False


def output_column(values: Any, dt: DType, transform: str, output: str, row_offset: int) -> pa.Array:
    """One output column as an Arrow array of ``dt``; TransformError naming the first bad row."""
    if isinstance(values, pd.Series) and _vector_ok(values, dt):
        try:
            return pa.Array.from_pandas(values, type=dt.arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # e.g. a float column with a fractional value: the slow path names the row
    py = []
    for i, v in enumerate(values.tolist() if isinstance(values, pd.Series) else values):
        try:
            py.append(to_dtype(v, dt))
        except BadValue as exc:
            raise bad_output(transform, output, dt, v, row_offset + i, str(exc)) from None
    return pa.array(py, type=dt.arrow)


def bad_output(transform: str, output: str, dt: DType, v: Any, row: int, why: str) -> TransformError:
    r = repr(v)
    r = r if len(r) <= 40 else r[:30] + "..."
    return TransformError(f"transform {transform!r}, row {row}: output {output!r}={r} is not a valid {dt} ({why})",
                          transform=transform, row=row)


def request_value(v: Any, dt: DType, transform: str, field: str, row: int) -> Any:
    try:
        return to_dtype(v, dt)
    except BadValue as exc:
        raise ValidationError(f"transform {transform!r}, row {row}: request field {field}={v!r} is not a valid "
                              f"{dt} ({exc})", column=field, row=row) from None


def request_column(column: Any, dt: DType, transform: str, field: str) -> pa.Array:
    """An entity table column as the request field's dtype (the offline side of ``request_value``)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.type == dt.arrow:
        return arr
    if dtypes.arrow_compatible(arr.type, dt) and not (dt is dtypes.UnixTimestamp and pa.types.is_timestamp(arr.type)
                                                       and arr.type.tz is None):
        try:
            return arr.cast(dt.arrow, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array([request_value(v, dt, transform, field, i) for i, v in enumerate(arr.to_pylist())],
                    type=dt.arrow)
