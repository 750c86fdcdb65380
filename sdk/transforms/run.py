"""Running a transform over rows: the one implementation every path calls (historical retrieval, online reads,
the model server). Inputs arrive as Arrow arrays of the declared dtypes (``run_arrays``) or as Python values of
those dtypes (``run_rows``, what ``to_pylist`` of the same arrays gives), so each mode sees identical inputs
whichever path built them: a pandas transform always gets the DataFrame Arrow's ``to_pandas`` makes of them, a row
transform always the dict of their Python values.

Failures are TransformErrors naming the transform and the row (offset by ``row_offset``, the batch's first row in
the caller's numbering). A pandas transform that raises on a batch is bisected to the first row that raises alone.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from ..dtypes import arrow_compatible
from ..errors import TransformError
from .definition import OnDemandTransform
from .values import BadValue, bad_output, output_column, to_dtype


def _raised(t: OnDemandTransform, exc: Exception, row: int | None) -> TransformError:
    where = f"row {row}" if row is not None else "a batch (no single row fails alone)"
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return TransformError(f"transform {t.name!r}, {where}: raised {type(exc).__name__}: {msg}", transform=t.name,
                          row=row)


def run_rows(t: OnDemandTransform, rows: list[dict], row_offset: int = 0) -> dict[str, list]:
    """Row mode over Python rows: each output as a list of Python values of its dtype."""
    fn, outs = t.function, t.outputs
    names = set(t.output_names)
    cols: list[list] = [[] for _ in outs]
    for i, row in enumerate(rows):
        try:
            out = fn(row)
        except Exception as exc:
            raise _raised(t, exc, row_offset + i) from exc
        if type(out) is not dict or out.keys() != names:
            raise _shape(t, out, row_offset + i)
        for col, f in zip(cols, outs):
            v = out[f.name]
            try:
                col.append(to_dtype(v, f.dtype))
            except BadValue as exc:
                raise bad_output(t.name, f.name, f.dtype, v, row_offset + i, str(exc)) from None
    return dict(zip(t.output_names, cols))


def _shape(t: OnDemandTransform, out: Any, row: int) -> TransformError:
    if not isinstance(out, dict):
        what = f"returned a {type(out).__name__}, not a dict"
    else:
        missing, extra = sorted(set(t.output_names) - set(out)), sorted(set(out) - set(t.output_names))
        what = "returned " + "; ".join(x for x in (f"no {missing}" if missing else "",
                                                    f"undeclared {extra}" if extra else "") if x)
    return TransformError(f"transform {t.name!r}, row {row}: {what} (declared outputs {t.output_names})",
                          transform=t.name, row=row)


_THREADED_ROWS = 100_000
# Integer and boolean columns as pandas' nullable dtypes: with NumPy's, a column holding a null becomes float64 or
# object, so a row's input type would depend on which other rows share its batch (1 row online, many offline).
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}


def frame(columns: dict[str, pa.Array], n: int) -> pd.DataFrame:
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(n))
    # Threads only pay off on big batches (a 1-row batch converts in half the time without them); the result is
    # the same either way.
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns)).to_pandas(
        use_threads=n >= _THREADED_ROWS, types_mapper=_NULLABLE.get)


def run_arrays(t: OnDemandTransform, columns: dict[str, pa.Array], n: int, row_offset: int = 0
               ) -> dict[str, pa.Array]:
    """Either mode over Arrow input columns (name -> array, ``n`` rows): each output as an Arrow array."""
    if t.mode == "row":
        py = [c.to_pylist() for c in columns.values()]
        rows = [dict(zip(columns, vals)) for vals in zip(*py)] if py else [{} for _ in range(n)]
        out = run_rows(t, rows, row_offset)
        return {f.name: pa.array(out[f.name], type=f.dtype.arrow) for f in t.outputs}
    if t.mode == "arrow":
        return _run_arrow(t, columns, n, row_offset)
    df = frame(columns, n)
    try:
        res = t.function(df)
    except Exception as exc:
        raise _raised(t, exc, _culprit(t, df, row_offset)) from exc
    if isinstance(res, (pa.Table, pa.RecordBatch)):
        res = res.to_pandas()
    if not isinstance(res, pd.DataFrame):
        raise TransformError(f"transform {t.name!r}, rows {row_offset}..{row_offset + n - 1}: returned a "
                             f"{type(res).__name__}, not a DataFrame", transform=t.name, row=row_offset)
    if len(res) != n:
        raise TransformError(f"transform {t.name!r}, rows {row_offset}..{row_offset + n - 1}: returned {len(res)} "
                             f"rows for {n} (one output row per input row)", transform=t.name, row=row_offset)
    missing = [o for o in t.output_names if o not in res.columns]
    extra = [c for c in res.columns if c not in t.output_names]
    if missing or extra or len(set(res.columns)) != len(res.columns):
        raise TransformError(f"transform {t.name!r}, rows {row_offset}..{row_offset + n - 1}: returned columns "
                             f"{list(res.columns)}; declared outputs {t.output_names}", transform=t.name,
                             row=row_offset)
    # by position: the returned frame's index does not matter, its row order does
    return {f.name: output_column(res[f.name], f.dtype, t.name, f.name, row_offset) for f in t.outputs}


def _run_arrow(t: OnDemandTransform, columns: dict[str, pa.Array], n: int, row_offset: int) -> dict[str, pa.Array]:
    batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns)) if columns else \
        pa.RecordBatch.from_pydict({})
    try:
        res = t.function(batch)
    except Exception as exc:
        raise _raised(t, exc, _culprit(t, batch, row_offset, lambda lo, hi: batch.slice(lo, hi - lo))) from exc
    if isinstance(res, (pa.Table, pa.RecordBatch)):
        res = {name: res.column(i) for i, name in enumerate(res.schema.names)}
    rows = f"rows {row_offset}..{row_offset + n - 1}"
    if not isinstance(res, dict):
        raise TransformError(f"transform {t.name!r}, {rows}: returned a {type(res).__name__}, not a Table, "
                             "RecordBatch or dict of arrays", transform=t.name, row=row_offset)
    if set(res) != set(t.output_names):
        raise TransformError(f"transform {t.name!r}, {rows}: returned columns {list(res)}; declared outputs "
                             f"{t.output_names}", transform=t.name, row=row_offset)
    out = {}
    for f in t.outputs:
        col = res[f.name]
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if not isinstance(col, pa.Array) or len(col) != n:
            what = f"{len(col)} values" if isinstance(col, pa.Array) else f"a {type(col).__name__}"
            raise TransformError(f"transform {t.name!r}, {rows}: output {f.name!r} is {what}, not an Arrow array of "
                                 f"{n} values (one per input row)", transform=t.name, row=row_offset)
        if col.type != f.dtype.arrow:
            try:  # a lossless cast between kinds that hold the same values (int32 -> int64, int -> float)
                if not arrow_compatible(col.type, f.dtype):
                    raise pa.ArrowInvalid("other kind")
                col = col.cast(f.dtype.arrow, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # the value check names the row
                col = output_column(col.to_pylist(), f.dtype, t.name, f.name, row_offset)
        out[f.name] = col
    return out


def _culprit(t: OnDemandTransform, data, row_offset: int, part=None) -> int | None:
    """The first row that raises on its own, by bisection (O(log n) calls); None if no half fails alone."""
    part = part or (lambda lo, hi: data.iloc[lo:hi].reset_index(drop=True))

    def fails(lo: int, hi: int) -> bool:
        try:
            t.function(part(lo, hi))
            return False
        except Exception:
            return True
    lo, hi = 0, len(data)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(lo, mid):
            hi = mid
        elif fails(mid, hi):
            lo = mid
        else:
            return None
    return row_offset + lo if hi - lo == 1 else None
