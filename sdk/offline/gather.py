"""Fetching history rows by position: the second half of a narrow point-in-time join.

The join itself (``pit.py``) decides which history row wins for each entity row and, in its narrow form, returns
that row's *position* (``POSITION``: file index in ``HistoryFiles.uris`` << 40, plus row number in the file)
instead of carrying every feature through the join's sort. This module then reads just those rows' feature
columns from the Parquet files. Nothing here decides a winner: it is a physical fetch, the way an index lookup
follows an index scan.

Why: an ASOF join sorts its right side with its payload. Carrying ten features of a 3.3M-row history through that
sort cost more than joining on (key, order, position) and reading the winners' features afterwards, and the
result comes out in input order with one gather instead of a gather after the join.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import EngineError

POSITION = "_skewless_pos"
FILE_SHIFT = 40  # row numbers below 2**40 per file; file index above
_ROW_MASK = (1 << FILE_SHIFT) - 1
# Rows decoded per step: bounds memory to one step per file being read, whatever a file's row-group size.
_BATCH_ROWS = 65_536


def position_sql(file_index: str = "file_index", row: str = "file_row_number") -> str:
    """The SQL expression for POSITION over DuckDB's ``read_parquet`` virtual columns."""
    return f"(CAST({file_index} AS BIGINT) << {FILE_SHIFT}) + {row}"


@dataclass(frozen=True)
class PositionGather:
    """Reads ``columns`` (stored names, already of the declared types) of the rows at given positions of ``uris``,
    returned under ``names``."""

    uris: tuple[str, ...]
    columns: tuple[str, ...]
    names: tuple[str, ...]
    types: tuple[pa.DataType, ...]

    def take(self, positions: pa.Array | pa.ChunkedArray, into: np.ndarray | None = None) -> list[pa.Array]:
        """One array per column, row ``into[i]`` (default i) holding the value at ``positions[i]``; rows with a null
        position are null. ``into`` must be a permutation of range(len(positions))."""
        pos = positions.fill_null(-1).to_numpy() if positions.null_count else positions.to_numpy()
        pos = np.asarray(pos, dtype=np.int64)
        n = len(pos)
        hit = np.flatnonzero(pos >= 0)
        if not len(hit):
            return [pa.nulls(n, t) for t in self.types]
        # Read in position order: each file once, front to back, only the row groups holding a winner.
        order = np.argsort(pos[hit])
        wanted, dest = pos[hit][order], hit[order]
        if into is not None:
            hit, dest = into[hit], into[dest]
        bounds = np.searchsorted(wanted >> FILE_SHIFT, np.arange(len(self.uris) + 1))
        files = [i for i in range(len(self.uris)) if bounds[i] < bounds[i + 1]]
        sinks = [_FixedSink(n, t, hit) if _fixed_width(t) else _PieceSink(t) for t in self.types]
        with ThreadPoolExecutor(max_workers=min(len(files), os.cpu_count() or 2)) as pool:
            list(pool.map(lambda i: self._read(i, wanted[bounds[i]:bounds[i + 1]] & _ROW_MASK,
                                               dest[bounds[i]:bounds[i + 1]], sinks), files))
        back = None
        if any(isinstance(s, _PieceSink) for s in sinks):
            # Pieces hold rows in position order: row k belongs to output row dest[k].
            back = np.full(n, -1, dtype=np.int64)
            back[dest] = np.arange(len(dest), dtype=np.int64)
            back = pa.array(back, mask=back < 0) if len(hit) < n else pa.array(back)
        return [s.finish(back, files) for s in sinks]

    def _read(self, file: int, rows: np.ndarray, dest: np.ndarray, sinks: list) -> None:
        """Feed ``sinks`` the given rows (sorted row numbers) of one file, bound for output rows ``dest``."""
        pf = pq.ParquetFile(self.uris[file], pre_buffer=False)
        meta = pf.metadata
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        if rows[-1] >= starts[-1]:
            raise EngineError(f"history file {self.uris[file]} has {starts[-1]} rows, fewer than the snapshot's "
                              f"join found (row {rows[-1]}): the file changed after it was committed")
        group_bounds = np.searchsorted(rows, starts)
        for g in range(meta.num_row_groups):
            lo, hi = group_bounds[g], group_bounds[g + 1]
            if lo == hi:
                continue  # no winner in this row group: not even read
            at = starts[g]
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=[g], columns=list(self.columns),
                                         use_threads=False):
                end = at + batch.num_rows
                cut = lo + int(np.searchsorted(rows[lo:hi], end))
                if cut > lo:
                    local = rows[lo:cut] - at
                    for sink, column in zip(sinks, batch.columns):
                        sink.add(file, column, local, dest[lo:cut])
                lo, at = cut, end
                if lo == hi:
                    break


def _fixed_width(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)) and t.bit_width % 8 == 0


class _FixedSink:
    """A fixed-width column written straight into its output buffer (no intermediate arrays, no second gather).
    Threads write disjoint output rows."""

    def __init__(self, n: int, type_: pa.DataType, hit: np.ndarray):
        self.type = type_
        self.values = np.zeros(n, dtype=f"<i{type_.bit_width // 8}" if not pa.types.is_floating(type_)
                               else f"<f{type_.bit_width // 8}")
        self.hit, self.n = hit, n
        self.null_rows: list[np.ndarray] = []

    def add(self, file: int, column: pa.Array, local: np.ndarray, dest: np.ndarray) -> None:
        data = np.frombuffer(column.buffers()[1], dtype=self.values.dtype)[column.offset:column.offset + len(column)]
        self.values[dest] = data[local]
        if column.null_count:
            valid = np.asarray(column.is_valid())
            self.null_rows.append(dest[~valid[local]])

    def finish(self, back, files) -> pa.Array:
        valid = None
        if len(self.hit) < self.n or self.null_rows:
            valid = np.zeros(self.n, dtype=bool)
            valid[self.hit] = True
            for rows in self.null_rows:
                valid[rows] = False
        data = pa.py_buffer(self.values)
        bitmap = None if valid is None else pa.array(valid).buffers()[1]
        return pa.Array.from_buffers(self.type, self.n, [bitmap, data],
                                     null_count=-1 if valid is not None else 0)


class _PieceSink:
    """Any other column: the wanted rows of each batch, later put in output order with one gather."""

    def __init__(self, type_: pa.DataType):
        self.type = type_
        self.pieces: dict[int, list[pa.Array]] = {}

    def add(self, file: int, column: pa.Array, local: np.ndarray, dest: np.ndarray) -> None:
        if pa.types.is_string_view(column.type) or pa.types.is_binary_view(column.type):
            # a file delta-rs rewrote (a forget's DELETE) stores strings as views, which `take` cannot gather here
            column = column.cast(self.type)
        self.pieces.setdefault(file, []).append(column.take(pa.array(local)).cast(self.type))

    def finish(self, back, files) -> pa.Array:
        found = pa.chunked_array([p for f in files for p in self.pieces.get(f, [])], self.type).combine_chunks()
        return found.take(back)
