"""RESP framing, vectorized with Arrow and numpy: whole slices of commands and arguments are framed as RESP bulk
strings without a Python object per value (the standalone fast path of the Redis adapter's writes and reads).
``Slicer`` cuts the framed bytes into per-call byte ranges without copying."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc



BIN = pa.large_binary()  # 64-bit offsets: a slice of wide string rows never overflows


def _s(b: bytes) -> pa.Scalar:
    return pa.scalar(b, BIN)


_DOLLAR, _CRLF, _NOSEP, _NULL_ELEM = _s(b"$"), _s(b"\r\n"), _s(b""), _s(b"$0\r\n\r\n")


def bulk(b: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(b), b)


def evalsha_head(sha: bytes) -> bytes:
    """The head of an ``EVALSHA sha numkeys ...`` call as a %-template taking its element count (``% n``)."""
    return b"*%%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n" % sha


def bulk_pieces(a: pa.Array) -> list:
    """Join pieces that frame each value of ``a`` as a RESP bulk string."""
    return [_DOLLAR, pc.cast(pc.binary_length(a), pa.string()).cast(BIN), _CRLF, a, _CRLF]


def bulk_strings(values: pa.Array) -> pa.Array:
    """Each value framed as a RESP bulk string."""
    return pc.binary_join_element_wise(*bulk_pieces(values), _NOSEP)


def bulk_numbers(nums: np.ndarray) -> pa.Array:
    return bulk_strings(pc.cast(pa.array(nums), pa.string()).cast(BIN))


def _framed_fixed(cols: list) -> pa.Array:
    """Fixed-width columns framed as RESP bulk strings side by side, built as one byte matrix (no Python
    object per value). Null values become empty bulk strings. ``cols``: ``codec.Column``s with ``fixed``."""
    n = cols[0].fixed.shape[0]
    heads = [b"$%d\r\n" % c.fixed.shape[1] for c in cols]
    width = sum(len(h) + c.fixed.shape[1] + 2 for h, c in zip(heads, cols))
    mat = np.empty((n, width), np.uint8)
    pos = 0
    for h, c in zip(heads, cols):
        w = c.fixed.shape[1]
        mat[:, pos:pos + len(h)] = np.frombuffer(h, np.uint8)
        mat[:, pos + len(h):pos + len(h) + w] = c.fixed
        mat[:, pos + len(h) + w:pos + len(h) + w + 2] = (13, 10)
        pos += len(h) + w + 2
    framed = pa.Array.from_buffers(pa.binary(width), n, [None, pa.py_buffer(mat)]).cast(BIN)
    if len(cols) == 1 and cols[0].valid is not None:
        framed = pc.if_else(pa.array(cols[0].valid), framed, _NULL_ELEM)
    return framed


def framed_rows(ev: pa.Array, ordr: pa.Array, exp: pa.Array | None, cols: list) -> pa.Array:
    """Per row, its ARGV part of a field-layout upsert call as RESP bulk strings, in ``cols`` order (``codec.Column``s)."""
    pieces = bulk_pieces(ev) + bulk_pieces(ordr) + (bulk_pieces(exp) if exp is not None else [])
    run: list = []  # consecutive null-free fixed columns share one matrix

    def flush():
        if run:
            pieces.append(_framed_fixed(run))
            run.clear()
    for c in cols:
        if c.fixed is not None and c.valid is None:
            run.append(c)
            continue
        flush()
        if c.fixed is not None:
            pieces.append(_framed_fixed([c]))
        else:
            pieces.extend(bulk_pieces(c.var))  # b"" (null) frames as an empty bulk string
    flush()
    return pc.binary_join_element_wise(*pieces, _NOSEP)


def framed_keys(head: bytes, entity: pa.Array, tail: bytes = b"") -> pa.Array:
    """Each row's full key (``head`` + entity + "}" + ``tail``) as a RESP bulk string."""
    length = pc.cast(pc.add(pc.binary_length(entity), len(head) + 1 + len(tail)), pa.string()).cast(BIN)
    return pc.binary_join_element_wise(_DOLLAR, length, _CRLF, _s(head), entity, _s(b"}%b\r\n" % tail), _NOSEP)


def set_nx_commands(keys: pa.Array, values: pa.Array, exp: pa.Array | None) -> pa.Array:
    """``SET key value NX [PXAT exp]`` per row, as RESP (``keys``, ``values``, ``exp``: framed bulk strings)."""
    if exp is None:
        return pc.binary_join_element_wise(_s(b"*4\r\n$3\r\nSET\r\n"), keys, values, _s(b"$2\r\nNX\r\n"), _NOSEP)
    return pc.binary_join_element_wise(_s(b"*6\r\n$3\r\nSET\r\n"), keys, values,
                                       _s(b"$2\r\nNX\r\n$4\r\nPXAT\r\n"), exp, _NOSEP)


class Slicer:
    """Zero-copy byte ranges of a binary array's data, row range by row range."""

    def __init__(self, arr: pa.Array | pa.ChunkedArray):
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        arr = arr.cast(BIN) if arr.type != BIN else arr
        bufs = arr.buffers()
        self.offsets = np.frombuffer(bufs[1], np.int64, len(arr) + 1, arr.offset * 8)
        self.data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")

    def __call__(self, i: int, j: int) -> memoryview:
        return self.data[self.offsets[i]:self.offsets[j]]


__all__ = ["BIN", "Slicer", "bulk", "bulk_numbers", "bulk_pieces", "bulk_strings", "evalsha_head", "framed_keys",
           "framed_rows", "set_nx_commands"]
